"""``kluis seed FILE`` and ``kluis export``: a vault's objects as a small declarative file, and back.

The format (YAML, or JSON with the same shape; every field but a secret's ``value`` is optional)::

    keys:
      signing:                     # created: kty RSA (default), RSA-HSM, EC, EC-HSM or oct-HSM
        kty: EC
        curve: P-256               # EC: P-256 (default), P-256K, P-384, P-521; RSA/oct-HSM: size
        ops: [sign, verify]
        tags: {team: payments}
        enabled: true
        not_before: 2026-01-01T00:00:00Z
        expires: 2030-01-01T00:00:00Z
      imported:                    # imported instead: one of jwk (private JWK, base64url members),
        pem_file: keys/rsa.pem     # pem (the PEM text) or pem_file (relative to the seed file);
        hsm: false                 # pem_password for an encrypted PEM; hsm: true imports as -HSM
    secrets:
      db-password:
        value: hunter2
        content_type: text/plain
        tags: {env: test}

Seeding a name that exists adds a new version, as ``create``/``set`` do. ``kluis export`` writes the same
format: keys with their type, size or curve, operations, attributes, tags and ``public_jwk`` (the public
members; seeding ignores it and makes a new key of the same kind, because private key material is never
exported), and secrets with their attributes and, with ``--include-secret-values``, their values (which
needs ``get`` on secrets). Both work through the official SDK clients as the administrator.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kluis.cli.client import CliError
from kluis.cli.common import DataDirOpt, OutputOpt, data_dir_of, run
from kluis.cli.key_args import pem_to_jwk
from kluis.cli.object_ref import ObjectRef
from kluis.cli.output import Output, emit
from kluis.cli.sdk_client import connect
from kluis.cli.sdk_output import plain
from kluis.config import DataDir, write_private
from kluis.domain.errors import VaultError
from kluis.domain.lifecycle import MAX_TAG_LENGTH, check_tags, validate_name
from kluis.domain.secrets.service import MAX_CONTENT_TYPE_LENGTH, MAX_SECRET_TAG_LENGTH, MAX_VALUE_LENGTH

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyClient, KeyVaultKey
    from azure.keyvault.secrets import SecretClient

__all__ = ["ExportFormat", "dump_seed", "export_command", "export_vault", "load_seed", "seed_command", "seed_vault"]

_KEY_FIELDS = frozenset(
    {"kty", "size", "curve", "ops", "tags", "enabled", "not_before", "expires", "jwk", "pem", "pem_file",
     "pem_password", "hsm", "public_jwk"}
)  # fmt: skip
_IMPORT_SOURCES = ("jwk", "pem", "pem_file")
_SECRET_FIELDS = frozenset({"value", "content_type", "tags", "enabled", "not_before", "expires"})
_JWK_BINARY = ("n", "e", "d", "dp", "dq", "qi", "p", "q", "k", "t", "x", "y")


class ExportFormat(StrEnum):
    yaml = "yaml"
    json = "json"


# -- reading and writing the file -----------------------------------------------------------------
def load_seed(path: Path) -> dict[str, Any]:
    """The seed file at ``path``: JSON when it ends in ``.json``, else YAML. Raises CliError if unreadable."""
    try:
        text = path.expanduser().read_text()
    except OSError as e:
        raise CliError(f"cannot read the seed file {path}: {e.strerror or e}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as e:  # json.JSONDecodeError
        raise CliError(f"{path} is not valid JSON: {e}") from None
    except Exception as e:  # yaml.YAMLError (imported lazily)
        if type(e).__module__.startswith("yaml"):
            raise CliError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from None
        raise
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CliError(f"{path}: the seed file must be a mapping with `keys` and/or `secrets`.")
    return data


def dump_seed(data: Mapping[str, Any], fmt: ExportFormat = ExportFormat.yaml) -> str:
    """``data`` (as :func:`export_vault` returns it) as YAML or JSON text ending in a newline."""
    if fmt is ExportFormat.json:
        return json.dumps(data, indent=2) + "\n"
    import yaml

    text: str = yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text


# -- validation -----------------------------------------------------------------------------------
def _section(spec: Mapping[str, Any], name: str) -> dict[str, dict[str, Any]]:
    section = spec.get(name) or {}
    if not isinstance(section, dict):
        raise CliError(f"`{name}` must map names to their settings.")
    out: dict[str, dict[str, Any]] = {}
    for obj, settings in section.items():
        if settings is not None and not isinstance(settings, dict):
            raise CliError(f"{name}.{obj}: its settings must be a mapping.")
        out[str(obj)] = settings or {}
    return out


def _check_fields(where: str, settings: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise CliError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}.")


def _tags(where: str, value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise CliError(f"{where}.tags must map strings to strings (quote numbers and booleans in YAML).")
    return dict(value)


def _time(where: str, field: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp as one
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise CliError(f"{where}.{field} must be an ISO 8601 time like 2030-01-01T00:00:00Z, not {value!r}.")


def _attributes(where: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    enabled = settings.get("enabled", True)
    if not isinstance(enabled, bool):
        raise CliError(f"{where}.enabled must be true or false.")
    out: dict[str, Any] = {"enabled": enabled, "tags": _tags(where, settings.get("tags"))}
    not_before = _time(where, "not_before", settings.get("not_before"))
    expires = _time(where, "expires", settings.get("expires"))
    if not_before is not None:
        out["not_before"] = not_before
    if expires is not None:
        out["expires_on"] = expires
    return out


def _ops(where: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(op, str) for op in value):
        raise CliError(f"{where}.ops must be a list of operation names, e.g. [sign, verify].")
    return list(value)


def _b64url(where: str, member: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise CliError(f"{where}.jwk.{member} must be a base64url string.")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise CliError(f"{where}.jwk.{member} is not base64url.") from None


def _jwk_fields(where: str, settings: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """The JsonWebKey members of an imported key (from ``jwk``, ``pem`` or ``pem_file``)."""
    sources = [s for s in _IMPORT_SOURCES if s in settings]
    if len(sources) > 1:
        raise CliError(f"{where}: give one of jwk, pem or pem_file, not {' and '.join(sources)}.")
    for field in ("kty", "size", "curve"):
        if field in settings:
            raise CliError(f"{where}: {field} comes from the imported key; drop it (hsm: true imports as -HSM).")
    if sources[0] == "jwk":
        jwk = settings["jwk"]
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kty"), str):
            raise CliError(f"{where}.jwk must be a JWK mapping with kty.")
        out: dict[str, Any] = {"kty": jwk["kty"]}
        if "crv" in jwk:
            out["crv"] = jwk["crv"]
        for member in _JWK_BINARY:
            if member in jwk:
                out[member] = _b64url(where, member, jwk[member])
        return out
    password = settings.get("pem_password")
    if sources[0] == "pem":
        pem = settings["pem"]
    else:
        path = Path(str(settings["pem_file"])).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            pem = path.read_text()
        except OSError as e:
            raise CliError(f"{where}.pem_file: cannot read {path}: {e.strerror or e}") from None
    if not isinstance(pem, str):
        raise CliError(f"{where}.pem must be the PEM text.")
    return pem_to_jwk(pem, str(password) if password is not None else None)


# -- seeding --------------------------------------------------------------------------------------
def seed_vault(
    data_dir: DataDir, vault_name: str, spec: Mapping[str, Any], *, base_dir: Path | None = None
) -> dict[str, list[str]]:
    """Create (or add versions of) the keys and secrets ``spec`` describes in ``vault_name``.

    ``base_dir``: where ``pem_file`` paths are relative to (default: the working directory).
    Everything is checked before anything is written. Returns ``{"keys": [...], "secrets": [...]}``,
    the names written. Raises CliError for a malformed spec (naming the object and field) and lets
    the SDK's errors (a refused key type, a missing vault) through for :func:`kluis.cli.common.run`.
    """
    _check_fields("seed file", spec, frozenset({"keys", "secrets", "version"}))
    base = base_dir or Path.cwd()
    keys, secrets = _section(spec, "keys"), _section(spec, "secrets")
    for kind, names, tag_length in (("keys", keys, MAX_TAG_LENGTH), ("secrets", secrets, MAX_SECRET_TAG_LENGTH)):
        for name, settings in names.items():
            _check_with_the_vaults_rules(f"{kind}.{name}", name, settings, tag_length)
    planned = [(name, *_key_plan(f"keys.{name}", name, s, base)) for name, s in keys.items()]
    secret_plans = [_secret_plan(f"secrets.{name}", name, s) for name, s in secrets.items()]
    hsm = [name for name, _, needs_hsm in planned if needs_hsm]
    if hsm and _vault_sku(data_dir, vault_name) != "premium":  # refused by the vault: say so before writing
        raise CliError(
            f"keys.{hsm[0]}: HSM-protected keys need a premium vault and '{vault_name}' is standard "
            f"(kluis keyvault create --sku premium); nothing was written."
        )
    key_plans = [(name, apply) for name, apply, _ in planned]
    done: dict[str, list[str]] = {"keys": [], "secrets": []}
    key_client: KeyClient = connect(data_dir, ObjectRef(vault_name), _key_client_class())
    secret_client: SecretClient = connect(data_dir, ObjectRef(vault_name), _secret_client_class())
    with key_client, secret_client:
        # A deleted (not purged) object holds its name: a write to it is refused (Conflict)
        held = {
            "keys": {d.name.lower() for d in key_client.list_deleted_keys() if d.name} if keys else set(),
            "secrets": {d.name.lower() for d in secret_client.list_deleted_secrets() if d.name} if secrets else set(),
        }
        for kind, names in (("keys", keys), ("secrets", secrets)):
            taken = next((n for n in names if n.lower() in held[kind]), None)
            if taken is not None:
                raise CliError(
                    f"{kind}.{taken}: a deleted {kind[:-1]} holds this name until it is purged or recovered "
                    f"(kluis {kind[:-1]} purge / recover); nothing was written."
                )
        try:
            for name, apply in key_plans:
                where = f"keys.{name}"
                done["keys"].append(apply(key_client))
            for name, value, kwargs in secret_plans:
                where = f"secrets.{name}"
                secret_client.set_secret(name, value, **kwargs)
                done["secrets"].append(name)
        except Exception as e:  # refused by the vault after the checks above: say what was written already
            if not done["keys"] and not done["secrets"]:
                raise
            written = "; ".join(f"{kind} {', '.join(names)}" for kind, names in done.items() if names)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise CliError(f"{where}: {first} (written before it: {written})") from None
    return done


def _check_with_the_vaults_rules(where: str, name: str, settings: Mapping[str, Any], tag_length: int) -> None:
    """The vault's own rules for a name, tags and a secret's value and content type (kluis.domain's),
    checked before anything is written; CliError naming the object."""
    try:
        validate_name(name)
        tags = settings.get("tags")
        if isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values()):  # (types: _tags says)
            check_tags(tags, max_length=tag_length)
    except VaultError as e:
        raise CliError(f"{where}: {e.message}") from None
    value, content_type = settings.get("value"), settings.get("content_type")
    if isinstance(value, str) and len(value) > MAX_VALUE_LENGTH:
        raise CliError(f"{where}.value is {len(value)} characters; a secret holds at most {MAX_VALUE_LENGTH}.")
    if isinstance(content_type, str) and len(content_type) > MAX_CONTENT_TYPE_LENGTH:
        raise CliError(f"{where}.content_type is longer than {MAX_CONTENT_TYPE_LENGTH} characters.")


def _key_client_class() -> type[KeyClient]:
    from azure.keyvault.keys import KeyClient

    return KeyClient


def _secret_client_class() -> type[SecretClient]:
    from azure.keyvault.secrets import SecretClient

    return SecretClient


def _vault_sku(data_dir: DataDir, vault_name: str) -> str:
    """The vault's SKU ("standard" or "premium"); CliError when there is no such vault."""
    from kluis.cli.client import AdminClient

    vault = AdminClient(data_dir).call("GET", f"/vaults/{vault_name}")
    return str(vault["properties"]["sku"]["name"])


_KTYS = ("RSA", "RSA-HSM", "EC", "EC-HSM", "oct-HSM")
_CURVES = ("P-256", "P-256K", "P-384", "P-521")
_SIZES = {"RSA": (2048, 3072, 4096), "oct": (128, 192, 256)}  # Azure's key sizes (bits)


def _key_plan(where: str, name: str, settings: Mapping[str, Any], base_dir: Path) -> tuple[Any, bool]:
    """A function that writes this key with a KeyClient and returns its name (checked now, run later),
    and whether the key is HSM-protected (a premium vault's)."""
    _check_fields(where, settings, _KEY_FIELDS)
    attributes = _attributes(where, settings)
    ops = _ops(where, settings.get("ops"))
    hsm = settings.get("hsm")
    if hsm is not None and not isinstance(hsm, bool):
        raise CliError(f"{where}.hsm must be true or false.")
    if any(s in settings for s in _IMPORT_SOURCES):
        fields = _jwk_fields(where, settings, base_dir)

        def import_key(client: KeyClient) -> str:
            from azure.keyvault.keys import JsonWebKey

            client.import_key(name, JsonWebKey(key_ops=ops, **fields), hardware_protected=hsm, **attributes)
            return name

        return import_key, bool(hsm) or str(fields.get("kty", "")).endswith("-HSM")
    if hsm is not None:
        raise CliError(f"{where}.hsm is for imported keys; a created key says it in kty (RSA-HSM, EC-HSM).")
    kty = settings.get("kty", "RSA")
    size, curve = settings.get("size"), settings.get("curve")
    if kty not in _KTYS:
        raise CliError(f"{where}.kty must be RSA, RSA-HSM, EC, EC-HSM or oct-HSM.")
    family = kty.removesuffix("-HSM")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
        raise CliError(f"{where}.size must be a number of bits.")
    if size is not None and size not in _SIZES.get(family, ()):
        allowed = ", ".join(map(str, _SIZES.get(family, ())))
        raise CliError(f"{where}.size {size} is not a {kty} key size" + (f" ({allowed})." if allowed else "."))
    if curve is not None and (family != "EC" or curve not in _CURVES):
        raise CliError(f"{where}.curve must be one of {', '.join(_CURVES)}, for EC keys.")

    def create_key(client: KeyClient) -> str:
        client.create_key(name, kty, size=size, curve=curve, key_operations=ops, **attributes)
        return name

    return create_key, kty.endswith("-HSM")


def _secret_plan(where: str, name: str, settings: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    _check_fields(where, settings, _SECRET_FIELDS)
    value = settings.get("value")
    if value is None:
        raise CliError(f"{where} has no value (an export has them only with --include-secret-values).")
    if not isinstance(value, str):
        raise CliError(f"{where}.value must be a string (quote numbers and booleans in YAML).")
    content_type = settings.get("content_type")
    if content_type is not None and not isinstance(content_type, str):
        raise CliError(f"{where}.content_type must be a string.")
    return name, value, {"content_type": content_type, **_attributes(where, settings)}


# -- exporting ------------------------------------------------------------------------------------
def export_vault(data_dir: DataDir, vault_name: str, *, include_secret_values: bool = False) -> dict[str, Any]:
    """The vault's live (not deleted) keys and secrets in the seed format, latest versions, sorted by name.

    Keys carry only public members (``public_jwk``); secret values only with ``include_secret_values``.
    Secrets that back a certificate (``managed``) are left out. SDK errors pass through.
    """
    out: dict[str, Any] = {"version": 1, "keys": {}, "secrets": {}}
    key_client: KeyClient = connect(data_dir, ObjectRef(vault_name), _key_client_class())
    with key_client:
        names = sorted(p.name for p in key_client.list_properties_of_keys() if p.name and not p.managed)
        for name in names:
            out["keys"][name] = _key_entry(key_client.get_key(name))
    secret_client: SecretClient = connect(data_dir, ObjectRef(vault_name), _secret_client_class())
    with secret_client:
        listed = {p.name: p for p in secret_client.list_properties_of_secrets() if p.name and not p.managed}
        for name in sorted(listed):
            props = listed[name]
            entry = _common(props)
            if props.content_type:
                entry = {"content_type": props.content_type, **entry}
            if include_secret_values:
                entry["value"] = secret_client.get_secret(name).value
            out["secrets"][name] = entry
    return out


def _common(props: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"enabled": bool(props.enabled)}
    if props.not_before:
        entry["not_before"] = plain(props.not_before)
    if props.expires_on:
        entry["expires"] = plain(props.expires_on)
    if props.tags:
        entry["tags"] = dict(props.tags)
    return entry


def _b64url_text(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def _key_entry(key: KeyVaultKey) -> dict[str, Any]:
    jwk = key.key
    kty = plain(key.key_type)
    n, crv = getattr(jwk, "n", None), plain(getattr(jwk, "crv", None))
    entry: dict[str, Any] = {"kty": kty}
    if n:
        entry["size"] = len(n.lstrip(b"\0")) * 8
    if crv:
        entry["curve"] = crv
    if key.key_operations:
        entry["ops"] = [plain(op) for op in key.key_operations]
    entry.update(_common(key.properties))
    public: dict[str, Any] = {"kty": kty, **({"crv": crv} if crv else {})}
    for member in ("n", "e", "x", "y"):  # never d, p, q, dp, dq, qi, k: private material is not exported
        value = getattr(jwk, member, None)
        if value:
            public[member] = _b64url_text(value)
    if len(public) > 1:
        entry["public_jwk"] = public
    return entry


# -- the commands ---------------------------------------------------------------------------------
VaultNameOpt = Annotated[str, typer.Option("--vault-name", help="The vault to fill or read.")]


def seed_command(
    file: Annotated[Path, typer.Argument(help="The seed file: YAML, or JSON when it ends in .json.")],
    vault_name: VaultNameOpt,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Fill a vault from a seed file (keys to create or import, secrets to set); prints the names written."""

    def work() -> dict[str, list[str]]:
        spec = load_seed(file)
        return seed_vault(data_dir_of(data_dir), vault_name, spec, base_dir=file.expanduser().parent)

    emit(run(work), output)


def export_command(
    vault_name: VaultNameOpt,
    include_secret_values: Annotated[
        bool, typer.Option("--include-secret-values", help="Also write secret values (needs get on secrets).")
    ] = False,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="yaml or json.")] = ExportFormat.yaml,
    file: Annotated[Path | None, typer.Option("--file", help="Write here instead of standard output.")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Write a vault's keys (metadata and public keys, never private material) and secrets in the seed format."""
    data = run(export_vault, data_dir_of(data_dir), vault_name, include_secret_values=include_secret_values)
    text = dump_seed(data, fmt)
    if file is None:
        print(text, end="")
    elif include_secret_values:
        run(write_private, file.expanduser(), text)  # secret values: readable by their owner only
    else:
        run(file.expanduser().write_text, text)

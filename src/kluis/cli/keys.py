"""``kluis keyvault key``: az's data-plane key verbs, built on the official ``azure-keyvault-keys`` SDK.

Every verb goes through :class:`~azure.keyvault.keys.KeyClient` (or the CryptographyClient it hands
out), so the CLI dogfoods the same SDK path applications use. ``--vault-name NAME`` reaches
``https://NAME.vault.azure.net`` through kluis's CONNECT proxy (``*.localhost`` does not resolve
everywhere and the server certificate has no per-vault names); the administrator credential comes
from the data dir. With the proxy off (``--proxy-port 0``) only the default vault is reachable, on
``https://localhost:PORT``. Output is shaped like az's: camelCase keys, bytes as standard base64.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from enum import Enum, StrEnum
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from kluis.cli.client import CliError, load_settings
from kluis.cli.common import DataDirOpt, KluisTyper, OutputOpt, R, data_dir_of, run
from kluis.cli.key_args import (
    AzCommand,
    _b64decode,
    _load_json,
    _unhex,
    parse_bool,
    parse_datetime,
    parse_ops,
    parse_rotation_policy,
    parse_tags,
    pem_to_jwk,
)
from kluis.cli.key_client import KeyRef, connect, resolve_ref
from kluis.cli.key_output import _value, key_bundle, key_item, rotation_policy_dict, show
from kluis.cli.output import Output

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.keys.crypto import CryptographyClient


__all__ = ["key_app"]

# -- the commands ----------------------------------------------------------------------------------
key_app = KluisTyper(help="Keys in a vault (like `az keyvault key`).")
rotation_app = KluisTyper(help="A key's rotation policy.")
key_app.add_typer(rotation_app, name="rotation-policy")

VaultOpt = Annotated[str | None, typer.Option("--vault-name", help="Name of the vault.", show_default=False)]
NameOpt = Annotated[str | None, typer.Option("--name", "-n", help="Name of the key.", show_default=False)]
IdOpt = Annotated[
    str | None,
    typer.Option(
        "--id",
        help="Key identifier: https://NAME.vault.azure.net/keys/KEY, optionally /VERSION.",
        show_default=False,
    ),
]
VaultIdOpt = Annotated[
    str | None, typer.Option("--id", help="Vault URL, e.g. https://NAME.vault.azure.net.", show_default=False)
]
VersionOpt = Annotated[str | None, typer.Option("--version", "-v", help="Key version (default: latest).")]
OpsOpt = Annotated[
    list[str] | None,
    typer.Option("--ops", help="Space-separated operations: encrypt decrypt sign verify wrapKey unwrapKey import."),
]
TagsOpt = Annotated[list[str] | None, typer.Option("--tags", help='Space-separated tags: key[=value]; "" clears.')]
NotBeforeOpt = Annotated[str | None, typer.Option("--not-before", help="Not usable before (UTC: Y-m-dTH:M:SZ).")]
ExpiresOpt = Annotated[str | None, typer.Option("--expires", help="Expiry (UTC: Y-m-dTH:M:SZ).")]
ExportableOpt = Annotated[str | None, typer.Option("--exportable", help="Whether the private key can be exported.")]
PolicyOpt = Annotated[str | None, typer.Option("--policy", help="Release policy: JSON, or a file containing it.")]
ImmutableOpt = Annotated[str | None, typer.Option("--immutable", help="Make the release policy immutable.")]
DisabledOpt = Annotated[str | None, typer.Option("--disabled", help="Create the key disabled.")]
MaxResultsOpt = Annotated[int | None, typer.Option("--maxresults", help="Maximum number of results.")]


class Protection(StrEnum):
    software = "software"
    hsm = "hsm"


class DataType(StrEnum):
    base64 = "base64"
    plaintext = "plaintext"


_KTYS = {k.lower(): k for k in ("EC", "EC-HSM", "RSA", "RSA-HSM", "oct", "oct-HSM")}


def _kty(value: str, protection: Protection | None) -> str:
    kty = _KTYS.get(value.lower())
    if kty is None:
        raise CliError(f"--kty must be one of {', '.join(_KTYS.values())}, not {value!r}.")
    if protection is Protection.hsm and not kty.endswith("-HSM"):
        kty += "-HSM"
    return kty


def _client_for(
    data_dir: Path | None,
    vault_name: str | None,
    name: str | None,
    key_id: str | None,
    version: str | None = None,
    *,
    need_name: bool = True,
) -> tuple[KeyClient, KeyRef]:
    d = data_dir_of(data_dir)
    ref = resolve_ref(vault_name, name, key_id, version, need_name=need_name, domains=load_settings(d).domains)
    return connect(d, ref), ref


def _key_name(ref: KeyRef) -> str:
    assert ref.name is not None
    return ref.name


def _release_policy_arg(policy: str | None, immutable: str | None) -> Any:
    if policy is None:
        if immutable is not None:
            raise CliError("--immutable needs --policy.")
        return None
    from azure.keyvault.keys import KeyReleasePolicy

    doc = _load_json(policy, "--policy")
    return KeyReleasePolicy(
        json.dumps(doc, separators=(",", ":")).encode(),
        content_type="application/json; charset=utf-8",
        immutable=parse_bool(immutable, "--immutable"),
    )


def _crypto(client: KeyClient, ref: KeyRef) -> CryptographyClient:
    return client.get_cryptography_client(_key_name(ref), key_version=ref.version)


E = TypeVar("E", bound=Enum)


def _algorithm(enum: type[E], value: str) -> E | str:
    """The SDK's enum member when it knows the name (its local crypto needs it), else the string for the
    server to judge."""
    try:
        return enum(value)
    except ValueError:
        return value


def _by_name(
    app: typer.Typer, verb: str, doc: str, call: Callable[[KeyClient, str], Any], shape: Callable[[Any], Any]
) -> None:
    """Register ``verb``: address one key (--vault-name/--name or --id), ``call(client, key name)``, print ``shape``."""

    def command(
        vault_name: VaultOpt = None,
        name: NameOpt = None,
        key_id: IdOpt = None,
        data_dir: DataDirOpt = None,
        output: OutputOpt = Output.json,
    ) -> None:
        def go() -> Any:
            client, ref = _client_for(data_dir, vault_name, name, key_id)
            return shape(call(client, _key_name(ref)))

        show(run(go), output)

    command.__doc__ = doc
    app.command(verb)(command)


@key_app.command("create", cls=AzCommand)
def key_create(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    key_id: IdOpt = None,
    kty: Annotated[str, typer.Option("--kty", help="EC, EC-HSM, RSA, RSA-HSM, oct or oct-HSM.")] = "RSA",
    size: Annotated[int | None, typer.Option("--size", help="Key size in bits (RSA, oct).")] = None,
    curve: Annotated[str | None, typer.Option("--curve", help="P-256, P-256K, P-384 or P-521.")] = None,
    protection: Annotated[Protection | None, typer.Option("--protection", "-p")] = None,
    ops: OpsOpt = None,
    exportable: ExportableOpt = None,
    policy: PolicyOpt = None,
    immutable: ImmutableOpt = None,
    tags: TagsOpt = None,
    disabled: DisabledOpt = None,
    not_before: NotBeforeOpt = None,
    expires: ExpiresOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Create a key (or a new version of it)."""

    def go() -> dict[str, Any]:
        client, ref = _client_for(data_dir, vault_name, name, key_id)
        key = client.create_key(
            _key_name(ref),
            _kty(kty, protection),
            size=size,
            curve=curve,
            key_operations=parse_ops(ops),
            enabled=not parse_bool(disabled, "--disabled"),
            tags=parse_tags(tags),
            not_before=parse_datetime(not_before),
            expires_on=parse_datetime(expires),
            exportable=parse_bool(exportable, "--exportable"),
            release_policy=_release_policy_arg(policy, immutable),
        )
        return key_bundle(key)

    show(run(go), output)


@key_app.command("import", cls=AzCommand)
def key_import(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    key_id: IdOpt = None,
    pem_file: Annotated[Path | None, typer.Option("--pem-file", help="PEM file with the private key.")] = None,
    pem_string: Annotated[str | None, typer.Option("--pem-string", help="The PEM private key itself.")] = None,
    pem_password: Annotated[str | None, typer.Option("--pem-password", help="Password of an encrypted PEM.")] = None,
    kty: Annotated[str, typer.Option("--kty", help="Accepted for az compatibility (BYOK only).")] = "RSA",
    curve: Annotated[str | None, typer.Option("--curve", help="Accepted for az compatibility (BYOK only).")] = None,
    protection: Annotated[Protection | None, typer.Option("--protection", "-p")] = None,
    ops: OpsOpt = None,
    exportable: ExportableOpt = None,
    policy: PolicyOpt = None,
    immutable: ImmutableOpt = None,
    tags: TagsOpt = None,
    disabled: DisabledOpt = None,
    not_before: NotBeforeOpt = None,
    expires: ExpiresOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Import an RSA or EC private key from a PEM file or string."""

    def go() -> dict[str, Any]:
        from azure.keyvault.keys import JsonWebKey

        if (pem_file is None) == (pem_string is None):
            raise CliError("Give exactly one of --pem-file or --pem-string.")
        pem = pem_file.expanduser().read_text() if pem_file is not None else pem_string or ""
        fields = pem_to_jwk(pem, pem_password)
        client, ref = _client_for(data_dir, vault_name, name, key_id)
        key = client.import_key(
            _key_name(ref),
            JsonWebKey(key_ops=parse_ops(ops), **fields),
            hardware_protected=protection is Protection.hsm if protection else None,
            enabled=not parse_bool(disabled, "--disabled"),
            tags=parse_tags(tags),
            not_before=parse_datetime(not_before),
            expires_on=parse_datetime(expires),
            exportable=parse_bool(exportable, "--exportable"),
            release_policy=_release_policy_arg(policy, immutable),
        )
        return key_bundle(key)

    show(run(go), output)


@key_app.command("show")
def key_show(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    key_id: IdOpt = None,
    version: VersionOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Show a key (its public part) and its attributes."""

    def go() -> dict[str, Any]:
        client, ref = _client_for(data_dir, vault_name, name, key_id, version)
        return key_bundle(client.get_key(_key_name(ref), ref.version))

    show(run(go), output)


def _limited(items: Iterable[R], maxresults: int | None) -> list[R]:
    return list(islice(items, maxresults) if maxresults else items)


@key_app.command("list", cls=AzCommand)
def key_list(
    vault_name: VaultOpt = None,
    key_id: VaultIdOpt = None,
    maxresults: MaxResultsOpt = None,
    include_managed: Annotated[
        str | None, typer.Option("--include-managed", help="Include keys managed by certificates.")
    ] = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """List keys (versionless identifiers)."""

    def go() -> list[dict[str, Any]]:
        client, _ = _client_for(data_dir, vault_name, None, key_id, need_name=False)
        managed = bool(parse_bool(include_managed, "--include-managed"))
        items = (p for p in client.list_properties_of_keys(max_page_size=maxresults) if managed or not p.managed)
        return [key_item(p) for p in _limited(items, maxresults)]

    show(run(go), output)


@key_app.command("list-versions")
def key_list_versions(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    key_id: IdOpt = None,
    maxresults: MaxResultsOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """List a key's versions."""

    def go() -> list[dict[str, Any]]:
        client, ref = _client_for(data_dir, vault_name, name, key_id)
        items = client.list_properties_of_key_versions(_key_name(ref), max_page_size=maxresults)
        return [key_item(p) for p in _limited(items, maxresults)]

    show(run(go), output)


@key_app.command("list-deleted")
def key_list_deleted(
    vault_name: VaultOpt = None,
    key_id: VaultIdOpt = None,
    maxresults: MaxResultsOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """List deleted (recoverable) keys."""

    def go() -> list[dict[str, Any]]:
        client, _ = _client_for(data_dir, vault_name, None, key_id, need_name=False)
        return [key_item(k) for k in _limited(client.list_deleted_keys(max_page_size=maxresults), maxresults)]

    show(run(go), output)


_by_name(key_app, "show-deleted", "Show a deleted key.", lambda c, n: c.get_deleted_key(n), key_bundle)


@key_app.command("set-attributes", cls=AzCommand)
def key_set_attributes(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    key_id: IdOpt = None,
    version: VersionOpt = None,
    enabled: Annotated[str | None, typer.Option("--enabled", help="true or false.")] = None,
    ops: OpsOpt = None,
    tags: TagsOpt = None,
    not_before: NotBeforeOpt = None,
    expires: ExpiresOpt = None,
    policy: PolicyOpt = None,
    immutable: ImmutableOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Change a key's attributes (not its material)."""

    def go() -> dict[str, Any]:
        client, ref = _client_for(data_dir, vault_name, name, key_id, version)
        key = client.update_key_properties(
            _key_name(ref),
            ref.version,
            key_operations=parse_ops(ops),
            enabled=parse_bool(enabled, "--enabled"),
            tags=parse_tags(tags),
            not_before=parse_datetime(not_before),
            expires_on=parse_datetime(expires),
            release_policy=_release_policy_arg(policy, immutable),
        )
        return key_bundle(key)

    show(run(go), output)


_by_name(
    key_app,
    "delete",
    "Delete a key (recoverable until purged).",
    lambda c, n: c.begin_delete_key(n).result(),
    key_bundle,
)
_by_name(key_app, "recover", "Recover a deleted key.", lambda c, n: c.begin_recover_deleted_key(n).result(), key_bundle)


@key_app.command("purge")
def key_purge(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    key_id: IdOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Permanently delete a deleted key."""

    def go() -> None:
        client, ref = _client_for(data_dir, vault_name, name, key_id)
        client.purge_deleted_key(_key_name(ref))

    run(go)


@key_app.command("backup")
def key_backup(
    file: Annotated[Path, typer.Option("--file", "-f", help="Where to write the backup blob.")],
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    key_id: IdOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Back up a key (all versions) to a file only a kluis/Key Vault can restore."""

    def go() -> None:
        client, ref = _client_for(data_dir, vault_name, name, key_id)
        blob = client.backup_key(_key_name(ref))
        file.expanduser().write_bytes(blob)

    run(go)


@key_app.command("restore")
def key_restore(
    file: Annotated[Path, typer.Option("--file", "-f", help="A blob written by `backup`.")],
    vault_name: VaultOpt = None,
    key_id: VaultIdOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Restore a backed-up key into a vault."""

    def go() -> dict[str, Any]:
        blob = file.expanduser().read_bytes()
        client, _ = _client_for(data_dir, vault_name, None, key_id, need_name=False)
        return key_bundle(client.restore_key_backup(blob))

    show(run(go), output)


AlgorithmOpt = Annotated[str, typer.Option("--algorithm", "-a", help="e.g. RSA-OAEP-256, A256GCM, ES256, PS256.")]
DataTypeOpt = Annotated[
    DataType, typer.Option("--data-type", help="How --value (encrypt) / the result (decrypt) is given.")
]
IvOpt = Annotated[str | None, typer.Option("--iv", help="Initialization vector, hex (AES-CBC/GCM).")]
AadOpt = Annotated[str | None, typer.Option("--aad", help="Additional authenticated data, hex (AES-GCM).")]


def _hex(data: bytes | None) -> str | None:
    return data.hex() if data else None


@key_app.command("encrypt")
def key_encrypt(
    algorithm: AlgorithmOpt,
    value: Annotated[str, typer.Option("--value", help="The data to encrypt (see --data-type).")],
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    key_id: IdOpt = None,
    version: VersionOpt = None,
    data_type: DataTypeOpt = DataType.base64,
    iv: IvOpt = None,
    aad: AadOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Encrypt with a key: prints kid, result (base64), algorithm, iv/tag/aad (hex)."""

    def go() -> dict[str, Any]:
        from azure.keyvault.keys.crypto import EncryptionAlgorithm

        plaintext = value.encode() if data_type is DataType.plaintext else _b64decode(value, "--value")
        iv_bytes, aad_bytes = _unhex(iv, "--iv"), _unhex(aad, "--aad")
        client, ref = _client_for(data_dir, vault_name, name, key_id, version)
        res = _crypto(client, ref).encrypt(
            _algorithm(EncryptionAlgorithm, algorithm),  # type: ignore[arg-type]
            plaintext,
            iv=iv_bytes,
            additional_authenticated_data=aad_bytes,
        )
        return {
            "aad": _hex(res.aad),
            "algorithm": _value(res.algorithm),
            "iv": _hex(res.iv),
            "kid": res.key_id,
            "result": base64.b64encode(res.ciphertext).decode(),
            "tag": _hex(res.tag),
        }

    show(run(go), output)


@key_app.command("decrypt")
def key_decrypt(
    algorithm: AlgorithmOpt,
    value: Annotated[str, typer.Option("--value", help="The ciphertext, base64.")],
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    key_id: IdOpt = None,
    version: VersionOpt = None,
    data_type: DataTypeOpt = DataType.base64,
    iv: IvOpt = None,
    aad: AadOpt = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Authentication tag, hex (AES-GCM).")] = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Decrypt with a key: prints kid, result (base64, or text with --data-type plaintext), algorithm."""

    def go() -> dict[str, Any]:
        from azure.keyvault.keys.crypto import EncryptionAlgorithm

        ciphertext = _b64decode(value, "--value")
        iv_b, aad_b, tag_b = _unhex(iv, "--iv"), _unhex(aad, "--aad"), _unhex(tag, "--tag")
        client, ref = _client_for(data_dir, vault_name, name, key_id, version)
        res = _crypto(client, ref).decrypt(
            _algorithm(EncryptionAlgorithm, algorithm),  # type: ignore[arg-type]
            ciphertext,
            iv=iv_b,
            authentication_tag=tag_b,
            additional_authenticated_data=aad_b,
        )
        if data_type is DataType.plaintext:
            try:
                result = res.plaintext.decode("utf-8")
            except UnicodeDecodeError:
                raise CliError("The plaintext is not UTF-8 text; use --data-type base64.") from None
        else:
            result = base64.b64encode(res.plaintext).decode()
        return {"algorithm": _value(res.algorithm), "kid": res.key_id, "result": result}

    show(run(go), output)


DigestOpt = Annotated[str, typer.Option("--digest", help="The digest to sign/verify, base64.")]


@key_app.command("sign")
def key_sign(
    algorithm: AlgorithmOpt,
    digest: DigestOpt,
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    key_id: IdOpt = None,
    version: VersionOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Sign a digest: prints keyId, signature (base64), algorithm."""

    def go() -> dict[str, Any]:
        from azure.keyvault.keys.crypto import SignatureAlgorithm

        digest_b = _b64decode(digest, "--digest")
        client, ref = _client_for(data_dir, vault_name, name, key_id, version)
        res = _crypto(client, ref).sign(_algorithm(SignatureAlgorithm, algorithm), digest_b)  # type: ignore[arg-type]
        return {
            "algorithm": _value(res.algorithm),
            "keyId": res.key_id,
            "signature": base64.b64encode(res.signature).decode(),
        }

    show(run(go), output)


@key_app.command("verify")
def key_verify(
    algorithm: AlgorithmOpt,
    digest: DigestOpt,
    signature: Annotated[str, typer.Option("--signature", help="The signature, base64.")],
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    key_id: IdOpt = None,
    version: VersionOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Verify a signature: prints isValid (plus keyId and algorithm)."""

    def go() -> dict[str, Any]:
        from azure.keyvault.keys.crypto import SignatureAlgorithm

        digest_b, sig_b = _b64decode(digest, "--digest"), _b64decode(signature, "--signature")
        client, ref = _client_for(data_dir, vault_name, name, key_id, version)
        res = _crypto(client, ref).verify(_algorithm(SignatureAlgorithm, algorithm), digest_b, sig_b)  # type: ignore[arg-type]
        return {"algorithm": _value(res.algorithm), "isValid": res.is_valid, "keyId": res.key_id}

    show(run(go), output)


_by_name(
    key_app, "rotate", "Create a new version of a key now, as its rotation policy would.",
    lambda c, n: c.rotate_key(n), key_bundle,
)  # fmt: skip


@key_app.command("random")
def key_random(
    count: Annotated[int, typer.Option("--count", help="How many random bytes (1-128).")],
    vault_name: VaultOpt = None,
    key_id: VaultIdOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Random bytes from the vault, base64."""

    def go() -> dict[str, Any]:
        client, _ = _client_for(data_dir, vault_name, None, key_id, need_name=False)
        return {"value": base64.b64encode(client.get_random_bytes(count)).decode()}

    show(run(go), output)


_by_name(
    rotation_app, "show", "Show a key's rotation policy.",
    lambda c, n: c.get_key_rotation_policy(n), rotation_policy_dict,
)  # fmt: skip


@rotation_app.command("update")
def rotation_update(
    value: Annotated[str, typer.Option("--value", help="The policy: JSON, or a file containing it (az's shape).")],
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    key_id: IdOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Set a key's rotation policy."""

    def go() -> dict[str, Any]:
        from azure.keyvault.keys import KeyRotationLifetimeAction, KeyRotationPolicy

        actions, expires_in = parse_rotation_policy(value)
        client, ref = _client_for(data_dir, vault_name, name, key_id)
        policy = KeyRotationPolicy(
            lifetime_actions=[
                KeyRotationLifetimeAction(
                    a.action, time_after_create=a.time_after_create, time_before_expiry=a.time_before_expiry
                )
                for a in actions
            ],
            expires_in=expires_in,
        )
        return rotation_policy_dict(client.update_key_rotation_policy(_key_name(ref), policy))

    show(run(go), output)

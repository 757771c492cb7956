"""``kluis keyvault secret``: az's data-plane secret verbs, built on the official ``azure-keyvault-secrets`` SDK.

Every verb goes through :class:`~azure.keyvault.secrets.SecretClient`, the SDK path applications
use, addressed like the key verbs (``--vault-name NAME --name S [--version V]`` or ``--id``).
Output is shaped like az's (camelCase JSON). ``set --file`` and ``download`` follow az: the file is
read (or written) with ``--encoding`` (``utf-8`` default, ``utf-16le``, ``utf-16be``, ``ascii``, or
``base64`` / ``hex`` for binary files), and ``set --file`` records the encoding in the
``file-encoding`` tag that ``download`` reads back.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from kluis.cli.client import CliError, load_settings
from kluis.cli.common import KluisTyper, run
from kluis.cli.key_args import AzCommand, parse_bool, parse_datetime, parse_tags
from kluis.cli.key_client import KeyRef
from kluis.cli.key_output import show
from kluis.cli.output import Output, emit
from kluis.cli.secret_client import connect_secrets, resolve_secret_ref
from kluis.config import DataDir, default_data_dir

if TYPE_CHECKING:
    from azure.keyvault.secrets import DeletedSecret, KeyVaultSecret, SecretClient, SecretProperties

__all__ = ["FILE_ENCODING_TAG", "decode_file", "encode_file", "secret_app", "secret_bundle", "secret_item"]

secret_app = KluisTyper(help="Secrets in a vault (like `az keyvault secret`).")

FILE_ENCODING_TAG = "file-encoding"  # the tag az writes on `secret set --file` and reads on `download`
R = TypeVar("R")

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="KLUIS_DATA_DIR", help="Where kluis keeps its state.", show_default=False),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="json, table or tsv.")]
VaultOpt = Annotated[str | None, typer.Option("--vault-name", help="Name of the vault.", show_default=False)]
NameOpt = Annotated[str | None, typer.Option("--name", "-n", help="Name of the secret.", show_default=False)]
IdOpt = Annotated[
    str | None,
    typer.Option(
        "--id",
        help="Secret identifier, e.g. https://NAME.vault.azure.net/secrets/S or .../secrets/S/VERSION.",
        show_default=False,
    ),
]
VaultIdOpt = Annotated[
    str | None, typer.Option("--id", help="Vault URL, e.g. https://NAME.vault.azure.net.", show_default=False)
]
VersionOpt = Annotated[str | None, typer.Option("--version", "-v", help="Secret version (default: latest).")]
TagsOpt = Annotated[list[str] | None, typer.Option("--tags", help='Space-separated tags: key[=value]; "" clears.')]
NotBeforeOpt = Annotated[str | None, typer.Option("--not-before", help="Not valid before (UTC: Y-m-dTH:M:SZ).")]
ExpiresOpt = Annotated[str | None, typer.Option("--expires", help="Expiry (UTC: Y-m-dTH:M:SZ).")]
ContentTypeOpt = Annotated[
    str | None, typer.Option("--content-type", help="A hint to interpret the value (e.g. text/plain).")
]
MaxResultsOpt = Annotated[int | None, typer.Option("--maxresults", help="Maximum number of results.")]


class Encoding(StrEnum):
    """az's ``--encoding`` values: text encodings, or ``base64`` / ``hex`` for binary files."""

    utf_8 = "utf-8"
    utf_16le = "utf-16le"
    utf_16be = "utf-16be"
    ascii = "ascii"
    base64 = "base64"
    hex = "hex"


EncodingOpt = Annotated[Encoding | None, typer.Option("--encoding", "-e", help="How the file is encoded.")]


# -- files (az's `set --file` / `download`) ----------------------------------------------------------
def encode_file(data: bytes, encoding: Encoding) -> str:
    """A file's bytes as a secret value: decoded text, or base64 (with az's line breaks) / hex for binary."""
    if encoding is Encoding.base64:
        return base64.encodebytes(data).decode()
    if encoding is Encoding.hex:
        return binascii.hexlify(data).decode()
    try:
        return data.decode(encoding.value)
    except UnicodeDecodeError:
        raise CliError(f"Unable to decode the file with '{encoding.value}' encoding.") from None


def decode_file(value: str, encoding: Encoding) -> bytes:
    """A secret value back to the file's bytes (the inverse of :func:`encode_file`)."""
    try:
        if encoding is Encoding.base64:
            return base64.b64decode(value)
        if encoding is Encoding.hex:
            return binascii.unhexlify(value.strip())
        return value.encode(encoding.value)
    except (ValueError, binascii.Error, UnicodeEncodeError) as e:
        raise CliError(f"The secret's value cannot be written with '{encoding.value}' encoding: {e}.") from None


# -- output shaped like az ---------------------------------------------------------------------------
def _time(v: Any) -> Any:
    return v.isoformat() if v is not None else None


def _attributes(p: SecretProperties) -> dict[str, Any]:
    return {
        "created": _time(p.created_on),
        "enabled": p.enabled,
        "expires": _time(p.expires_on),
        "notBefore": _time(p.not_before),
        "recoverableDays": p.recoverable_days,
        "recoveryLevel": p.recovery_level,
        "updated": _time(p.updated_on),
    }


def _deleted(obj: Any, out: dict[str, Any]) -> dict[str, Any]:
    from azure.keyvault.secrets import DeletedSecret

    if isinstance(obj, DeletedSecret):
        out["deletedDate"] = _time(obj.deleted_date)
        out["recoveryId"] = obj.recovery_id
        out["scheduledPurgeDate"] = _time(obj.scheduled_purge_date)
    return out


def secret_bundle(secret: KeyVaultSecret | DeletedSecret, *, with_value: bool = True) -> dict[str, Any]:
    """az's ``keyvault secret show`` / ``set`` JSON (``delete`` / ``show-deleted``: no value)."""
    p = secret.properties
    out: dict[str, Any] = {
        "attributes": _attributes(p),
        "contentType": p.content_type,
        "id": p.id,
        "kid": p.key_id,
        "managed": p.managed,
        "name": p.name,
        "tags": p.tags,
    }
    if with_value:
        out["value"] = getattr(secret, "value", None)
    return _deleted(secret, out)


def secret_item(item: SecretProperties | DeletedSecret) -> dict[str, Any]:
    """az's ``keyvault secret list`` / ``list-versions`` / ``list-deleted`` item (never a value)."""
    from azure.keyvault.secrets import DeletedSecret

    p = item.properties if isinstance(item, DeletedSecret) else item
    out = {
        "attributes": _attributes(p),
        "contentType": p.content_type,
        "id": p.id,
        "managed": p.managed,
        "name": p.name,
        "tags": p.tags,
    }
    return _deleted(item, out)


def _rows(data: Any) -> Any:
    def row(r: dict[str, Any]) -> dict[str, Any]:
        attrs = r.get("attributes") or {}
        flat = {
            "Name": r.get("name"),
            "Id": r.get("id"),
            "ContentType": r.get("contentType"),
            "Enabled": attrs.get("enabled"),
            "Expires": attrs.get("expires"),
            "Updated": attrs.get("updated"),
        }
        if "value" in r:
            flat["Value"] = r["value"]
        if "deletedDate" in r:
            flat["DeletedDate"] = r["deletedDate"]
            flat["ScheduledPurgeDate"] = r["scheduledPurgeDate"]
        return flat

    return [row(r) for r in data] if isinstance(data, list) else row(data)


def _show(data: Any, output: Output) -> None:
    if output is Output.json:
        show(data, output)
    else:
        emit(_rows(data), output)


# -- the commands ------------------------------------------------------------------------------------
def _client_for(
    data_dir: Path | None,
    vault_name: str | None,
    name: str | None,
    secret_id: str | None,
    version: str | None = None,
    *,
    need_name: bool = True,
) -> tuple[SecretClient, KeyRef]:
    d = DataDir(data_dir.expanduser() if data_dir else default_data_dir())
    ref = resolve_secret_ref(
        vault_name, name, secret_id, version, need_name=need_name, domains=load_settings(d).domains
    )
    return connect_secrets(d, ref), ref


def _name(ref: KeyRef) -> str:
    assert ref.name is not None
    return ref.name


def _limited(items: Iterable[R], maxresults: int | None) -> list[R]:
    return list(islice(items, maxresults) if maxresults else items)


@secret_app.command("set", cls=AzCommand)
def secret_set(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    secret_id: IdOpt = None,
    value: Annotated[str | None, typer.Option("--value", help="The secret's value.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the value from this file.")] = None,
    encoding: EncodingOpt = None,
    content_type: ContentTypeOpt = None,
    tags: TagsOpt = None,
    disabled: Annotated[str | None, typer.Option("--disabled", help="Create the secret disabled.")] = None,
    not_before: NotBeforeOpt = None,
    expires: ExpiresOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Create a secret, or a new version of it (from --value or --file)."""

    def go() -> dict[str, Any]:
        if (value is None) == (file is None):
            raise CliError("Give exactly one of --value or --file.")
        if encoding is not None and file is None:
            raise CliError("--encoding applies to --file only.")
        secret_tags = parse_tags(tags)
        text = value
        if file is not None:
            enc = encoding or Encoding.utf_8
            text = encode_file(file.expanduser().read_bytes(), enc)
            secret_tags = {**(secret_tags or {}), FILE_ENCODING_TAG: enc.value}
        assert text is not None
        client, ref = _client_for(data_dir, vault_name, name, secret_id)
        secret = client.set_secret(
            _name(ref),
            text,
            enabled=False if parse_bool(disabled, "--disabled") else None,
            tags=secret_tags,
            content_type=content_type,
            not_before=parse_datetime(not_before),
            expires_on=parse_datetime(expires),
        )
        return secret_bundle(secret)

    _show(run(go), output)


@secret_app.command("show")
def secret_show(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    secret_id: IdOpt = None,
    version: VersionOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Show a secret with its value."""

    def go() -> dict[str, Any]:
        client, ref = _client_for(data_dir, vault_name, name, secret_id, version)
        return secret_bundle(client.get_secret(_name(ref), ref.version))

    _show(run(go), output)


@secret_app.command("download")
def secret_download(
    file: Annotated[Path, typer.Option("--file", "-f", help="Where to write the value (must not exist).")],
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    secret_id: IdOpt = None,
    version: VersionOpt = None,
    encoding: EncodingOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Write a secret's value to a file, decoded with --encoding (default: the secret's file-encoding tag,
    else utf-8)."""

    def go() -> None:
        path = file.expanduser()
        if path.exists():
            raise CliError(f"File or directory named '{file}' already exists.")
        client, ref = _client_for(data_dir, vault_name, name, secret_id, version)
        secret = client.get_secret(_name(ref), ref.version)
        tagged = (secret.properties.tags or {}).get(FILE_ENCODING_TAG)
        if encoding is not None:
            enc = encoding
        else:
            try:
                enc = Encoding(tagged) if tagged else Encoding.utf_8
            except ValueError:
                raise CliError(f"The secret's {FILE_ENCODING_TAG} tag names an unknown encoding: {tagged!r}.") from None
        path.write_bytes(decode_file(secret.value or "", enc))

    run(go)


@secret_app.command("list", cls=AzCommand)
def secret_list(
    vault_name: VaultOpt = None,
    secret_id: VaultIdOpt = None,
    maxresults: MaxResultsOpt = None,
    include_managed: Annotated[
        str | None, typer.Option("--include-managed", help="Include secrets managed by certificates.")
    ] = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """List secrets (versionless identifiers, no values)."""

    def go() -> list[dict[str, Any]]:
        client, _ = _client_for(data_dir, vault_name, None, secret_id, need_name=False)
        managed = bool(parse_bool(include_managed, "--include-managed"))
        items = (p for p in client.list_properties_of_secrets(max_page_size=maxresults) if managed or not p.managed)
        return [secret_item(p) for p in _limited(items, maxresults)]

    _show(run(go), output)


@secret_app.command("list-versions")
def secret_list_versions(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    secret_id: IdOpt = None,
    maxresults: MaxResultsOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """List a secret's versions (no values)."""

    def go() -> list[dict[str, Any]]:
        client, ref = _client_for(data_dir, vault_name, name, secret_id)
        items = client.list_properties_of_secret_versions(_name(ref), max_page_size=maxresults)
        return [secret_item(p) for p in _limited(items, maxresults)]

    _show(run(go), output)


@secret_app.command("list-deleted")
def secret_list_deleted(
    vault_name: VaultOpt = None,
    secret_id: VaultIdOpt = None,
    maxresults: MaxResultsOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """List deleted (recoverable) secrets."""

    def go() -> list[dict[str, Any]]:
        client, _ = _client_for(data_dir, vault_name, None, secret_id, need_name=False)
        return [secret_item(s) for s in _limited(client.list_deleted_secrets(max_page_size=maxresults), maxresults)]

    _show(run(go), output)


@secret_app.command("show-deleted")
def secret_show_deleted(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    secret_id: IdOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Show a deleted secret (no value)."""

    def go() -> dict[str, Any]:
        client, ref = _client_for(data_dir, vault_name, name, secret_id)
        return secret_bundle(client.get_deleted_secret(_name(ref)), with_value=False)

    _show(run(go), output)


@secret_app.command("set-attributes", cls=AzCommand)
def secret_set_attributes(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    secret_id: IdOpt = None,
    version: VersionOpt = None,
    enabled: Annotated[str | None, typer.Option("--enabled", help="true or false.")] = None,
    content_type: ContentTypeOpt = None,
    tags: TagsOpt = None,
    not_before: NotBeforeOpt = None,
    expires: ExpiresOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Change a secret's attributes (never its value); what is not given stays as it is."""

    def go() -> dict[str, Any]:
        client, ref = _client_for(data_dir, vault_name, name, secret_id, version)
        props = client.update_secret_properties(
            _name(ref),
            ref.version,
            enabled=parse_bool(enabled, "--enabled"),
            tags=parse_tags(tags),
            content_type=content_type,
            not_before=parse_datetime(not_before),
            expires_on=parse_datetime(expires),
        )
        return secret_item(props)

    _show(run(go), output)


@secret_app.command("delete")
def secret_delete(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    secret_id: IdOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Delete a secret (recoverable until purged)."""

    def go() -> dict[str, Any]:
        client, ref = _client_for(data_dir, vault_name, name, secret_id)
        return secret_bundle(client.begin_delete_secret(_name(ref)).result(), with_value=False)

    _show(run(go), output)


@secret_app.command("recover")
def secret_recover(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    secret_id: IdOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Recover a deleted secret."""

    def go() -> dict[str, Any]:
        client, ref = _client_for(data_dir, vault_name, name, secret_id)
        return secret_item(client.begin_recover_deleted_secret(_name(ref)).result())

    _show(run(go), output)


@secret_app.command("purge")
def secret_purge(
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    secret_id: IdOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Permanently delete a deleted secret."""

    def go() -> None:
        client, ref = _client_for(data_dir, vault_name, name, secret_id)
        client.purge_deleted_secret(_name(ref))

    run(go)


@secret_app.command("backup")
def secret_backup(
    file: Annotated[Path, typer.Option("--file", "-f", help="Where to write the backup blob.")],
    vault_name: VaultOpt = None,
    name: NameOpt = None,
    secret_id: IdOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Back up a secret (all versions) to a file only a kluis of the same tenant can restore."""

    def go() -> None:
        client, ref = _client_for(data_dir, vault_name, name, secret_id)
        file.expanduser().write_bytes(client.backup_secret(_name(ref)))

    run(go)


@secret_app.command("restore")
def secret_restore(
    file: Annotated[Path, typer.Option("--file", "-f", help="A blob written by `backup`.")],
    vault_name: VaultOpt = None,
    secret_id: VaultIdOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Restore a backed-up secret into a vault (Conflict if the name is in use)."""

    def go() -> dict[str, Any]:
        blob = file.expanduser().read_bytes()
        client, _ = _client_for(data_dir, vault_name, None, secret_id, need_name=False)
        return secret_item(client.restore_secret_backup(blob))

    _show(run(go), output)

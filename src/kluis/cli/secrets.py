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
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kluis.cli import lifecycle_verbs
from kluis.cli.client import CliError
from kluis.cli.common import KluisTyper
from kluis.cli.key_args import parse_bool
from kluis.cli.object_ref import SECRET
from kluis.cli.secret_output import secret_bundle, secret_item, show
from kluis.cli.verbs import Address, ChangedAttributes, EnabledOpt, NewAttributes, Target, Verbs

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient

__all__ = ["FILE_ENCODING_TAG", "decode_file", "encode_file", "secret_app"]

secret_app = KluisTyper(help="Secrets in a vault (like `az keyvault secret`).")

FILE_ENCODING_TAG = "file-encoding"  # the tag az writes on `secret set --file` and reads on `download`


def _secret_client() -> Callable[..., SecretClient]:
    from azure.keyvault.secrets import SecretClient

    return SecretClient


verbs = Verbs(
    secret_app, SECRET, _secret_client, show,
    {
        "object_id": "Secret identifier, e.g. https://NAME.vault.azure.net/secrets/S or .../secrets/S/VERSION.",
        "output": "json, table or tsv.",
        "not_before": "Not valid before (UTC: Y-m-dTH:M:SZ).",
    },
)  # fmt: skip

ContentTypeOpt = Annotated[
    str | None, typer.Option("--content-type", help="A hint to interpret the value (e.g. text/plain).")
]


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


# -- the commands ------------------------------------------------------------------------------------
@verbs.command("set", az_args=True)
def secret_set(
    target: Target[SecretClient],
    *,
    value: Annotated[str | None, typer.Option("--value", help="The secret's value.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the value from this file.")] = None,
    encoding: EncodingOpt = None,
    content_type: ContentTypeOpt = None,
    attributes: NewAttributes,
) -> dict[str, Any]:
    """Create a secret, or a new version of it (from --value or --file)."""
    if (value is None) == (file is None):
        raise CliError("Give exactly one of --value or --file.")
    if encoding is not None and file is None:
        raise CliError("--encoding applies to --file only.")
    dated = attributes.dated()
    text = value
    if file is not None:
        enc = encoding or Encoding.utf_8
        text = encode_file(file.expanduser().read_bytes(), enc)
        dated["tags"] = {**(dated["tags"] or {}), FILE_ENCODING_TAG: enc.value}
    assert text is not None
    client, ref = target.connect()
    enabled = False if attributes.is_disabled() else None
    secret = client.set_secret(ref.named, text, enabled=enabled, content_type=content_type, **dated)
    return secret_bundle(secret)


lifecycle_verbs.by_name(
    verbs, "show", "Show a secret with its value.",
    lambda c, r: secret_bundle(c.get_secret(r.named, r.version)), address=Address.VERSION,
)  # fmt: skip


@verbs.command("download", Address.VERSION, prints=False)
def secret_download(
    target: Target[SecretClient],
    file: Annotated[Path, typer.Option("--file", "-f", help="Where to write the value (must not exist).")],
    encoding: EncodingOpt = None,
) -> None:
    """Write a secret's value to a file, decoded with --encoding (default: the secret's file-encoding tag,
    else utf-8)."""
    path = file.expanduser()
    if path.exists():
        raise CliError(f"File or directory named '{file}' already exists.")
    client, ref = target.connect()
    secret = client.get_secret(ref.named, ref.version)
    tagged = (secret.properties.tags or {}).get(FILE_ENCODING_TAG)
    if encoding is not None:
        enc = encoding
    else:
        try:
            enc = Encoding(tagged) if tagged else Encoding.utf_8
        except ValueError:
            raise CliError(f"The secret's {FILE_ENCODING_TAG} tag names an unknown encoding: {tagged!r}.") from None
    path.write_bytes(decode_file(secret.value or "", enc))


lifecycle_verbs.listings(
    verbs, secret_item, list_doc="List secrets (versionless identifiers, no values).",
    versions_doc="List a secret's versions (no values).", deleted_doc="List deleted (recoverable) secrets.",
)  # fmt: skip
lifecycle_verbs.by_name(
    verbs, "show-deleted", "Show a deleted secret (no value).",
    lambda c, r: secret_bundle(c.get_deleted_secret(r.named), with_value=False),
)  # fmt: skip


# The one shape this file shares with keys.py (`duplicates`): set-attributes takes --enabled, a flag of
# its own kind, then the tags/dates group, in az's order. Written once it would need a slot for each
# kind's flags in the middle of the shared ones: more machinery than the six signature lines it saves.
@verbs.command("set-attributes", Address.VERSION, az_args=True)
def secret_set_attributes(
    target: Target[SecretClient],
    *,
    enabled: EnabledOpt = None,
    content_type: ContentTypeOpt = None,
    attributes: ChangedAttributes,
) -> dict[str, Any]:
    """Change a secret's attributes (never its value); what is not given stays as it is."""
    client, ref = target.connect()
    props = client.update_secret_properties(
        ref.named, ref.version, enabled=parse_bool(enabled, "--enabled"), content_type=content_type,
        **attributes.dated(),
    )  # fmt: skip
    return secret_item(props)


lifecycle_verbs.by_name(
    verbs, "delete", "Delete a secret (recoverable until purged).",
    lambda c, r: secret_bundle(c.begin_delete_secret(r.named).result(), with_value=False),
)  # fmt: skip
lifecycle_verbs.by_name(
    verbs, "recover", "Recover a deleted secret.",
    lambda c, r: secret_item(c.begin_recover_deleted_secret(r.named).result()),
)  # fmt: skip
lifecycle_verbs.by_name(
    verbs, "purge", "Permanently delete a deleted secret.", lambda c, r: c.purge_deleted_secret(r.named), prints=False
)
lifecycle_verbs.backup(
    verbs, "Back up a secret (all versions) to a file only a kluis of the same tenant can restore.",
    lambda c, n: c.backup_secret(n),
)  # fmt: skip
lifecycle_verbs.restore(
    verbs, "Restore a backed-up secret into a vault (Conflict if the name is in use).",
    lambda c, blob: c.restore_secret_backup(blob), secret_item,
)  # fmt: skip

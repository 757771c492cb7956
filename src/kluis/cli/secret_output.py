"""Secrets as az prints them: ``secret show``/``list`` JSON and their table/tsv rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kluis.cli.sdk_output import attributes, deletion_columns, printer, properties_of, rows_of, summary, with_deletion

if TYPE_CHECKING:
    from azure.keyvault.secrets import DeletedSecret, KeyVaultSecret, SecretProperties

__all__ = ["secret_bundle", "secret_item", "show", "table_rows"]


def _deleted_secret() -> type[DeletedSecret]:
    from azure.keyvault.secrets import DeletedSecret

    return DeletedSecret


def secret_bundle(secret: KeyVaultSecret | DeletedSecret, *, with_value: bool = True) -> dict[str, Any]:
    """az's ``keyvault secret show`` / ``set`` JSON (``delete`` / ``show-deleted``: no value)."""
    p = secret.properties
    out: dict[str, Any] = {
        **summary(p, attributes(p)),
        "contentType": p.content_type,
        "id": p.id,
        "kid": p.key_id,
    }
    if with_value:
        out["value"] = getattr(secret, "value", None)
    return with_deletion(secret, _deleted_secret(), out)


def secret_item(item: SecretProperties | DeletedSecret) -> dict[str, Any]:
    """az's ``keyvault secret list`` / ``list-versions`` / ``list-deleted`` item (never a value)."""
    p = properties_of(item, _deleted_secret())
    out = {**summary(p, attributes(p)), "contentType": p.content_type, "id": p.id}
    return with_deletion(item, _deleted_secret(), out)


def _table_row(r: dict[str, Any]) -> dict[str, Any]:
    """A flat row for ``-o table``/``-o tsv``: name, id, content type, state; the value when shown."""
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
    return deletion_columns(r, flat)


table_rows = rows_of(_table_row)  # a secret verb's JSON (or a list of it) as flat table/tsv rows
show = printer(table_rows)  # how every secret verb prints its result

"""Keys as az prints them: ``key show``/``list``/``rotation-policy show`` JSON and their table/tsv rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kluis.cli.sdk_output import (
    attributes,
    deletion_columns,
    plain,
    printer,
    properties_of,
    rows_of,
    summary,
    with_deletion,
)

if TYPE_CHECKING:
    from azure.keyvault.keys import DeletedKey, KeyProperties, KeyRotationPolicy, KeyVaultKey


__all__ = ["key_bundle", "key_item", "rotation_policy_dict", "show", "table_rows"]


def _deleted_key() -> type[DeletedKey]:
    from azure.keyvault.keys import DeletedKey

    return DeletedKey


def _attributes(props: KeyProperties) -> dict[str, Any]:
    return attributes(props, exportable=props.exportable, hsmPlatform=props.hsm_platform)


def _release_policy(props: KeyProperties) -> dict[str, Any] | None:
    policy = props.release_policy
    if policy is None:
        return None
    raw = policy.encoded_policy
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes | bytearray) else raw
    return {"contentType": policy.content_type, "encodedPolicy": text, "immutable": policy.immutable}


def key_bundle(key: KeyVaultKey | DeletedKey) -> dict[str, Any]:
    """az's ``keyvault key show``/``create`` JSON: attributes, key (JWK, camelCase), managed, ..."""
    jwk = key.key
    material: dict[str, Any] = {}
    for field in type(jwk)._FIELDS:
        material["keyOps" if field == "key_ops" else field] = plain(getattr(jwk, field, None))
    material["kid"] = key.id
    out = {
        "attributes": _attributes(key.properties),
        "key": dict(sorted(material.items())),
        "managed": key.properties.managed,
        "releasePolicy": _release_policy(key.properties),
        "tags": key.properties.tags,
    }
    return with_deletion(key, _deleted_key(), out)


def key_item(item: KeyProperties | DeletedKey) -> dict[str, Any]:
    """az's ``keyvault key list``/``list-versions``/``list-deleted`` item."""
    props = properties_of(item, _deleted_key())
    out = {**summary(props, _attributes(props)), "kid": props.id, "releasePolicy": _release_policy(props)}
    return with_deletion(item, _deleted_key(), out)


def rotation_policy_dict(policy: KeyRotationPolicy) -> dict[str, Any]:
    """az's ``keyvault key rotation-policy show`` JSON."""
    return {
        "createdOn": plain(policy.created_on),
        "expiresIn": policy.expires_in,
        "id": policy.id,
        "lifetimeActions": [
            {
                "action": plain(a.action),
                "timeAfterCreate": a.time_after_create,
                "timeBeforeExpiry": a.time_before_expiry,
            }
            for a in policy.lifetime_actions or []
        ],
        "updatedOn": plain(policy.updated_on),
    }


def _name_from_kid(kid: Any) -> str | None:
    if not isinstance(kid, str):
        return None
    segs = [s for s in urlsplit(kid).path.split("/") if s]
    return segs[1] if len(segs) >= 2 else None


def _key_row(row: dict[str, Any]) -> dict[str, Any]:
    attrs = row["attributes"]
    key = row.get("key")
    jwk: dict[str, Any] = key if isinstance(key, dict) else {}
    kid = jwk.get("kid") or row.get("kid")
    tags = row.get("tags") or {}
    flat: dict[str, Any] = {"Name": row.get("name") or _name_from_kid(kid), "Kid": kid}
    if jwk:
        flat["Kty"] = jwk.get("kty")
    flat.update(
        {
            "Enabled": attrs.get("enabled"),
            "Expires": attrs.get("expires"),
            "Created": attrs.get("created"),
            "Updated": attrs.get("updated"),
            "Tags": " ".join(f"{k}={v}" for k, v in sorted(tags.items())),
        }
    )
    return deletion_columns(row, flat)


def _policy_row(row: dict[str, Any]) -> dict[str, Any]:
    actions = []
    for a in row["lifetimeActions"]:
        when = f"after create {a['timeAfterCreate']}" if a.get("timeAfterCreate") else ""
        when = when or (f"before expiry {a['timeBeforeExpiry']}" if a.get("timeBeforeExpiry") else "")
        actions.append(f"{a.get('action')} {when}".strip())
    return {
        "Id": row.get("id"),
        "LifetimeActions": "; ".join(actions),
        "ExpiresIn": row.get("expiresIn"),
        "CreatedOn": row.get("createdOn"),
        "UpdatedOn": row.get("updatedOn"),
    }


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    """A flat row for ``-o table``/``-o tsv``: the columns worth reading, nested values summarised."""
    if isinstance(row.get("attributes"), dict):
        return _key_row(row)
    if isinstance(row.get("lifetimeActions"), list):
        return _policy_row(row)
    return {k[:1].upper() + k[1:]: v for k, v in row.items() if not isinstance(v, dict | list)}


table_rows = rows_of(_table_row)  # a key verb's JSON (or a list of it) as flat table/tsv rows
show = printer(table_rows)  # how every key verb prints its result

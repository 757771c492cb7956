"""Key Vault SDK objects as az prints them: camelCase JSON, flattened table/tsv rows."""

from __future__ import annotations

import base64
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kluis.cli.output import Output, emit

if TYPE_CHECKING:
    from azure.keyvault.keys import DeletedKey, KeyProperties, KeyRotationPolicy, KeyVaultKey


__all__ = ["key_bundle", "key_item", "rotation_policy_dict", "show", "table_rows"]


# -- output shaped like az -------------------------------------------------------------------------
def _value(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(v).decode()
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, list):
        return [_value(x) for x in v]
    return v


def _attributes(props: KeyProperties) -> dict[str, Any]:
    return {
        "created": _value(props.created_on),
        "enabled": props.enabled,
        "expires": _value(props.expires_on),
        "exportable": props.exportable,
        "hsmPlatform": props.hsm_platform,
        "notBefore": _value(props.not_before),
        "recoverableDays": props.recoverable_days,
        "recoveryLevel": props.recovery_level,
        "updated": _value(props.updated_on),
    }


def _release_policy(props: KeyProperties) -> dict[str, Any] | None:
    policy = props.release_policy
    if policy is None:
        return None
    raw = policy.encoded_policy
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes | bytearray) else raw
    return {"contentType": policy.content_type, "encodedPolicy": text, "immutable": policy.immutable}


def _deleted(obj: Any, out: dict[str, Any]) -> dict[str, Any]:
    from azure.keyvault.keys import DeletedKey

    if isinstance(obj, DeletedKey):
        out["deletedDate"] = _value(obj.deleted_date)
        out["recoveryId"] = obj.recovery_id
        out["scheduledPurgeDate"] = _value(obj.scheduled_purge_date)
    return out


def key_bundle(key: KeyVaultKey | DeletedKey) -> dict[str, Any]:
    """az's ``keyvault key show``/``create`` JSON: attributes, key (JWK, camelCase), managed, ..."""
    jwk = key.key
    material: dict[str, Any] = {}
    for field in type(jwk)._FIELDS:
        material["keyOps" if field == "key_ops" else field] = _value(getattr(jwk, field, None))
    material["kid"] = key.id
    out = {
        "attributes": _attributes(key.properties),
        "key": dict(sorted(material.items())),
        "managed": key.properties.managed,
        "releasePolicy": _release_policy(key.properties),
        "tags": key.properties.tags,
    }
    return _deleted(key, out)


def key_item(item: KeyProperties | DeletedKey) -> dict[str, Any]:
    """az's ``keyvault key list``/``list-versions``/``list-deleted`` item."""
    from azure.keyvault.keys import DeletedKey

    props = item.properties if isinstance(item, DeletedKey) else item
    out = {
        "attributes": _attributes(props),
        "kid": props.id,
        "managed": props.managed,
        "name": props.name,
        "releasePolicy": _release_policy(props),
        "tags": props.tags,
    }
    return _deleted(item, out)


def rotation_policy_dict(policy: KeyRotationPolicy) -> dict[str, Any]:
    """az's ``keyvault key rotation-policy show`` JSON."""
    return {
        "createdOn": _value(policy.created_on),
        "expiresIn": policy.expires_in,
        "id": policy.id,
        "lifetimeActions": [
            {
                "action": _value(a.action),
                "timeAfterCreate": a.time_after_create,
                "timeBeforeExpiry": a.time_before_expiry,
            }
            for a in policy.lifetime_actions or []
        ],
        "updatedOn": _value(policy.updated_on),
    }


def _name_from_kid(kid: Any) -> str | None:
    if not isinstance(kid, str):
        return None
    segs = [s for s in urlsplit(kid).path.split("/") if s]
    return segs[1] if len(segs) >= 2 else None


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    """A flat row for ``-o table``/``-o tsv``: the columns worth reading, nested values summarised."""
    if isinstance(row.get("attributes"), dict):
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
        if "deletedDate" in row:
            flat["DeletedDate"] = row["deletedDate"]
            flat["ScheduledPurgeDate"] = row["scheduledPurgeDate"]
        return flat
    if isinstance(row.get("lifetimeActions"), list):
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
    return {k[:1].upper() + k[1:]: v for k, v in row.items() if not isinstance(v, dict | list)}


def table_rows(data: Any) -> Any:
    if isinstance(data, list):
        return [_table_row(r) if isinstance(r, dict) else r for r in data]
    return _table_row(data) if isinstance(data, dict) else data


def _sorted(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _sorted(data[k]) for k in sorted(data)}
    if isinstance(data, list):
        return [_sorted(v) for v in data]
    return data


def show(data: Any, output: Output) -> None:
    if output is Output.json:
        emit(_sorted(data), output)
        return
    emit(table_rows(data), output)

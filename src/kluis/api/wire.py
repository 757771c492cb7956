"""Azure's JSON shapes: key bundles out, request bodies in. No decisions, only translation."""

from __future__ import annotations

from typing import Any

from kluis.crypto import CryptoError, b64url_decode, b64url_encode
from kluis.domain.errors import BadParameter
from kluis.domain.keys.service import check_ops, check_release_policy, check_tags
from kluis.domain.views import KeyChanges, KeyView, Page

__all__ = [
    "b64_field",
    "changes_from_body",
    "deleted_bundle",
    "int_field",
    "key_bundle",
    "key_item",
    "page_body",
    "str_field",
]


def _attributes(view: KeyView) -> dict[str, Any]:
    attrs: dict[str, Any] = {"enabled": view.enabled}
    if view.nbf is not None:
        attrs["nbf"] = view.nbf
    if view.exp is not None:
        attrs["exp"] = view.exp
    attrs["created"] = view.created
    attrs["updated"] = view.updated
    attrs["recoveryLevel"] = view.recovery_level
    attrs["recoverableDays"] = view.recoverable_days
    attrs["exportable"] = view.exportable
    return attrs


def _deleted_fields(base: str, view: KeyView, out: dict[str, Any]) -> dict[str, Any]:
    if view.deleted is not None:
        out["recoveryId"] = f"{base}/deletedkeys/{view.name}"
        out["deletedDate"] = view.deleted.deleted_date
        out["scheduledPurgeDate"] = view.deleted.scheduled_purge_date
    return out


def key_bundle(base: str, view: KeyView) -> dict[str, Any]:
    key: dict[str, Any] = {
        "kid": f"{base}/keys/{view.name}/{view.version}",
        "kty": view.kty,
        "key_ops": view.key_ops,
    }
    key.update(view.jwk)
    body: dict[str, Any] = {"key": key, "attributes": _attributes(view)}
    if view.tags:
        body["tags"] = view.tags
    if view.release_policy:
        body["release_policy"] = view.release_policy
    return body


def deleted_bundle(base: str, view: KeyView) -> dict[str, Any]:
    return _deleted_fields(base, view, key_bundle(base, view))


def key_item(base: str, view: KeyView, *, versioned: bool) -> dict[str, Any]:
    kid = f"{base}/keys/{view.name}" + (f"/{view.version}" if versioned else "")
    item: dict[str, Any] = {"kid": kid, "attributes": _attributes(view)}
    if view.tags:
        item["tags"] = view.tags
    return _deleted_fields(base, view, item)


def page_body(items: list[dict[str, Any]], page: Page[Any], next_url: str | None) -> dict[str, Any]:
    return {"value": items, "nextLink": next_url if page.next_token else None}


def str_field(body: dict[str, Any], name: str, *, required: bool = False, kind: str = "a string") -> str | None:
    """A string property of a request body; absent (or null) is None unless required."""
    value = body.get(name)
    if value is None:
        if required:
            raise BadParameter(f"The '{name}' property is required.")
        return None
    if not isinstance(value, str):
        raise BadParameter(f"The '{name}' property must be {kind}.")
    return value


def int_field(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadParameter(f"The '{name}' property must be an integer.")
    return value


def b64_field(body: dict[str, Any], name: str, *, required: bool = False) -> bytes | None:
    value = str_field(body, name, required=required, kind="a base64url string")
    if value is None:
        return None
    try:
        return b64url_decode(value)
    except CryptoError:
        raise BadParameter(f"The '{name}' property is not valid base64url.") from None


def b64(data: bytes) -> str:
    return b64url_encode(data)


def _int_or_none(attrs: dict[str, Any], name: str) -> int | None:
    value = attrs[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadParameter(f"attributes.{name} must be a number of seconds since the epoch.")
    return int(value)


def changes_from_body(body: dict[str, Any]) -> KeyChanges:
    """KeyChanges from a create/import/update body; absent fields stay UNSET (PATCH semantics)."""
    changes = KeyChanges()
    if body.get("key_ops") is not None:
        changes.key_ops = check_ops(body["key_ops"])
    if body.get("tags") is not None:
        changes.tags = check_tags(body["tags"])
    attrs = body.get("attributes")
    if attrs is not None:
        if not isinstance(attrs, dict):
            raise BadParameter("attributes must be an object.")
        if attrs.get("enabled") is not None:
            if not isinstance(attrs["enabled"], bool):
                raise BadParameter("attributes.enabled must be true or false.")
            changes.enabled = attrs["enabled"]
        if "nbf" in attrs:
            changes.nbf = _int_or_none(attrs, "nbf")
        if "exp" in attrs:
            changes.exp = _int_or_none(attrs, "exp")
        if attrs.get("exportable") is not None:
            if not isinstance(attrs["exportable"], bool):
                raise BadParameter("attributes.exportable must be true or false.")
            changes.exportable = attrs["exportable"]
    if "release_policy" in body:
        changes.release_policy = check_release_policy(body["release_policy"])
    return changes

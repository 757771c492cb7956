"""Azure's JSON shapes: bundles out, request bodies in. No decisions, only translation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from kluis.crypto import CryptoError, b64url_decode, b64url_encode
from kluis.domain.errors import BadParameter
from kluis.domain.keys.service import check_key_tags, check_ops, check_release_policy
from kluis.domain.secrets.service import check_content_type, check_secret_tags
from kluis.domain.views import UNSET, Changes, KeyChanges, ObjectView, Page, SecretChanges, Unset

__all__ = [
    "EncodedBundles",
    "attribute_changes",
    "b64",
    "b64_field",
    "deleted_fields",
    "int_field",
    "key_bundle",
    "key_changes",
    "key_item",
    "page_body",
    "secret_bundle",
    "secret_changes",
    "secret_item",
    "str_field",
]


T = TypeVar("T")


def attributes(view: ObjectView) -> dict[str, Any]:
    """The ``attributes`` object every kind shares (keys add ``exportable``)."""
    attrs: dict[str, Any] = {"enabled": view.enabled}
    if view.nbf is not None:
        attrs["nbf"] = view.nbf
    if view.exp is not None:
        attrs["exp"] = view.exp
    attrs["created"] = view.created
    attrs["updated"] = view.updated
    attrs["recoveryLevel"] = view.recovery_level
    attrs["recoverableDays"] = view.recoverable_days
    if view.kind == "key":
        attrs["exportable"] = view.exportable
    return attrs


def deleted_fields(base: str, view: ObjectView, out: dict[str, Any]) -> dict[str, Any]:
    """``out`` plus recoveryId / deletedDate / scheduledPurgeDate when ``view`` is deleted."""
    if view.deleted is not None:
        out["recoveryId"] = f"{base}/deleted{view.kind}s/{view.name}"
        out["deletedDate"] = view.deleted.deleted_date
        out["scheduledPurgeDate"] = view.deleted.scheduled_purge_date
    return out


def key_bundle(base: str, view: ObjectView) -> dict[str, Any]:
    key: dict[str, Any] = {
        "kid": f"{base}/keys/{view.name}/{view.version}",
        "kty": view.kty,
        "key_ops": view.key_ops,
    }
    key.update(view.jwk)
    body: dict[str, Any] = {"key": key, "attributes": attributes(view)}
    if view.tags:
        body["tags"] = view.tags
    if view.release_policy:
        body["release_policy"] = view.release_policy
    return body


def key_item(base: str, view: ObjectView, versioned: bool) -> dict[str, Any]:
    kid = f"{base}/keys/{view.name}" + (f"/{view.version}" if versioned else "")
    item: dict[str, Any] = {"kid": kid, "attributes": attributes(view)}
    if view.tags:
        item["tags"] = view.tags
    return deleted_fields(base, view, item)


def _secret_common(base: str, view: ObjectView, out: dict[str, Any]) -> dict[str, Any]:
    """contentType, tags, kid and managed of a secret, in Azure's spelling, when present."""
    content_type = view.props.get("contentType")
    if content_type is not None:
        out["contentType"] = content_type
    if view.tags:
        out["tags"] = view.tags
    kid = view.props.get("kid")
    if kid:
        out["kid"] = kid
    if view.props.get("managed"):
        out["managed"] = True
    return out


def secret_bundle(base: str, view: ObjectView, value: str | None = None) -> dict[str, Any]:
    """A SecretBundle: ``value`` only where Azure answers it (set, get); never on update, delete,
    recover or restore."""
    body: dict[str, Any] = {}
    if value is not None:
        body["value"] = value
    body["id"] = f"{base}/secrets/{view.name}/{view.version}"
    body["attributes"] = attributes(view)
    return _secret_common(base, view, body)


def secret_item(base: str, view: ObjectView, versioned: bool) -> dict[str, Any]:
    """A SecretItem of a list answer: id, attributes, tags, contentType, managed; no value."""
    ident = f"{base}/secrets/{view.name}" + (f"/{view.version}" if versioned else "")
    item = _secret_common(base, view, {"id": ident, "attributes": attributes(view)})
    item.pop("kid", None)  # SecretItem has no kid (spec: id, attributes, tags, contentType, managed)
    return deleted_fields(base, view, item)


def page_body(items: list[dict[str, Any]], page: Page[Any], next_url: str | None) -> dict[str, Any]:
    return {"value": items, "nextLink": next_url if page.next_token else None}


class EncodedBundles:
    """The encoded JSON of ``bundle(base, view)``, remembered per (view object, base).

    Exact because the domain hands out the same view object only while the records it was made
    from are unchanged (``Lifecycle.shared_view``: identity of the store's shared, read-only cached
    records, which the per-request freshness check keeps exact) and views are never edited; and
    ``bundle`` depends on nothing but ``base`` and ``view`` (not the api-version, clock or caller).
    An entry holds its view, so the id it is keyed by cannot be reused while it is here. Never
    holds secret values: a secret's value is spliced in per request (``with_value``).
    """

    def __init__(self, bundle: Callable[[str, ObjectView], dict[str, Any]], size: int = 4096) -> None:
        self._bundle = bundle
        self._size = size
        self._items: dict[tuple[int, str], tuple[ObjectView, bytes]] = {}

    def encode(self, base: str, view: ObjectView) -> bytes:
        """``orjson.dumps(bundle(base, view))``."""
        key = (id(view), base)
        hit = self._items.get(key)
        if hit is not None and hit[0] is view:
            return hit[1]
        raw = orjson.dumps(self._bundle(base, view))
        if len(self._items) >= self._size:
            self._items.clear()
        self._items[key] = (view, raw)
        return raw

    @staticmethod
    def with_value(value: str, encoded: bytes) -> bytes:
        """``encoded`` (a JSON object, not empty) with ``"value": value`` as its first member: the
        bytes ``orjson.dumps({"value": value, **rest})`` makes (what ``secret_bundle`` answers)."""
        return b'{"value":' + orjson.dumps(value) + b"," + encoded[1:]


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
    """A base64url property decoded; absent (or null) is None unless required; BadParameter otherwise."""
    value = body.get(name)
    if not isinstance(value, str):  # absent, null or not a string: None, or str_field's BadParameter
        if value is None and not required:  # the common case for optional iv / aad / tag
            return None
        str_field(body, name, required=required, kind="a base64url string")
        raise AssertionError("str_field accepts only strings")  # pragma: no cover
    try:
        return b64url_decode(value)
    except CryptoError:
        raise BadParameter(f"The '{name}' property is not valid base64url.") from None


#: base64url without padding, as answers carry bytes (the crypto layer's encoder itself: no extra call).
b64: Callable[[bytes], str] = b64url_encode


# Azure's attribute times are Unix seconds; .NET's DateTime ends at 9999-12-31T23:59:59Z.
MAX_UNIX_TIME = 253402300799


def _int_or_none(attrs: dict[str, Any], name: str) -> int | None:
    """A time attribute (Unix seconds, 0 to 9999-12-31) or None; BadParameter for anything else."""
    value = attrs[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadParameter(f"attributes.{name} must be a number of seconds since the epoch.")
    if not (0 <= value <= MAX_UNIX_TIME):  # also refuses NaN and infinities
        raise BadParameter(f"attributes.{name} must be between 0 and {MAX_UNIX_TIME} (9999-12-31T23:59:59Z).")
    return int(value)


def attribute_changes(body: dict[str, Any], changes: Changes) -> None:
    """Fill ``changes`` from ``body["attributes"]`` (enabled, nbf, exp); absent fields stay UNSET."""
    attrs = body.get("attributes")
    if attrs is None:
        return
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


def _given(body: dict[str, Any], name: str, check: Callable[[Any], T]) -> T | Unset:
    """``check(body[name])``, or UNSET when the member is absent or null (PATCH semantics)."""
    value = body.get(name)
    return UNSET if value is None else check(value)


def key_changes(body: dict[str, Any]) -> KeyChanges:
    """KeyChanges from a create/import/update body; absent fields stay UNSET (PATCH semantics)."""
    changes = KeyChanges(key_ops=_given(body, "key_ops", check_ops), tags=_given(body, "tags", check_key_tags))
    attribute_changes(body, changes)
    attrs = body.get("attributes")
    if isinstance(attrs, dict) and attrs.get("exportable") is not None:
        if not isinstance(attrs["exportable"], bool):
            raise BadParameter("attributes.exportable must be true or false.")
        changes.exportable = attrs["exportable"]
    if "release_policy" in body:
        changes.release_policy = check_release_policy(body["release_policy"])
    return changes


def secret_changes(body: dict[str, Any]) -> SecretChanges:
    """SecretChanges from a set/update body; absent (or null) fields stay UNSET (PATCH semantics)."""
    changes = SecretChanges(
        content_type=_given(body, "contentType", check_content_type), tags=_given(body, "tags", check_secret_tags)
    )
    attribute_changes(body, changes)
    return changes

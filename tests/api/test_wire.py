"""Azure's JSON shapes: key bundles and items out, attributes and key properties in (PATCH semantics)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from kluis.api.wire import (
    MAX_UNIX_TIME,
    EncodedBundles,
    attribute_changes,
    b64,
    b64_field,
    deleted_fields,
    int_field,
    key_bundle,
    key_changes,
    key_item,
    page_body,
    secret_bundle,
    str_field,
)
from kluis.domain.errors import BadParameter
from kluis.domain.views import UNSET, Changes, DeletedInfo, ObjectView, Page

BASE = "https://v.vault.azure.net"


def _view(**over: Any) -> ObjectView:
    fields: dict[str, Any] = {
        "kind": "key", "name": "k1", "version": "abc", "enabled": True, "nbf": None, "exp": None,
        "created": 100, "updated": 200, "recovery_level": "Recoverable+Purgeable", "recoverable_days": 90,
        "tags": {}, "props": {"kty": "EC", "jwk": {"crv": "P-256", "x": "X", "y": "Y"}, "key_ops": ["sign"]},
    }  # fmt: skip
    fields.update(over)
    return ObjectView(**fields)


def test_key_bundle() -> None:
    body = key_bundle(BASE, _view())
    assert body == {
        "key": {"kid": f"{BASE}/keys/k1/abc", "kty": "EC", "key_ops": ["sign"], "crv": "P-256", "x": "X", "y": "Y"},
        "attributes": {
            "enabled": True, "created": 100, "updated": 200, "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90, "exportable": False,
        },
    }  # fmt: skip
    policy = {"contentType": "application/json", "data": "e30"}
    full = key_bundle(BASE, _view(nbf=5, exp=6, tags={"a": "b"}, props={**_view().props, "release_policy": policy}))
    assert full["attributes"]["nbf"] == 5 and full["attributes"]["exp"] == 6
    assert full["tags"] == {"a": "b"} and full["release_policy"] == policy


def test_deleted_bundle_and_items() -> None:
    deleted = _view(deleted=DeletedInfo(1000, 2000))
    body = deleted_fields(BASE, deleted, key_bundle(BASE, deleted))
    assert body["recoveryId"] == f"{BASE}/deletedkeys/k1"
    assert (body["deletedDate"], body["scheduledPurgeDate"]) == (1000, 2000)
    assert "recoveryId" not in deleted_fields(
        BASE, _view(), key_bundle(BASE, _view())
    )  # a live key has no deleted fields
    assert key_item(BASE, _view(tags={"t": "1"}), versioned=False) == {
        "kid": f"{BASE}/keys/k1", "attributes": key_bundle(BASE, _view())["attributes"], "tags": {"t": "1"},
    }  # fmt: skip
    assert key_item(BASE, _view(), versioned=True)["kid"] == f"{BASE}/keys/k1/abc"
    assert key_item(BASE, deleted, versioned=False)["recoveryId"] == f"{BASE}/deletedkeys/k1"


def test_other_kinds_have_no_exportable_attribute() -> None:
    secret = _view(kind="secret", props={})
    body = key_item(BASE, secret, versioned=False)
    assert "exportable" not in body["attributes"]
    gone = _view(kind="secret", deleted=DeletedInfo(1, 2))
    deleted = deleted_fields(BASE, gone, key_bundle(BASE, gone))
    assert deleted["recoveryId"] == f"{BASE}/deletedsecrets/k1"


def test_page_body_links_only_when_there_is_more() -> None:
    assert page_body([{"a": 1}], Page(next_token=None), "https://next") == {"value": [{"a": 1}], "nextLink": None}
    assert page_body([], Page(next_token="t"), "https://next") == {"value": [], "nextLink": "https://next"}


def test_scalar_fields() -> None:
    body = {"s": "x", "n": 5, "t": True, "f": 1.5, "b": "AQID", "bad": "!!", "null": None}
    assert str_field(body, "s") == "x" and str_field(body, "missing") is None and str_field(body, "null") is None
    with pytest.raises(BadParameter, match="'missing' property is required"):
        str_field(body, "missing", required=True)
    with pytest.raises(BadParameter, match="'n' property must be a string"):
        str_field(body, "n")
    assert int_field(body, "n") == 5 and int_field(body, "missing") is None
    for name in ("t", "f", "s"):
        with pytest.raises(BadParameter, match="must be an integer"):
            int_field(body, name)
    assert b64_field(body, "b") == b"\x01\x02\x03" and b64_field(body, "missing") is None
    with pytest.raises(BadParameter, match="not valid base64url"):
        b64_field(body, "bad")
    with pytest.raises(BadParameter, match="must be a base64url string"):
        b64_field(body, "n")
    with pytest.raises(BadParameter, match="'missing' property is required"):
        b64_field(body, "missing", required=True)
    with pytest.raises(BadParameter, match="must be a base64url string"):
        b64_field({"v": ["AQ"]}, "v", required=True)
    assert b64(b"\xfb\xff") == "-_8"  # url-safe, unpadded


def test_attribute_changes_patch_semantics() -> None:
    changes = Changes()
    attribute_changes({}, changes)
    assert changes == Changes()  # absent attributes: nothing set
    attribute_changes({"attributes": {"enabled": False, "nbf": 10, "exp": None}}, changes)
    assert changes.enabled is False and changes.nbf == 10 and changes.exp is None  # null clears
    kept = Changes()
    attribute_changes({"attributes": {"enabled": None}}, kept)
    assert kept.enabled is UNSET and kept.nbf is UNSET  # a null "enabled" is not a change
    floats = Changes()
    attribute_changes({"attributes": {"exp": 12.9}}, floats)
    assert floats.exp == 12


@pytest.mark.parametrize(
    "attrs",
    [
        "x", [], {"enabled": "yes"}, {"nbf": -1}, {"exp": MAX_UNIX_TIME + 1}, {"nbf": "soon"}, {"exp": True},
        {"nbf": math.nan}, {"exp": math.inf},
    ],
)  # fmt: skip
def test_attribute_changes_refuse(attrs: Any) -> None:
    with pytest.raises(BadParameter):
        attribute_changes({"attributes": attrs}, Changes())


def test_attribute_time_range_ends_are_allowed() -> None:
    changes = Changes()
    attribute_changes({"attributes": {"nbf": 0, "exp": MAX_UNIX_TIME}}, changes)
    assert (changes.nbf, changes.exp) == (0, MAX_UNIX_TIME)


def test_key_changes() -> None:
    empty = key_changes({})
    assert empty.key_ops is UNSET and empty.tags is UNSET and empty.exportable is UNSET
    assert empty.release_policy is UNSET
    c = key_changes(
        {
            "key_ops": ["SIGN", "verify", "sign"],
            "tags": {"a": "1"},
            "attributes": {"exportable": True, "enabled": True},
            "release_policy": {"data": "e30"},
        }
    )
    assert c.key_ops == ["sign", "verify"] and c.tags == {"a": "1"} and c.exportable is True and c.enabled is True
    assert c.release_policy == {"contentType": "application/json; charset=utf-8", "data": "e30"}
    assert key_changes({"release_policy": None}).release_policy is None  # explicit null: remove the policy
    for bad in ({"attributes": {"exportable": "no"}}, {"key_ops": "sign"}, {"tags": {"a": 1}}, {"release_policy": 5}):
        with pytest.raises(BadParameter):
            key_changes(bad)


def test_encoded_bundles_are_the_encoding_remembered_per_view_object_and_base() -> None:
    bundles = EncodedBundles(key_bundle)
    view = _view(tags={"a": "b"})
    raw = bundles.encode(BASE, view)
    assert raw == orjson.dumps(key_bundle(BASE, view)) and bundles.encode(BASE, view) is raw
    other = "https://other.vault.azure.net"
    assert bundles.encode(other, view) == orjson.dumps(key_bundle(other, view))  # the base is part of the key
    changed = _view(tags={"a": "c"})  # an equal-looking but different view object: encoded afresh
    assert bundles.encode(BASE, changed) == orjson.dumps(key_bundle(BASE, changed)) != raw
    small = EncodedBundles(key_bundle, size=2)
    for i in range(5):  # bounded: cleared when full, still exact
        v = _view(version=str(i))
        assert small.encode(BASE, v) == orjson.dumps(key_bundle(BASE, v))


@pytest.mark.parametrize("value", ["", "s3cret", 'quote " and \\ slash', "üñí €", "\n\t\x00", "x" * 5000])
def test_with_value_splices_the_value_as_secret_bundle_encodes_it(value: str) -> None:
    view = _view(kind="secret", props={"contentType": "text/plain"}, tags={"t": "1"})
    rest = EncodedBundles(secret_bundle).encode(BASE, view)
    assert b"value" not in rest.split(b'"id"')[0]  # the remembered part holds no value
    assert EncodedBundles.with_value(value, rest) == orjson.dumps(secret_bundle(BASE, view, value))

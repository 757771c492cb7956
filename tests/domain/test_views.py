"""Views and change sets: UNSET (not given) is distinct from None (clear), and key properties read safely."""

from __future__ import annotations

import copy
from typing import Any

from kluis.domain.views import UNSET, Changes, KeyChanges, ObjectView, Page, SecretChanges, Unset, is_set


def test_unset_is_one_falsy_sentinel() -> None:
    assert Unset() is UNSET and copy.copy(UNSET) is UNSET
    assert not UNSET and repr(UNSET) == "UNSET"
    assert not is_set(UNSET)
    assert is_set(None) and is_set(0) and is_set(False) and is_set("")  # explicit values, even falsy ones


def test_changes_default_to_unset() -> None:
    for changes in (Changes(), KeyChanges(), SecretChanges()):
        assert all(value is UNSET for value in vars(changes).values())
    assert KeyChanges(exp=None).exp is None and KeyChanges(exp=None).nbf is UNSET


def _view(props: dict[str, Any]) -> ObjectView:
    return ObjectView("key", "k", "v", True, None, None, 1, 2, "Recoverable", 90, {}, props)


def test_key_properties() -> None:
    full = _view({"kty": "RSA", "jwk": {"n": "x"}, "key_ops": ["sign"], "exportable": True, "release_policy": {"a": 1}})
    assert (full.kty, full.jwk, full.key_ops, full.exportable, full.release_policy) == (
        "RSA", {"n": "x"}, ["sign"], True, {"a": 1},
    )  # fmt: skip
    full.key_ops.append("verify")
    assert full.props["key_ops"] == ["sign"]  # a copy: callers cannot change the view
    bare = _view({"kty": "oct", "jwk": {}, "key_ops": None})
    assert bare.key_ops == [] and bare.exportable is False and bare.release_policy is None and bare.deleted is None


def test_pages_do_not_share_items() -> None:
    a: Page[int] = Page()
    b: Page[int] = Page()
    a.items.append(1)
    assert b.items == [] and a.next_token is None

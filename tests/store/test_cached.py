"""The shared cached lookups: the store's ``_memo`` decides, the next transaction class loads."""

from __future__ import annotations

import copy
import pickle
from dataclasses import replace
from typing import Any

import pytest

from kluis.store.cached import MISSING, CachedLookups, ReadContext, clone, share
from kluis.store.records import ObjectRecord, VaultRecord, VersionRecord


class _Loader:
    def __init__(self) -> None:
        self.loads: list[str] = []

    def get_vault(self, name: str) -> VaultRecord | None:
        self.loads.append(name)
        return VaultRecord("v1", name, "rg", "local", 90, False, 1, "standard") if name == "MyVault" else None

    def get_setting(self, name: str) -> bytes | None:
        self.loads.append(name)
        return None


class _Cached(CachedLookups, _Loader):
    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[Any, ...], Any] = {}

    def _memo(self, key: tuple[Any, ...], load: Any) -> Any:
        hit = self.entries.get(key, MISSING)
        if hit is MISSING:
            hit = self.entries[key] = share(load())
        return hit


def test_lookups_load_once_per_key_and_hand_out_the_shared_read_only_record() -> None:
    tx = _Cached()
    first = tx.get_vault("MyVault")
    assert first is not None and first.name == "MyVault"
    with pytest.raises(AttributeError, match="read-only"):
        first.name = "edited"  # a caller's edit never reaches the cache
    again = tx.get_vault("myvault")  # keys fold case like the stores' lookups
    assert again is first and again.name == "MyVault" and tx.loads == ["MyVault"]
    assert tx.get_setting("s") is None and tx.get_setting("s") is None  # "absent" is cached too
    assert tx.loads == ["MyVault", "s"]


def test_clone_keeps_immutable_values() -> None:
    assert clone(None) is None and clone(b"x") == b"x" and clone("s") == "s"
    assert share(None) is None and share(b"x") == b"x" and share("s") == "s"


def _version() -> VersionRecord:
    return VersionRecord("v1", "key", "k", "1" * 32, b"s", True, None, None, 1, 1, {"t": "1"}, {"kty": "EC"})


def test_a_shared_record_refuses_edits_and_equals_its_plain_record() -> None:
    plain = _version()
    shared = share(plain)
    assert isinstance(shared, VersionRecord) and shared is not plain
    assert shared == plain and plain == shared and shared != share(ObjectRecord("v1", "key", "k", "1", 1, 1))
    assert shared != VersionRecord("v1", "key", "k", "2" * 32, b"s", True, None, None, 1, 1, {"t": "1"}, {"kty": "EC"})
    with pytest.raises(AttributeError, match=r"VersionRecord from a cached read .*'enabled'"):
        shared.enabled = False
    with pytest.raises(AttributeError, match="read-only"):
        del shared.nbf
    assert shared.enabled is True and shared.nbf is None
    plain.enabled = False  # the plain record it came from stays editable (and the twin is a copy)
    assert shared.enabled is True and shared != plain


def test_clone_of_a_shared_record_is_an_editable_plain_copy() -> None:
    shared = share(_version())
    editable = clone(shared)
    assert type(editable) is VersionRecord and editable == shared
    editable.name = "K"
    assert editable.name == "K" and shared.name == "k"
    changed = replace(shared, enabled=False)  # a changed copy, as dataclasses.replace makes one
    assert type(changed) is VersionRecord and changed.enabled is False and shared.enabled is True
    for made in (copy.copy(shared), copy.deepcopy(shared), pickle.loads(pickle.dumps(shared))):
        assert type(made) is VersionRecord and made == shared  # copies of any kind are plain, editable
        made.name = "K"
    deep = copy.deepcopy(shared)
    assert deep.props is not shared.props and deep.props == shared.props


def test_read_context_hands_out_its_transaction_and_lets_errors_through() -> None:
    tx = _Cached()
    with ReadContext(tx) as got:
        assert got is tx
    try:
        with ReadContext(tx):
            raise KeyError("inside")
    except KeyError as e:
        assert e.args == ("inside",)
    else:
        raise AssertionError("the error inside the block was swallowed")


def test_a_stores_hits_dict_answers_first_and_misses_go_to_memo() -> None:
    class WithHits(_Cached):
        def __init__(self) -> None:
            super().__init__()
            self._hits = self.entries  # what SQLite does: its cache's dict of exact entries
            self.memo_calls = 0

        def _memo(self, key: tuple[Any, ...], load: Any) -> Any:
            self.memo_calls += 1
            return super()._memo(key, load)

    tx = WithHits()
    first = tx.get_vault("MyVault")
    assert tx.memo_calls == 1 and tx.get_vault("MYVAULT") is first and tx.memo_calls == 1  # the hit: no call
    assert tx.get_vault("other") is None and tx.get_vault("other") is None and tx.memo_calls == 2  # None is cached
    plain = _Cached()
    assert plain._hits == {} and plain.get_vault("MyVault") is not None and plain.entries  # the default: _memo

"""The shared cached lookups: the store's ``_memo`` decides, the next transaction class loads."""

from __future__ import annotations

from typing import Any

from kluis.store.cached import MISSING, CachedLookups, ReadContext, clone
from kluis.store.records import VaultRecord


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
            hit = self.entries[key] = load()
        return clone(hit)


def test_lookups_load_once_per_key_and_hand_out_copies() -> None:
    tx = _Cached()
    first = tx.get_vault("MyVault")
    assert first is not None and first.name == "MyVault"
    first.name = "edited"  # a caller's edit never reaches the cache
    again = tx.get_vault("myvault")  # keys fold case like the stores' lookups
    assert again is not None and again.name == "MyVault" and tx.loads == ["MyVault"]
    assert tx.get_setting("s") is None and tx.get_setting("s") is None  # "absent" is cached too
    assert tx.loads == ["MyVault", "s"]


def test_clone_keeps_immutable_values() -> None:
    assert clone(None) is None and clone(b"x") == b"x" and clone("s") == "s"


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

"""MemoryStore (unit tests only) against the store contract (tests/store/contract.py)."""

from __future__ import annotations

import pytest

from kluis.store import Store
from kluis.store.memory import MemoryStore
from tests.store.contract import *  # noqa: F403 - the contract's tests, run here against MemoryStore
from tests.store.contract import seed


@pytest.fixture
def store() -> Store:
    return seed(MemoryStore())


def test_a_failed_write_restores_every_table() -> None:
    s = seed(MemoryStore())
    with pytest.raises(ValueError), s.write() as tx:
        tx.delete_vault("v1")
        tx.add_group(tx.get_group("rg") or pytest.fail("seeded group missing"))  # duplicate: raises
    with s.read() as tx:
        assert tx.get_vault("myvault") is not None

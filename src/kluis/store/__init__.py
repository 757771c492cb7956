"""Persistence behind one small interface (``Store`` / ``Transaction``); SQLite is the default."""

from kluis.store.base import Store, Transaction
from kluis.store.records import (
    GroupRecord,
    KeyRecord,
    KeyVersionRecord,
    PolicyRecord,
    PrincipalRecord,
    VaultRecord,
)
from kluis.store.sqlite import SqliteStore

__all__ = [
    "GroupRecord",
    "KeyRecord",
    "KeyVersionRecord",
    "PolicyRecord",
    "PrincipalRecord",
    "SqliteStore",
    "Store",
    "Transaction",
    "VaultRecord",
]

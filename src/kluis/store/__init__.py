"""Persistence behind one small interface (``Store`` / ``Transaction``); SQLite is the default."""

from kluis.store.base import Store, Transaction
from kluis.store.records import GroupRecord, ObjectRecord, PolicyRecord, PrincipalRecord, VaultRecord, VersionRecord
from kluis.store.sqlite import SqliteStore
from kluis.store.sqlite_schema import SCHEMA_VERSION, schema_version_of

__all__ = [
    "SCHEMA_VERSION",
    "GroupRecord",
    "ObjectRecord",
    "PolicyRecord",
    "PrincipalRecord",
    "SqliteStore",
    "Store",
    "Transaction",
    "VaultRecord",
    "VersionRecord",
    "schema_version_of",
]

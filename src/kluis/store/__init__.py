"""Persistence behind one small interface (``Store`` / ``Transaction``); SQLite is the default."""

from kluis.store.base import Store, Transaction
from kluis.store.records import (
    AuditQuery,
    AuditRecord,
    GroupRecord,
    ObjectRecord,
    PolicyRecord,
    PrincipalRecord,
    VaultRecord,
    VersionRecord,
)
from kluis.store.sqlite import SqliteStore, copy_database, read_setting
from kluis.store.sqlite_schema import SCHEMA_VERSION, schema_version_of

__all__ = [
    "SCHEMA_VERSION",
    "AuditQuery",
    "AuditRecord",
    "GroupRecord",
    "ObjectRecord",
    "PolicyRecord",
    "PrincipalRecord",
    "SqliteStore",
    "Store",
    "Transaction",
    "VaultRecord",
    "VersionRecord",
    "copy_database",
    "read_setting",
    "schema_version_of",
]

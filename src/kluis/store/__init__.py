"""Persistence behind one small interface (``Store`` / ``Transaction``).

SQLite is the default (one machine); PostgreSQL serves several kluis nodes sharing one database
(imported only when a ``postgresql://`` URL asks for it, so SQLite users never load psycopg);
the in-memory store is for unit tests.
"""

from __future__ import annotations

from kluis.store.base import CacheMiss, Store, Transaction
from kluis.store.factory import is_postgres_url, open_store, redact, schema_version_of
from kluis.store.records import (
    AuditBatch,
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
from kluis.store.sqlite_schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "AuditBatch",
    "AuditQuery",
    "AuditRecord",
    "CacheMiss",
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
    "is_postgres_url",
    "open_store",
    "read_setting",
    "redact",
    "schema_version_of",
]

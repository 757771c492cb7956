"""Which store a node opens: a ``postgresql://`` URL is PostgreSQL, anything else a SQLite file.

PostgreSQL is imported only when a URL asks for it, so SQLite users never load psycopg.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kluis.store.sqlite import SqliteStore
from kluis.store.sqlite_schema import schema_version_of as _sqlite_schema_version_of

if TYPE_CHECKING:
    from kluis.store.postgres import PostgresStore

__all__ = ["is_postgres_url", "open_store", "redact", "schema_version_of"]


def is_postgres_url(database: str | Path) -> bool:
    """True for a ``postgresql://`` / ``postgres://`` connection URL; anything else is a SQLite file path."""
    return str(database).startswith(("postgresql://", "postgres://"))


def redact(database: str | Path) -> str:
    """The database for messages and logs: a URL without its password, or the file path."""
    text = str(database)
    if not is_postgres_url(text) or "@" not in text:
        return text
    scheme, rest = text.split("://", 1)
    auth, host = rest.rsplit("@", 1)
    return f"{scheme}://{auth.split(':', 1)[0]}@{host}"


def open_store(database: str | Path, *, pool_size: int = 8) -> SqliteStore | PostgresStore:
    """The store for ``database``: a PostgreSQL URL opens a ``PostgresStore`` (``pool_size`` connections
    at most), anything else is the path of a SQLite file. Pending migrations are applied either way.
    Raises ``psycopg.OperationalError`` when PostgreSQL cannot be reached."""
    if is_postgres_url(database):
        from kluis.store.postgres import PostgresStore

        return PostgresStore(str(database), pool_size=pool_size)
    return SqliteStore(database)


def schema_version_of(database: str | Path) -> int:
    """The schema version recorded in ``database`` (a SQLite file or a PostgreSQL URL), read-only."""
    if is_postgres_url(database):
        from kluis.store.postgres_schema import schema_version_of as postgres_version

        return postgres_version(str(database))
    return _sqlite_schema_version_of(database)

"""Choosing the store from ``--database``: URLs, redaction, schema versions of either kind."""

from __future__ import annotations

from pathlib import Path

from kluis.store import SCHEMA_VERSION, SqliteStore, is_postgres_url, open_store, redact, schema_version_of


def test_postgres_urls_are_told_from_sqlite_paths() -> None:
    assert is_postgres_url("postgresql://u:p@h:5432/db") and is_postgres_url("postgres://h/db")
    assert not is_postgres_url("/var/lib/kluis/kluis.db") and not is_postgres_url(Path("postgresql.db"))


def test_redact_drops_the_password_only() -> None:
    assert redact("postgresql://kluis:s3cr@t@db.example:5432/vault") == "postgresql://kluis@db.example:5432/vault"
    assert redact("postgresql://db.example/vault") == "postgresql://db.example/vault"
    assert redact(Path("/x/kluis.db")) == "/x/kluis.db"


def test_a_path_opens_sqlite_with_its_schema(tmp_path: Path) -> None:
    store = open_store(tmp_path / "k.db")
    try:
        assert isinstance(store, SqliteStore) and store.schema_version == SCHEMA_VERSION
    finally:
        store.close()
    assert schema_version_of(tmp_path / "k.db") == SCHEMA_VERSION


def test_a_url_opens_postgres_with_its_schema(postgres_url: str) -> None:
    from kluis.store.postgres import PostgresStore

    assert schema_version_of(postgres_url) == 0
    store = open_store(postgres_url, pool_size=2)
    try:
        assert isinstance(store, PostgresStore) and store.schema_version == SCHEMA_VERSION
    finally:
        store.close()
    assert schema_version_of(postgres_url) == SCHEMA_VERSION

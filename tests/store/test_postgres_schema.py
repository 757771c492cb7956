"""PostgreSQL migrations: the same numbering as SQLite's, and the same data after each upgrade."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import psycopg

from kluis.store import SCHEMA_VERSION, SqliteStore, postgres_schema, schema_version_of, sqlite_schema
from kluis.store.cached import clone
from kluis.store.postgres import PostgresStore
from kluis.store.postgres_schema import migrate
from tests.store.contract import assert_objects_point_at_their_current_version

FIXTURE = Path(__file__).parent / "fixtures" / "schema_v1"
_BOOLEANS = {("principals", "is_admin"), ("vaults", "purge_protection")}
_BOOLEANS |= {("key_versions", "enabled"), ("key_versions", "exportable")}
_V1_TABLES = ("settings", "principals", "groups", "vaults", "policies", "keys", "key_versions")


def _load_version_1(conn: psycopg.Connection[tuple[object, ...]], tmp_path: Path) -> None:
    """The first release's SQLite fixture (copied to ``tmp_path``), row for row into PostgreSQL at version 1."""
    shutil.copytree(FIXTURE, tmp_path / "data")
    source = sqlite3.connect(tmp_path / "data" / "kluis.db")
    assert migrate(conn, target=1) == (0, 1)
    for table in _V1_TABLES:
        cursor = source.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cursor.description]
        rows = [
            tuple(bool(v) if (table, n) in _BOOLEANS else v for n, v in zip(names, row, strict=True))
            for row in cursor.fetchall()
        ]
        if rows:
            marks = ", ".join(["%s"] * len(names))
            conn.cursor().executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", rows)
    source.close()


def test_both_backends_have_the_same_migration_numbers() -> None:
    assert len(postgres_schema.MIGRATIONS) == len(sqlite_schema.MIGRATIONS) == SCHEMA_VERSION


def test_a_new_database_starts_at_the_latest_version_and_reopens_without_migrating(postgres_url: str) -> None:
    assert schema_version_of(postgres_url) == 0
    store = PostgresStore(postgres_url, listen=False)
    assert (store.migrated_from, store.schema_version) == (0, SCHEMA_VERSION)
    store.close()
    again = PostgresStore(postgres_url, listen=False)
    assert (again.migrated_from, again.schema_version) == (SCHEMA_VERSION, SCHEMA_VERSION)
    again.close()
    assert schema_version_of(postgres_url) == SCHEMA_VERSION


def test_a_newer_database_is_refused(postgres_url: str) -> None:
    PostgresStore(postgres_url, listen=False).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
        try:
            migrate(conn)
        except RuntimeError as e:
            assert "newer than this kluis" in str(e)
        else:  # pragma: no cover
            raise AssertionError("a newer schema must be refused")


def test_version_1_data_upgrades_to_the_same_records_as_sqlite(postgres_url: str, tmp_path: Path) -> None:
    """The first release's tables, copied row for row into PostgreSQL at version 1, upgrade to exactly
    the records SQLite's own migrations make of them (keys with their versions, seq, props, SKU)."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        _load_version_1(conn, tmp_path)
    pg = PostgresStore(postgres_url, listen=False)
    lite = SqliteStore(tmp_path / "data" / "kluis.db")
    try:
        assert (pg.migrated_from, pg.schema_version) == (1, SCHEMA_VERSION)
        with pg.read() as a, lite.read() as b:
            assert a.list_vaults() == b.list_vaults() and a.list_vaults()
            assert a.list_principals() == b.list_principals()
            for vault in b.list_vaults():
                assert a.list_policies(vault.vault_id) == b.list_policies(vault.vault_id)
                for deleted in (False, True):
                    objects = b.list_objects(vault.vault_id, "key", deleted=deleted, after=None, limit=100)
                    assert a.list_objects(vault.vault_id, "key", deleted=deleted, after=None, limit=100) == objects
                    for o in objects:
                        mine = a.list_versions(vault.vault_id, "key", o.name, after_seq=None, limit=100)
                        assert mine == b.list_versions(vault.vault_id, "key", o.name, after_seq=None, limit=100)
                        assert mine
        with lite.read() as tx:
            carried = [
                v
                for vault in tx.list_vaults()
                for deleted in (False, True)
                for o in tx.list_objects(vault.vault_id, "key", deleted=deleted, after=None, limit=100)
                for v in tx.list_versions(vault.vault_id, "key", o.name, after_seq=None, limit=100)
            ]
        top = max(v.seq for v in carried)
        old = carried[0]
        old.version = "f" * 32
        with pg.write() as tx:  # new versions continue after the carried-over ones
            tx.add_version(old)
        assert old.seq > top
    finally:
        pg.close()
        lite.close()


def test_version_7_points_each_object_at_its_current_version_row_with_data_intact(
    postgres_url: str, tmp_path: Path
) -> None:
    """Migration 7 only: a database at schema 6 gets ``objects.latest_seq`` filled; no other value changes;
    later upserts keep it."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        _load_version_1(conn, tmp_path)
        assert migrate(conn, target=6) == (1, 6)
        order = " ORDER BY vault_id, kind, name_ci"
        objects = conn.execute("SELECT * FROM objects" + order).fetchall()
        versions = conn.execute("SELECT * FROM object_versions ORDER BY seq").fetchall()
        assert objects and versions
        assert migrate(conn) == (6, SCHEMA_VERSION)
        after = conn.execute("SELECT * FROM objects" + order).fetchall()
        assert [r[:-1] for r in after] == objects  # the new column comes last
        assert conn.execute("SELECT * FROM object_versions ORDER BY seq").fetchall() == versions
        assert_objects_point_at_their_current_version(conn, len(objects))
    pg = PostgresStore(postgres_url, listen=False)
    try:
        with pg.read() as tx:
            vault = tx.get_vault("legacy")
            assert vault is not None
            obj = tx.get_object(vault.vault_id, "key", "rsa-key")
            assert obj is not None
            latest = tx.get_version(vault.vault_id, "key", "rsa-key", obj.latest_version)
            assert latest is not None
        latest, obj = clone(latest), clone(obj)  # cached reads hand out read-only records
        with pg.write() as tx:  # a new current version: the shared upsert points the object at its row
            latest.version = "e" * 32
            tx.add_version(latest)
            obj.latest_version = latest.version
            tx.put_object(obj)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT o.latest_seq, v.seq FROM objects o JOIN object_versions v ON v.vault_id = o.vault_id "
                "AND v.kind = o.kind AND v.name_ci = o.name_ci AND v.version = o.latest_version "
                "WHERE o.name_ci = 'rsa-key'"
            ).fetchone()
            assert row is not None and row[0] == row[1] == latest.seq
    finally:
        pg.close()

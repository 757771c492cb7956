"""Versioned migrations: a database written by the first release upgrades in place, keys intact."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from kluis.store import SCHEMA_VERSION, SqliteStore
from kluis.store.sqlite import SqliteTransaction
from kluis.store.sqlite_schema import migrate
from tests.store.contract import assert_objects_point_at_their_current_version

FIXTURE = Path(__file__).parent / "fixtures" / "schema_v1"


@pytest.fixture
def v1_db(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "data")
    return tmp_path / "data" / "kluis.db"


def test_fixture_is_the_first_schema(v1_db: Path) -> None:
    conn = sqlite3.connect(v1_db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert {r[0] for r in conn.execute("SELECT name FROM keys")} == {"rsa-key", "ec-key", "gone"}


def test_upgrade_carries_every_key_version_over(v1_db: Path) -> None:
    expected = json.loads((v1_db.parent / "expected.json").read_text())
    before = sqlite3.connect(v1_db).execute("SELECT sealed FROM key_versions ORDER BY seq").fetchall()
    store = SqliteStore(v1_db)
    assert (store.migrated_from, store.schema_version) == (0, SCHEMA_VERSION)
    with store.read() as tx:
        vault = tx.get_vault("legacy")
        assert vault is not None and vault.sku == "premium"  # vaults from before SKUs keep their HSM keys
        rsa = tx.get_object(vault.vault_id, "key", "RSA-KEY")
        assert rsa is not None and rsa.name == "rsa-key" and rsa.latest_version == expected["rsa_versions"][1]
        assert rsa.policy is not None and json.loads(rsa.policy)["attributes"]["expiryTime"] == "P90D"
        assert rsa.due_at is not None  # the rotation schedule came along
        versions = tx.list_versions(vault.vault_id, "key", "rsa-key", after_seq=None, limit=10)
        assert [v.version for v in versions] == expected["rsa_versions"]
        latest = versions[-1]
        assert latest.props["kty"] == "RSA" and latest.props["jwk"]["n"] == expected["rsa_n"]
        assert latest.props["key_ops"][:2] == ["encrypt", "decrypt"] and latest.props["exportable"] is False
        assert latest.props["release_policy"] is None and latest.tags == {"env": "new"}
        gone = tx.get_object(vault.vault_id, "key", "gone")
        assert gone is not None and gone.deleted_at is not None and gone.scheduled_purge_at is not None
        sealed = [v.sealed for v in tx.list_versions(vault.vault_id, "key", "ec-key", after_seq=None, limit=5)]
    assert sealed[0] in [row[0] for row in before]  # material moved byte for byte, still sealed
    store.close()
    tables = {r[0] for r in sqlite3.connect(v1_db).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "keys" not in tables and "key_versions" not in tables


def test_migrating_twice_is_a_no_op_and_newer_databases_are_refused(v1_db: Path) -> None:
    SqliteStore(v1_db).close()
    conn = sqlite3.connect(v1_db, isolation_level=None)
    assert migrate(conn) == (SCHEMA_VERSION, SCHEMA_VERSION)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer than this kluis"):
        migrate(conn)


def test_a_new_database_starts_at_the_latest_version(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "new.db")
    assert (store.migrated_from, store.schema_version) == (0, SCHEMA_VERSION)
    store.close()


def test_vaults_made_before_skus_become_premium(v1_db: Path) -> None:
    """Migration 3 only: a database at schema 2 (every vault without a SKU) upgrades to premium vaults."""
    conn = sqlite3.connect(v1_db, isolation_level=None)
    assert migrate(conn, target=2) == (0, 2)
    assert "sku" not in {r[1] for r in conn.execute("PRAGMA table_info(vaults)")}
    assert migrate(conn) == (2, SCHEMA_VERSION)
    assert {r[0] for r in conn.execute("SELECT sku FROM vaults")} == {"premium"}


def test_version_7_points_each_object_at_its_current_version_row_with_data_intact(v1_db: Path) -> None:
    """Migration 7 only: a database at schema 6 gets ``objects.latest_seq`` filled; no other value changes."""
    conn = sqlite3.connect(v1_db, isolation_level=None)
    assert migrate(conn, target=6) == (0, 6)
    assert "latest_seq" not in {r[1] for r in conn.execute("PRAGMA table_info(objects)")}
    objects = conn.execute("SELECT * FROM objects ORDER BY vault_id, kind, name_ci").fetchall()
    versions = conn.execute("SELECT * FROM object_versions ORDER BY seq").fetchall()
    assert objects and versions
    assert migrate(conn) == (6, SCHEMA_VERSION)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(objects)")]
    after = conn.execute(f"SELECT {', '.join(cols)} FROM objects ORDER BY vault_id, kind, name_ci").fetchall()
    assert [r[: cols.index("latest_seq")] for r in after] == objects  # the new column comes last
    assert conn.execute("SELECT * FROM object_versions ORDER BY seq").fetchall() == versions
    assert_objects_point_at_their_current_version(conn, len(objects))
    conn.close()
    store = SqliteStore(v1_db)
    with store.read() as tx:
        vault = tx.get_vault("legacy")
        assert vault is not None
        obj, latest = SqliteTransaction(tx._c).get_object_and_latest(vault.vault_id, "key", "rsa-key")
        assert obj is not None and latest is not None and latest.version == obj.latest_version
    store.close()

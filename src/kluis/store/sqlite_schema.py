"""The SQLite schema as a list of versioned migrations, applied in order on start.

``PRAGMA user_version`` records the last migration applied. Migration 1 is the schema kluis
shipped first (``keys`` / ``key_versions``); a database made by that release has user_version 0
and its tables already exist, so migration 1 (``CREATE ... IF NOT EXISTS``) is a no-op for it and
migration 2 carries its keys over. Every later schema change is a new entry at the end: never
edit a migration that has shipped.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version_of"]

_V1 = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS principals (
    object_id TEXT PRIMARY KEY, app_id TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL,
    secret_hash TEXT NOT NULL, is_admin INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
    name_ci TEXT PRIMARY KEY, name TEXT NOT NULL, location TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS vaults (
    vault_id TEXT PRIMARY KEY, name_ci TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    group_ci TEXT NOT NULL, location TEXT NOT NULL, retention_days INTEGER NOT NULL,
    purge_protection INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS policies (
    vault_id TEXT NOT NULL, object_id TEXT NOT NULL, keys TEXT NOT NULL, secrets TEXT NOT NULL,
    certificates TEXT NOT NULL, PRIMARY KEY (vault_id, object_id));
CREATE TABLE IF NOT EXISTS keys (
    vault_id TEXT NOT NULL, name_ci TEXT NOT NULL, name TEXT NOT NULL, latest_version TEXT NOT NULL,
    created INTEGER NOT NULL, updated INTEGER NOT NULL, deleted_at INTEGER, scheduled_purge_at INTEGER,
    rotation_policy TEXT, rotate_at INTEGER, PRIMARY KEY (vault_id, name_ci)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS keys_purge ON keys (scheduled_purge_at) WHERE scheduled_purge_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS keys_rotate ON keys (rotate_at) WHERE rotate_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS key_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, vault_id TEXT NOT NULL, name_ci TEXT NOT NULL,
    version TEXT NOT NULL, kty TEXT NOT NULL, public_jwk TEXT NOT NULL, sealed BLOB NOT NULL,
    key_ops TEXT NOT NULL, enabled INTEGER NOT NULL, nbf INTEGER, exp INTEGER, created INTEGER NOT NULL,
    updated INTEGER NOT NULL, tags TEXT NOT NULL, exportable INTEGER NOT NULL, release_policy TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS key_versions_id ON key_versions (vault_id, name_ci, version);
"""

# One pair of tables for every object kind; keys move over with their kind-specific columns
# folded into ``props`` (kty, public jwk, key_ops, exportable, release_policy).
_V2 = """
CREATE TABLE objects (
    vault_id TEXT NOT NULL, kind TEXT NOT NULL, name_ci TEXT NOT NULL, name TEXT NOT NULL,
    latest_version TEXT NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,
    deleted_at INTEGER, scheduled_purge_at INTEGER, policy TEXT, due_at INTEGER,
    PRIMARY KEY (vault_id, kind, name_ci)) WITHOUT ROWID;
CREATE INDEX objects_purge ON objects (scheduled_purge_at) WHERE scheduled_purge_at IS NOT NULL;
CREATE INDEX objects_due ON objects (due_at) WHERE due_at IS NOT NULL;
CREATE TABLE object_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, vault_id TEXT NOT NULL, kind TEXT NOT NULL,
    name_ci TEXT NOT NULL, version TEXT NOT NULL, sealed BLOB NOT NULL, enabled INTEGER NOT NULL,
    nbf INTEGER, exp INTEGER, created INTEGER NOT NULL, updated INTEGER NOT NULL,
    tags TEXT NOT NULL, props TEXT NOT NULL);
CREATE UNIQUE INDEX object_versions_id ON object_versions (vault_id, kind, name_ci, version);
CREATE INDEX object_versions_seq ON object_versions (vault_id, kind, name_ci, seq);
INSERT INTO objects
    SELECT vault_id, 'key', name_ci, name, latest_version, created, updated, deleted_at,
           scheduled_purge_at, rotation_policy, rotate_at FROM keys;
INSERT INTO object_versions
    SELECT seq, vault_id, 'key', name_ci, version, sealed, enabled, nbf, exp, created, updated, tags,
           json_object('kty', kty, 'jwk', json(public_jwk), 'key_ops', json(key_ops),
                       'exportable', json(CASE WHEN exportable THEN 'true' ELSE 'false' END),
                       'release_policy', json(release_policy))
    FROM key_versions ORDER BY seq;
DROP TABLE key_versions;
DROP TABLE keys;
"""

# Vaults get Azure's SKU ("standard" | "premium"). Vaults made before SKUs existed already hold
# HSM key types (RSA-HSM, EC-HSM, oct-HSM), which only a premium vault may hold: they become premium.
_V3 = """
ALTER TABLE vaults ADD COLUMN sku TEXT NOT NULL DEFAULT 'premium';
"""

# The audit log: one row per operation, chained by HMAC per writing process (kluis.domain.audit).
# ``id`` orders rows as inserted; the time index serves retention and time-range listings.
_V4 = """
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, chain TEXT NOT NULL, seq INTEGER NOT NULL, time_ms INTEGER NOT NULL,
    tenant_id TEXT NOT NULL, caller_object_id TEXT NOT NULL, caller_app_id TEXT NOT NULL,
    client_address TEXT NOT NULL, vault TEXT NOT NULL, operation TEXT NOT NULL, kind TEXT NOT NULL,
    object_name TEXT NOT NULL, version TEXT NOT NULL, status INTEGER NOT NULL, request_id TEXT NOT NULL,
    duration_us INTEGER NOT NULL, prev_hash TEXT NOT NULL, prev_time_ms INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE INDEX audit_log_time ON audit_log (time_ms);
"""

# Data keys (kluis.crypto.seal), each kept only wrapped by the key-encryption key, which never
# enters the database. kluis fills the table on start (it needs the KEK): a database from before
# data keys gets its old KEK as data key "seal-v1" (its version-1 blobs still open) and its
# KEK-derived backup and audit keys as its own, so old backups restore and old chains verify.
_V5 = """
CREATE TABLE wrapped_keys (
    id INTEGER PRIMARY KEY, purpose TEXT NOT NULL, wrapped BLOB NOT NULL, kek_fingerprint TEXT NOT NULL,
    created INTEGER NOT NULL);
"""

# The audit log in batches: one row holds a run of consecutive records of one chain under one MAC
# (kluis.domain.audit), so a flush costs one insert. Version 4's rows (audit_log) become batches of one record
# (format 0: body = the record's fields as a JSON array, hash = its own MAC, kept and checked as before).
_V6 = """
CREATE TABLE audit_batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT, chain TEXT NOT NULL, first_seq INTEGER NOT NULL, count INTEGER NOT NULL,
    min_time_ms INTEGER NOT NULL, max_time_ms INTEGER NOT NULL, prev_hash TEXT NOT NULL,
    prev_time_ms INTEGER NOT NULL, hash TEXT NOT NULL, format INTEGER NOT NULL, body BLOB NOT NULL);
CREATE INDEX audit_batches_time ON audit_batches (max_time_ms);
INSERT INTO audit_batches
    SELECT id, chain, seq, 1, time_ms, time_ms, prev_hash, prev_time_ms, hash, 0,
           CAST(json_array(json_array(time_ms, tenant_id, caller_object_id, caller_app_id, client_address, vault,
                                      operation, kind, object_name, version, status, request_id, duration_us))
                AS BLOB)
    FROM audit_log ORDER BY id;
DROP TABLE audit_log;
"""

# An object row names its current version's row by ``seq`` (its rowid) as well as by version: a cold read
# of an object with its current version then joins by rowid (objects key + one rowid descent) instead
# of through the object_versions_id index (a third B-tree), which took a cold get over 1,000,000 keys
# from 6.0 to 3.8 page reads. Writers set it in the object upsert (store/statements.py); reads check
# the version's identity columns too, so a NULL or stale value is only slower.
_V7 = """
ALTER TABLE objects ADD COLUMN latest_seq INTEGER;
UPDATE objects SET latest_seq = (
    SELECT v.seq FROM object_versions v WHERE v.vault_id = objects.vault_id AND v.kind = objects.kind
    AND v.name_ci = objects.name_ci AND v.version = objects.latest_version);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, *, target: int = SCHEMA_VERSION) -> tuple[int, int]:
    """Apply the migrations after the database's ``user_version`` up to ``target``, each in its own
    transaction (a crash leaves the database at the last completed version). Returns (from, to).

    Raises RuntimeError for a database newer than this kluis (a downgrade is never attempted).
    """
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"The database has schema version {current}, newer than this kluis understands ({SCHEMA_VERSION}); "
            "upgrade kluis instead."
        )
    start = current
    for number in range(current + 1, target + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) >= number:  # another process did it
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        current = number
    return start, current


def _statements(script: str) -> list[str]:
    """Split a migration into statements (they contain no semicolons inside literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def schema_version_of(path: str | Path) -> int:
    """The ``user_version`` of the database file at ``path`` (read-only; 0 for the first schema)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()

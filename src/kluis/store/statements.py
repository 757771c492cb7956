"""SQL that the SQLite and PostgreSQL stores run alike, written once.

Statements use SQLite's ``?`` placeholders; the PostgreSQL store runs them through
:func:`psycopg_style` once, at import. Only statements whose text is valid in both dialects live
here (``INSERT ... ON CONFLICT ... DO UPDATE`` is: SQLite 3.24+ and PostgreSQL 9.5+); the rest
stay in each store, where the dialects differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kluis.store import records

__all__ = [
    "AUDIT_COLUMNS",
    "INSERT_AUDIT_BATCH",
    "INSERT_VAULT",
    "UPDATE_VERSION",
    "UPSERT_OBJECT",
    "audit_batch_row",
    "audit_batches_where",
    "object_row",
    "psycopg_style",
    "vault_row",
    "version_update_row",
]

# What the dialects store differently is passed in as data: ``json`` encodes a JSON column's value the
# way the driver wants it (SQLite: the orjson bytes; PostgreSQL: psycopg's Jsonb). Booleans go as they
# are: sqlite3 binds a bool as the integer 0 or 1, which is what the SQLite schema stores.
JsonEncoder = Callable[[Any], object]

# A new vault's row.
INSERT_VAULT = (
    "INSERT INTO vaults (vault_id, name_ci, name, group_ci, location, retention_days, purge_protection, "
    "created, sku) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def vault_row(v: records.VaultRecord) -> tuple[object, ...]:
    """The parameters of :data:`INSERT_VAULT` for ``v``."""
    return (v.vault_id, v.name.lower(), v.name, v.group_name.lower(), v.location, v.retention_days,
            v.purge_protection, v.created, v.sku)  # fmt: skip


# A version's changeable fields (never its material or its identity).
UPDATE_VERSION = (
    "UPDATE object_versions SET enabled = ?, nbf = ?, exp = ?, updated = ?, tags = ?, props = ? "
    "WHERE vault_id = ? AND kind = ? AND name_ci = ? AND version = ?"
)


def version_update_row(v: records.VersionRecord, json: JsonEncoder) -> tuple[object, ...]:
    """The parameters of :data:`UPDATE_VERSION` for ``v``, its tags and props encoded by ``json``."""
    return (v.enabled, v.nbf, v.exp, v.updated, json(v.tags), json(v.props), v.vault_id, v.kind, v.name.lower(),
            v.version)  # fmt: skip


# An object's row, inserted or replaced whole (its name's case may change; the key is name_ci).
# ``latest_seq`` is the ``seq`` of the current version's row (schema version 7), looked up here so no
# caller passes it: NULL while that row does not exist yet. A read joins by it and checks the version's
# identity columns too, so a NULL or stale value costs a second lookup, never a wrong answer.
UPSERT_OBJECT = (
    "INSERT INTO objects (vault_id, kind, name_ci, name, latest_version, created, updated, deleted_at, "
    "scheduled_purge_at, policy, due_at, latest_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
    "(SELECT seq FROM object_versions WHERE vault_id = ? AND kind = ? AND name_ci = ? AND version = ?)) "
    "ON CONFLICT (vault_id, kind, name_ci) DO UPDATE SET name = excluded.name, "
    "latest_version = excluded.latest_version, updated = excluded.updated, "
    "deleted_at = excluded.deleted_at, scheduled_purge_at = excluded.scheduled_purge_at, "
    "policy = excluded.policy, due_at = excluded.due_at, latest_seq = excluded.latest_seq"
)


def object_row(o: records.ObjectRecord) -> tuple[object, ...]:
    """The parameters of :data:`UPSERT_OBJECT` for ``o``, in its column order (then the current version's key)."""
    name_ci = o.name.lower()
    return (o.vault_id, o.kind, name_ci, o.name, o.latest_version, o.created, o.updated, o.deleted_at,
            o.scheduled_purge_at, o.policy, o.due_at, o.vault_id, o.kind, name_ci, o.latest_version)  # fmt: skip


# An audit batch's stored columns (kluis.domain.audit), in the order of :func:`audit_batch_row`.
AUDIT_COLUMNS = "chain, first_seq, count, min_time_ms, max_time_ms, prev_hash, prev_time_ms, hash, body, format"
INSERT_AUDIT_BATCH = f"INSERT INTO audit_batches ({AUDIT_COLUMNS}) VALUES ({', '.join('?' * 10)})"


def audit_batch_row(b: records.AuditBatch) -> tuple[object, ...]:
    """The parameters of :data:`INSERT_AUDIT_BATCH` for ``b``."""
    return (b.chain, b.first_seq, b.count, b.min_time_ms, b.max_time_ms, b.prev_hash, b.prev_time_ms, b.hash, b.body,
            b.format)  # fmt: skip


def audit_batches_where(after_id: int, since_ms: int | None, until_ms: int | None) -> tuple[str, list[object]]:
    """The WHERE clause (``?`` placeholders) and its parameters for batches after ``after_id`` that
    may hold records in [``since_ms``, ``until_ms``) (Unix ms; None: unbounded): a batch overlaps the
    range when its last record is not before it and its first not after it."""
    where = "id > ?"
    args: list[object] = [after_id]
    if since_ms is not None:
        where += " AND max_time_ms >= ?"
        args.append(since_ms)
    if until_ms is not None:
        where += " AND min_time_ms < ?"
        args.append(until_ms)
    return where, args


def psycopg_style(sql: str) -> str:
    """``sql`` with psycopg's ``%s`` placeholders for SQLite's ``?`` (statements here hold no other ``?``)."""
    return sql.replace("?", "%s")

"""SQL that the SQLite and PostgreSQL stores run alike, written once.

Statements use SQLite's ``?`` placeholders; the PostgreSQL store runs them through
:func:`psycopg_style` once, at import. Only statements whose text is valid in both dialects live
here (``INSERT ... ON CONFLICT ... DO UPDATE`` is: SQLite 3.24+ and PostgreSQL 9.5+); the rest
stay in each store, where the dialects differ.
"""

from __future__ import annotations

from kluis.store import records

__all__ = ["UPSERT_OBJECT", "object_row", "psycopg_style"]

# An object's row, inserted or replaced whole (its name's case may change; the key is name_ci).
UPSERT_OBJECT = (
    "INSERT INTO objects (vault_id, kind, name_ci, name, latest_version, created, updated, deleted_at, "
    "scheduled_purge_at, policy, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (vault_id, kind, name_ci) DO UPDATE SET name = excluded.name, "
    "latest_version = excluded.latest_version, updated = excluded.updated, "
    "deleted_at = excluded.deleted_at, scheduled_purge_at = excluded.scheduled_purge_at, "
    "policy = excluded.policy, due_at = excluded.due_at"
)


def object_row(o: records.ObjectRecord) -> tuple[object, ...]:
    """The parameters of :data:`UPSERT_OBJECT` for ``o``, in its column order."""
    return (o.vault_id, o.kind, o.name.lower(), o.name, o.latest_version, o.created, o.updated, o.deleted_at,
            o.scheduled_purge_at, o.policy, o.due_at)  # fmt: skip


def psycopg_style(sql: str) -> str:
    """``sql`` with psycopg's ``%s`` placeholders for SQLite's ``?`` (statements here hold no other ``?``)."""
    return sql.replace("?", "%s")

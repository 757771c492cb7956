"""PostgreSQL store: several stateless kluis servers share one database and act as one vault.

The same ``Store`` / ``Transaction`` protocols as SQLite, over psycopg 3 and a ``psycopg_pool``
connection pool (``kluis serve --database postgresql://...``).

Writes. Every write transaction takes transaction-scoped advisory locks before its first
statement (``_WriteLocks``): one that works on a vault object locks that name (and holds the
cluster-wide write lock shared), anything else holds the write lock exclusively, as SQLite
serializes its writes on one machine. So the domain's read-check-write sequences (a new version
after reading the current one, a vault created after checking its name) stay correct across
nodes with no locking of their own, two nodes creating versions of one key get distinct versions
whose ``seq`` follows commit order, and writes to different names commit side by side. A write
holds its locks for a few statements (material is made and sealed before it starts), sent in
pipeline mode: BEGIN, COMMIT and statements whose rows nobody waits for are only queued, so a new
version costs two round trips (begin + lock + read the object; insert the version + update the
object + commit) and an append (an audit batch) one.

Reads and other nodes' writes. Point lookups (vault, policy, object, version, setting) go through
one read cache per process. A write of this process drops what it changed at commit (the names
of the objects it wrote; everything after any other write), so this node reads its own writes at
once. Every write also ``NOTIFY``s the ``kluis_changes`` channel with what it changed (delivered
at commit); each process ``LISTEN``s on its own connection in a background thread and drops the
same entries when another process wrote, typically within milliseconds. The fallback bound: an
entry is trusted for ``CACHE_TTL`` seconds after the read that loaded it began, so even with the
listener down (a dropped connection, a lost notification) a change made anywhere is seen within
that time. Entries loaded by a read that overlapped a drop are not kept (a generation counter),
so a slow read can never put back what a commit just invalidated.

The scheduler: ``exclusive("scheduler")`` holds a session advisory lock for one tick, so one
node at a time runs it and each due object is acted on once, not once per node.
"""

from __future__ import annotations

import logging
import secrets
import select
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb, set_json_loads
from psycopg_pool import ConnectionPool

from kluis.store import records, statements
from kluis.store.base import CacheMiss
from kluis.store.cached import MISSING, CachedLookups, ReadContext, share
from kluis.store.postgres_schema import SCHEDULER_LOCK, WRITE_LOCK, migrate

__all__ = ["CACHE_TTL", "CHANNEL", "PostgresStore", "PostgresTransaction", "ReadCache"]

log = logging.getLogger("kluis.store.postgres")

CHANNEL = "kluis_changes"
SEP = "\x1f"  # between the parts of a name in locks and notifications (never in ids, kinds or names)
CACHE_TTL = 0.5  # seconds a cached point lookup is trusted without a notification (the fallback bound)
LISTEN_POLL = 0.25  # seconds the listener waits for notifications before checking whether to stop
LISTEN_COALESCE = 0.005  # seconds the listener lets notifications gather after a wake-up
_CACHE_LIMIT = 20_000
_EXCLUSIVE_LOCKS = {"scheduler": SCHEDULER_LOCK}

# The same queries as sqlite.py, each in its own dialect; the ones whose text both dialects take are in statements.py.
_OBJECT_COLS = "vault_id, kind, name, latest_version, created, updated, deleted_at, scheduled_purge_at, policy, due_at"
_VERSION_COLS = "vault_id, kind, name_ci, version, sealed, enabled, nbf, exp, created, updated, tags, props, seq"
_PRINCIPAL_COLS = "object_id, app_id, display_name, secret_hash, is_admin, created"
_UPSERT_OBJECT = statements.psycopg_style(statements.UPSERT_OBJECT)
_INSERT_VAULT = statements.psycopg_style(statements.INSERT_VAULT)
_UPDATE_VERSION = statements.psycopg_style(statements.UPDATE_VERSION)
_VAULT_SELECT = (
    "SELECT v.vault_id, v.name, g.name, v.location, v.retention_days, v.purge_protection, v.created, v.sku "
    "FROM vaults v JOIN groups g ON g.name_ci = v.group_ci"
)
_POLICY_COLS = "vault_id, object_id, keys, secrets, certificates"


def _json(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _version(r: tuple[Any, ...]) -> records.VersionRecord:
    return records.VersionRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12])


def _policy(r: tuple[Any, ...]) -> records.PolicyRecord:
    return records.PolicyRecord(r[0], r[1], r[2].split(), r[3].split(), r[4].split())


_INSERT_AUDIT_BATCH = statements.psycopg_style(statements.INSERT_AUDIT_BATCH)


class _WriteLocks:
    """The advisory locks of one write transaction, taken by its first statement's kind.

    A transaction that starts on a vault object (a name of a kind) holds the cluster-wide write
    lock *shared* and the name's own lock exclusively: writes to different names run side by side
    (and share a WAL flush), writes to one name queue in commit order. A transaction that starts
    anywhere else (settings, principals, vaults, policies, lists) holds the write lock exclusively,
    as every SQLite write does, so its read-check-write sequences need no locks of their own. In
    an object transaction, reads of other tables take nothing; a write to them upgrades to the
    exclusive lock (the domain never does this; PostgreSQL would report a deadlock between two).
    The first lock statement also queues this process's change notification (sent at commit).
    """

    __slots__ = ("_conn", "_token", "mode", "names")

    def __init__(self, conn: psycopg.Connection[Any], token: str) -> None:
        self._conn = conn
        self._token = token
        self.names: set[Name] = set()
        self.mode: str | None = None  # None (nothing yet), "objects" or "all"

    def object(self, vault_id: str, kind: str, name: str) -> None:
        if self.mode == "all":
            return
        ident = (vault_id, kind, name.lower())
        if ident in self.names:
            return
        lock = SEP.join(ident)
        shared = "pg_advisory_xact_lock_shared(%s), " if self.mode is None else ""
        args = (WRITE_LOCK,) if self.mode is None else ()
        self._conn.execute(
            f"SELECT {shared}pg_advisory_xact_lock(hashtextextended(%s, 0)), pg_notify(%s, %s)",
            (*args, lock, CHANNEL, notice(self._token, ident)),
        )
        self.mode = "objects"
        self.names.add(ident)

    def everything(self, *, write: bool) -> None:
        if self.mode == "all" or (self.mode == "objects" and not write):
            return
        statement = "SELECT pg_advisory_xact_lock(%s), pg_notify(%s, %s)"
        self._conn.execute(statement, (WRITE_LOCK, CHANNEL, notice(self._token, None)))
        self.mode = "all"


class PostgresTransaction:
    """All queries. Bound to one connection inside a write transaction; outside one (``conn`` None)
    each statement borrows a pooled autocommit connection and sees its own consistent snapshot."""

    def __init__(
        self, conn: psycopg.Connection[Any] | None, pool: ConnectionPool | None = None, locks: _WriteLocks | None = None
    ) -> None:
        self._conn = conn
        self._pool = pool
        self._locks = locks
        self._returning: list[
            tuple[psycopg.Cursor[Any], records.VersionRecord]
        ] = []  # queued inserts awaiting their seq

    def settle(self) -> None:
        """Give each version queued by ``add_version`` its ``seq``, once the pipeline has its answer."""
        while self._returning:
            cur, v = self._returning.pop(0)
            row = cur.fetchone()
            assert row is not None
            v.seq = int(row[0])

    def _lock_object(self, vault_id: str, kind: str, name: str) -> None:
        if self._locks is not None:
            self._locks.object(vault_id, kind, name)

    def _lock_all(self, *, write: bool) -> None:
        if self._locks is not None:
            self._locks.everything(write=write)

    def _run(self, sql: str, args: tuple[Any, ...] = (), *, many: bool = False) -> Any:
        """A statement's first row (``many``: all rows); inside a write, waits for the pipeline to get there."""
        if self._conn is not None:
            cur = self._conn.execute(sql, args)
            found = cur.fetchall() if many else cur.fetchone()
            self.settle()  # the answers before this one have arrived too
            return found
        assert self._pool is not None
        with self._pool.connection() as conn:
            cur = conn.execute(sql, args)
            return cur.fetchall() if many else cur.fetchone()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        """A statement without rows; inside a write it is only queued (pipeline mode): no round trip."""
        if self._conn is not None:
            self._conn.execute(sql, args)
            return
        assert self._pool is not None
        with self._pool.connection() as conn:
            conn.execute(sql, args)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._run(sql, args, many=True)
        return rows

    # settings ---------------------------------------------------------------------------
    def get_setting(self, name: str) -> bytes | None:
        self._lock_all(write=False)
        row = self._run("SELECT value FROM settings WHERE name = %s", (name,))
        return None if row is None else bytes(row[0])

    def put_setting(self, name: str, value: bytes) -> None:
        self._lock_all(write=True)
        self._exec(
            "INSERT INTO settings (name, value) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # wrapped data keys ------------------------------------------------------------------
    def list_wrapped_keys(self) -> list[records.WrappedKeyRecord]:
        self._lock_all(write=False)
        rows = self._rows("SELECT id, purpose, wrapped, kek_fingerprint, created FROM wrapped_keys ORDER BY id")
        return [records.WrappedKeyRecord(int(r[0]), r[1], bytes(r[2]), r[3], int(r[4])) for r in rows]

    def add_wrapped_key(self, k: records.WrappedKeyRecord) -> None:
        self._lock_all(write=True)
        self._exec(
            "INSERT INTO wrapped_keys (id, purpose, wrapped, kek_fingerprint, created) VALUES (%s, %s, %s, %s, %s)",
            (k.key_id, k.purpose, k.wrapped, k.kek_fingerprint, k.created),
        )

    def rewrap_key(self, key_id: int, wrapped: bytes, kek_fingerprint: str) -> None:
        self._lock_all(write=True)
        row = self._run(
            "UPDATE wrapped_keys SET wrapped = %s, kek_fingerprint = %s WHERE id = %s RETURNING id",
            (wrapped, kek_fingerprint, key_id),
        )
        if row is None:
            raise KeyError(key_id)

    # principals -------------------------------------------------------------------------
    def add_principal(self, p: records.PrincipalRecord) -> None:
        self._lock_all(write=True)
        self._exec(
            f"INSERT INTO principals ({_PRINCIPAL_COLS}) VALUES (%s, %s, %s, %s, %s, %s)",
            (p.object_id, p.app_id, p.display_name, p.secret_hash, p.is_admin, p.created),
        )

    def get_principal_by_app_id(self, app_id: str) -> records.PrincipalRecord | None:
        self._lock_all(write=False)
        row = self._run(f"SELECT {_PRINCIPAL_COLS} FROM principals WHERE app_id = %s", (app_id,))
        return None if row is None else records.PrincipalRecord(*row)

    def get_principal(self, object_id: str) -> records.PrincipalRecord | None:
        self._lock_all(write=False)
        row = self._run(f"SELECT {_PRINCIPAL_COLS} FROM principals WHERE object_id = %s", (object_id,))
        return None if row is None else records.PrincipalRecord(*row)

    def list_principals(self) -> list[records.PrincipalRecord]:
        self._lock_all(write=False)
        rows = self._rows(f'SELECT {_PRINCIPAL_COLS} FROM principals ORDER BY created, display_name COLLATE "C"')
        return [records.PrincipalRecord(*r) for r in rows]

    def delete_principal(self, object_id: str) -> None:
        self._lock_all(write=True)
        self._exec("DELETE FROM principals WHERE object_id = %s", (object_id,))
        self._exec("DELETE FROM policies WHERE object_id = %s", (object_id,))

    def set_principal_secret(self, object_id: str, secret_hash: str) -> None:
        self._lock_all(write=True)
        self._exec("UPDATE principals SET secret_hash = %s WHERE object_id = %s", (secret_hash, object_id))

    # groups -----------------------------------------------------------------------------
    def add_group(self, g: records.GroupRecord) -> None:
        self._lock_all(write=True)
        self._exec(
            "INSERT INTO groups (name_ci, name, location, created) VALUES (%s, %s, %s, %s)",
            (g.name.lower(), g.name, g.location, g.created),
        )

    def get_group(self, name: str) -> records.GroupRecord | None:
        self._lock_all(write=False)
        row = self._run("SELECT name, location, created FROM groups WHERE name_ci = %s", (name.lower(),))
        return None if row is None else records.GroupRecord(*row)

    def list_groups(self) -> list[records.GroupRecord]:
        self._lock_all(write=False)
        return [
            records.GroupRecord(*r) for r in self._rows("SELECT name, location, created FROM groups ORDER BY name_ci")
        ]

    def delete_group(self, name: str) -> None:
        self._lock_all(write=True)
        self._exec("DELETE FROM groups WHERE name_ci = %s", (name.lower(),))

    # vaults -----------------------------------------------------------------------------
    def add_vault(self, v: records.VaultRecord) -> None:
        self._lock_all(write=True)
        self._exec(_INSERT_VAULT, statements.vault_row(v))

    def get_vault(self, name: str) -> records.VaultRecord | None:
        self._lock_all(write=False)
        row = self._run(_VAULT_SELECT + " WHERE v.name_ci = %s", (name.lower(),))
        return None if row is None else records.VaultRecord(*row)

    def list_vaults(self, group_name: str | None = None) -> list[records.VaultRecord]:
        self._lock_all(write=False)
        if group_name is None:
            rows = self._rows(_VAULT_SELECT + " ORDER BY v.name_ci")
        else:
            rows = self._rows(_VAULT_SELECT + " WHERE v.group_ci = %s ORDER BY v.name_ci", (group_name.lower(),))
        return [records.VaultRecord(*r) for r in rows]

    def delete_vault(self, vault_id: str) -> None:
        self._lock_all(write=True)
        for table in ("object_versions", "objects", "policies", "vaults"):
            self._exec(f"DELETE FROM {table} WHERE vault_id = %s", (vault_id,))

    # policies ---------------------------------------------------------------------------
    def put_policy(self, p: records.PolicyRecord) -> None:
        self._lock_all(write=True)
        self._exec(
            f"INSERT INTO policies ({_POLICY_COLS}) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (vault_id, object_id) DO UPDATE SET "
            "keys = excluded.keys, secrets = excluded.secrets, certificates = excluded.certificates",
            (p.vault_id, p.object_id, " ".join(p.keys), " ".join(p.secrets), " ".join(p.certificates)),
        )

    def get_policy(self, vault_id: str, object_id: str) -> records.PolicyRecord | None:
        self._lock_all(write=False)
        row = self._run(
            f"SELECT {_POLICY_COLS} FROM policies WHERE vault_id = %s AND object_id = %s", (vault_id, object_id)
        )
        return None if row is None else _policy(row)

    def list_policies(self, vault_id: str) -> list[records.PolicyRecord]:
        self._lock_all(write=False)
        rows = self._rows(
            f'SELECT {_POLICY_COLS} FROM policies WHERE vault_id = %s ORDER BY object_id COLLATE "C"', (vault_id,)
        )
        return [_policy(r) for r in rows]

    def delete_policy(self, vault_id: str, object_id: str) -> None:
        self._lock_all(write=True)
        self._exec("DELETE FROM policies WHERE vault_id = %s AND object_id = %s", (vault_id, object_id))

    # vault objects ----------------------------------------------------------------------
    def get_object(self, vault_id: str, kind: str, name: str) -> records.ObjectRecord | None:
        self._lock_object(vault_id, kind, name)
        row = self._run(
            f"SELECT {_OBJECT_COLS} FROM objects WHERE vault_id = %s AND kind = %s AND name_ci = %s",
            (vault_id, kind, name.lower()),
        )
        return None if row is None else records.ObjectRecord(*row)

    def put_object(self, o: records.ObjectRecord) -> None:
        self._lock_object(o.vault_id, o.kind, o.name)
        self._exec(_UPSERT_OBJECT, statements.object_row(o))

    def delete_object(self, vault_id: str, kind: str, name: str) -> None:
        self._lock_object(vault_id, kind, name)
        args = (vault_id, kind, name.lower())
        self._exec("DELETE FROM object_versions WHERE vault_id = %s AND kind = %s AND name_ci = %s", args)
        self._exec("DELETE FROM objects WHERE vault_id = %s AND kind = %s AND name_ci = %s", args)

    def list_objects(
        self, vault_id: str, kind: str, *, deleted: bool, after: str | None, limit: int
    ) -> list[records.ObjectRecord]:
        self._lock_all(write=False)
        state = "deleted_at IS NOT NULL" if deleted else "deleted_at IS NULL"
        rows = self._rows(
            f"SELECT {_OBJECT_COLS} FROM objects WHERE vault_id = %s AND kind = %s AND {state} AND name_ci > %s "
            "ORDER BY name_ci LIMIT %s",
            (vault_id, kind, (after or "").lower(), limit),
        )
        return [records.ObjectRecord(*r) for r in rows]

    def objects_due(self, *, now: int, limit: int) -> tuple[list[records.ObjectRecord], list[records.ObjectRecord]]:
        self._lock_all(write=False)
        purge = self._rows(
            f"SELECT {_OBJECT_COLS} FROM objects WHERE scheduled_purge_at <= %s ORDER BY scheduled_purge_at LIMIT %s",
            (now, limit),
        )
        due = self._rows(
            f"SELECT {_OBJECT_COLS} FROM objects WHERE due_at <= %s AND deleted_at IS NULL ORDER BY due_at LIMIT %s",
            (now, limit),
        )
        return [records.ObjectRecord(*r) for r in purge], [records.ObjectRecord(*r) for r in due]

    def add_version(self, v: records.VersionRecord) -> None:
        """Inside a write the insert is only queued: ``v.seq`` is set when its answer arrives (at the
        next statement that returns rows, or at commit), so a new version costs no round trip of its own."""
        self._lock_object(v.vault_id, v.kind, v.name)
        sql = (
            "INSERT INTO object_versions (vault_id, kind, name_ci, version, sealed, enabled, nbf, exp, created, "
            "updated, tags, props) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING seq"
        )
        args = (
            v.vault_id, v.kind, v.name.lower(), v.version, v.sealed, v.enabled, v.nbf, v.exp, v.created, v.updated,
            _json(v.tags), _json(v.props),
        )  # fmt: skip
        if self._conn is not None:
            self._returning.append((self._conn.execute(sql, args), v))
            return
        row = self._run(sql, args)
        v.seq = int(row[0])

    def get_version(self, vault_id: str, kind: str, name: str, version: str) -> records.VersionRecord | None:
        self._lock_object(vault_id, kind, name)
        row = self._run(
            f"SELECT {_VERSION_COLS} FROM object_versions WHERE vault_id = %s AND kind = %s AND name_ci = %s "
            "AND version = %s",
            (vault_id, kind, name.lower(), version.lower()),
        )
        return None if row is None else _version(row)

    def update_version(self, v: records.VersionRecord) -> None:
        self._lock_object(v.vault_id, v.kind, v.name)
        self._exec(_UPDATE_VERSION, statements.version_update_row(v, _json))

    def list_versions(
        self, vault_id: str, kind: str, name: str, *, after_seq: int | None, limit: int
    ) -> list[records.VersionRecord]:
        self._lock_object(vault_id, kind, name)
        rows = self._rows(
            f"SELECT {_VERSION_COLS} FROM object_versions WHERE vault_id = %s AND kind = %s AND name_ci = %s "
            "AND seq > %s ORDER BY seq LIMIT %s",
            (vault_id, kind, name.lower(), after_seq or 0, limit),
        )
        return [_version(r) for r in rows]

    # audit log (append-only: no write lock; chains order themselves) -------------------------
    def add_audit_batches(self, batches: Sequence[records.AuditBatch]) -> None:
        for b in batches:
            self._exec(_INSERT_AUDIT_BATCH, statements.audit_batch_row(b))

    def list_audit_batches(
        self, *, after_id: int, since_ms: int | None, until_ms: int | None, limit: int
    ) -> list[records.AuditBatch]:
        where, args = statements.audit_batches_where(after_id, since_ms, until_ms)
        where = statements.psycopg_style(where)
        rows = self._rows(
            f"SELECT {statements.AUDIT_COLUMNS}, id FROM audit_batches WHERE {where} ORDER BY id LIMIT %s",
            (*args, limit),
        )
        return [
            records.AuditBatch(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bytes(r[8]), r[9], r[10]) for r in rows
        ]

    def audit_time_from_newest(self, offset: int) -> int | None:
        row = self._run(
            "SELECT min_time_ms FROM (SELECT min_time_ms, id, sum(count) OVER (ORDER BY id DESC) AS upto "
            "FROM audit_batches) AS t WHERE upto > %s ORDER BY id DESC LIMIT 1",
            (offset,),
        )
        return None if row is None else int(row[0])

    def delete_audit_batches(self, *, before_ms: int) -> int:
        row = self._run(
            "WITH gone AS (DELETE FROM audit_batches WHERE max_time_ms < %s RETURNING count) "
            "SELECT coalesce(sum(count), 0) FROM gone",
            (before_ms,),
        )
        return int(row[0])

    def count_versions(self, vault_id: str, kind: str, name: str) -> int:
        self._lock_object(vault_id, kind, name)
        row = self._run(
            "SELECT count(*) FROM object_versions WHERE vault_id = %s AND kind = %s AND name_ci = %s",
            (vault_id, kind, name.lower()),
        )
        return int(row[0])


Name = tuple[str, str, str]  # (vault_id, kind, case-folded name): what an object write changes
_NAMED = frozenset({"object", "version"})  # cache keys (kind, vault_id, kind, name_ci, ...) of one name


def notice(token: str, name: Name | None) -> str:
    """A change notification's payload: the writing process, and the name it changed (None: anything)."""
    return f"{token} {SEP.join(name) if name is not None else '*'}"


def read_notice(payload: bytes) -> tuple[bytes, Name | None]:
    """(the writing process's token, the name changed or None for anything) from a payload."""
    token, _, what = payload.partition(b" ")
    parts = what.decode(errors="replace").split(SEP)
    return token, (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


class ReadCache:
    """The process's cache of point lookups: ``(loaded_at, record)`` by key, trusted for ``ttl`` seconds.

    Objects and versions are kept by name, so a write to one name drops only that name's entries
    (``drop``); anything else drops everything (``clear``). Both start a new generation; ``put``
    keeps a value only if no drop or clear happened since the read that produced it began
    (``generation`` taken before the read), so nothing stale survives one. Safe across threads.
    """

    def __init__(self, ttl: float = CACHE_TTL) -> None:
        self.ttl = ttl
        self.generation = 0
        self.entries: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self.names: dict[Name, dict[tuple[Any, ...], tuple[float, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], now: float) -> Any:
        if key[0] in _NAMED:
            slot = self.names.get(key[1:4])
            hit = slot.get(key) if slot is not None else None
        else:
            hit = self.entries.get(key)
        if hit is None or now - hit[0] >= self.ttl:
            return MISSING
        return hit[1]

    def put(self, key: tuple[Any, ...], value: Any, generation: int, loaded_at: float) -> None:
        with self._lock:
            if generation != self.generation:
                return
            if len(self.entries) + len(self.names) >= _CACHE_LIMIT:
                self.entries, self.names = {}, {}
            if key[0] in _NAMED:
                self.names.setdefault(key[1:4], {})[key] = (loaded_at, value)
            else:
                self.entries[key] = (loaded_at, value)

    def drop(self, name: Name) -> None:
        with self._lock:
            self.generation += 1
            self.names.pop(name, None)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self.entries, self.names = {}, {}


class CachedReadTransaction(CachedLookups, PostgresTransaction):
    """Point lookups answered from the process's cache; everything else straight from the pool.

    Records enter the cache as read-only twins (``kluis.store.cached.share``) and are handed out
    as they are: no copy per read, and a caller that tries to edit one gets ``AttributeError``.
    """

    def __init__(self, pool: ConnectionPool, cache: ReadCache, *, cache_only: bool = False) -> None:
        super().__init__(None, pool)
        self._cache = cache
        self._cache_only = cache_only

    def _run(self, sql: str, args: tuple[Any, ...] = (), *, many: bool = False) -> Any:
        if self._cache_only:
            raise CacheMiss(sql)
        return super()._run(sql, args, many=many)

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        if self._cache_only:
            raise CacheMiss(sql)
        super()._exec(sql, args)

    def _memo(self, key: tuple[Any, ...], load: Any) -> Any:
        now = time.monotonic()
        hit = self._cache.get(key, now)
        if hit is MISSING:
            generation = self._cache.generation
            hit = share(load())
            self._cache.put(key, hit, generation, now)
        return hit


class _Local(threading.local):
    tx: PostgresTransaction | None = None
    cache_only = False


def _configure(conn: psycopg.Connection[Any]) -> None:
    set_json_loads(orjson.loads, conn)


class PostgresStore:
    """A connection pool to one PostgreSQL database, its migrations, read cache and change listener.

    ``url`` is a libpq connection URL (``postgresql://user:pass@host:port/db``); ``pool_size`` the
    most connections this process opens (the listener's own connection comes on top). Raises
    ``psycopg.OperationalError`` when the server cannot be reached within ``timeout`` seconds.
    """

    def __init__(self, url: str, *, pool_size: int = 8, timeout: float = 10.0, listen: bool = True) -> None:
        self.url = url
        self._token = secrets.token_hex(8)  # this process's name in its own notifications
        self._local = _Local()
        self._cache = ReadCache()
        self._closed = threading.Event()
        self.listening = threading.Event()
        with psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout))) as conn:
            self.migrated_from, self.schema_version = migrate(conn)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            configure=_configure,
            timeout=timeout,
            name="kluis",
            open=True,
        )
        self._listener: threading.Thread | None = None
        if listen:
            self._listener = threading.Thread(target=self._listen, name="kluis-pg-listen", daemon=True)
            self._listener.start()

    # -- the change listener --------------------------------------------------------------------
    def _listen(self) -> None:
        """The listener thread: clear the cache when another process committed (see the module doc).

        It waits on the connection's socket and drains every queued notification at once (libpq's
        own calls, no per-notification Python machinery), then pauses ``LISTEN_COALESCE`` s so a
        burst of commits costs one wake-up: measured, per-notification handling cost a busy writer
        ~200 us of CPU per commit, mostly for its own notifications, which it ignores.
        """
        token = self._token.encode()
        while not self._closed.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._cache.clear()  # anything may have changed while nobody listened
                    self.listening.set()
                    pgconn = conn.pgconn
                    while not self._closed.is_set():
                        ready, _, _ = select.select([pgconn.socket], [], [], LISTEN_POLL)
                        if not ready:
                            continue
                        pgconn.consume_input()
                        everything, names = False, set()
                        while (note := pgconn.notifies()) is not None:
                            writer, name = read_notice(note.extra)
                            if writer != token:
                                everything = everything or name is None
                                names.add(name)
                        if everything:
                            self._cache.clear()
                        for name in names:
                            if name is not None:
                                self._cache.drop(name)
                        if pgconn.status != psycopg.pq.ConnStatus.OK:
                            raise psycopg.OperationalError("the listener's connection closed")
                        time.sleep(LISTEN_COALESCE)
            except (psycopg.Error, OSError, ValueError) as e:
                self.listening.clear()
                if not self._closed.is_set():
                    log.warning("change listener lost its connection (%s); cached reads expire after %ss", e, CACHE_TTL)
                    self._closed.wait(CACHE_TTL)

    # -- transactions ---------------------------------------------------------------------------
    def read(self) -> ReadContext[PostgresTransaction]:
        """Autocommit reads (each statement its own snapshot); inside this thread's write, that write's view."""
        current: PostgresTransaction | None = getattr(self._local, "tx", None)
        if current is not None:
            return ReadContext(current)
        return ReadContext(CachedReadTransaction(self._pool, self._cache, cache_only=self._local.cache_only))

    def cached_setting(self, name: str) -> bytes | None:
        """A hit in the process's cache (as fresh as every cached read: notifications, ``CACHE_TTL``)
        even inside this thread's write, whose reads otherwise go to the database; on a miss one read
        (inside a write, on the write's connection; in ``cache_only``, ``CacheMiss``)."""
        hit = self._cache.get(("setting", name), time.monotonic())
        if hit is not MISSING:
            value: bytes | None = hit
            return value
        with self.read() as tx:
            return tx.get_setting(name)

    @contextmanager
    def cache_only(self) -> Iterator[None]:
        """For the block, this thread's reads come from the cache or raise ``CacheMiss``, and writes
        raise it at once: the dispatcher runs a request on the event loop this way and, on a miss,
        runs it again on an executor thread, so the loop never waits for the database."""
        self._local.cache_only = True
        try:
            yield
        finally:
            self._local.cache_only = False

    @contextmanager
    def write(self) -> Iterator[PostgresTransaction]:
        """One transaction under the cluster-wide write lock; commits on success, rolls back on error."""
        current: PostgresTransaction | None = getattr(self._local, "tx", None)
        if current is not None:  # nested use on the same thread joins the outer transaction
            yield current
            return
        if self._local.cache_only:
            raise CacheMiss("write")
        locks: _WriteLocks | None = None
        with self._pool.connection() as conn:
            try:
                try:
                    # BEGIN and COMMIT are queued like any statement without rows (psycopg's
                    # ``conn.transaction()`` waits for the server on entry and three times on exit):
                    # the commit travels with the body's last statements, and the pipeline's end
                    # waits for all their answers at once, so a write costs one round trip plus one
                    # per row it reads. An error in any of them aborts the transaction (rolled back below).
                    with conn.pipeline():
                        conn.execute("BEGIN")
                        locks = _WriteLocks(conn, self._token)
                        tx = PostgresTransaction(conn, locks=locks)
                        self._local.tx = tx
                        try:
                            yield tx
                        except BaseException:
                            with suppress(psycopg.Error):
                                conn.execute("ROLLBACK")  # queued: ends with the pipeline's sync
                            raise
                        finally:
                            self._local.tx = None
                        conn.execute("COMMIT")
                    tx.settle()
                finally:
                    if conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        with suppress(psycopg.Error):  # a failed statement or COMMIT: nothing of it stays
                            conn.rollback()
            finally:  # this process's own writes are seen by its next read
                if locks is not None and locks.mode == "objects":
                    for name in locks.names:
                        self._cache.drop(name)
                elif locks is None or locks.mode is not None:  # None: append-only (audit), nothing cached changed
                    self._cache.clear()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """True for the block if this process holds the cluster-wide lock ``name`` (only "scheduler"),
        False if another node holds it (the caller skips the work). A session advisory lock: a node
        that dies releases it with its connection."""
        lock = _EXCLUSIVE_LOCKS[name]
        with self._pool.connection() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock,)).fetchone()
            held = bool(row and row[0])
            try:
                yield held
            finally:
                if held:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (lock,))

    def begin_request(self) -> None:
        """Reads are kept fresh by notifications (and the cache's age bound), not per request."""
        return None

    def end_request(self, token: object) -> None:
        return None

    def close(self) -> None:
        self._closed.set()
        self._pool.close()
        if self._listener is not None:
            self._listener.join(LISTEN_POLL * 4 + 1)

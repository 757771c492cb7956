"""SQLite store: the embedded default.

WAL mode lets readers run beside one writer, across threads and worker processes. Each thread
keeps its own connection (SQLite connections are not shared across threads); reads run inline
on the caller's thread because a point lookup costs microseconds, far less than a hand-off to
a thread pool. Writers queue on a lock file (``flock``; a thread lock inside the process) before
``BEGIN IMMEDIATE``: SQLite's own busy handler sleep-polls with growing delays, which under 32
concurrent creates across two worker processes gave a p99 near 1 s, while a kernel lock wakes the
next writer as soon as the last one commits. ``BEGIN IMMEDIATE`` avoids dead-locks on
read-to-write upgrades, and ``busy_timeout`` stays as a backstop for other tools.
``synchronous=FULL`` makes a committed write survive a power cut, not only a process crash.

Reads go through a small per-connection cache of point lookups (vault, policy, object, version,
setting). It is exact, not time-based: ``PRAGMA data_version`` changes whenever any *other*
connection (another thread, worker process or tool) commits, and the cache is dropped then and
after this connection's own commits. Inside a request (``begin_request``) the pragma is checked
once, by its first read; outside one, by every read. A read-mostly workload therefore costs one
pragma per request instead of four queries, and a change anywhere is seen by the next request.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from pathlib import Path
from typing import Any

import orjson

from kluis.store import records, statements
from kluis.store.cached import MISSING, CachedLookups, ReadContext, share
from kluis.store.sqlite_schema import migrate

__all__ = ["SqliteStore", "SqliteTransaction", "copy_database", "read_setting"]

_OBJECT_COLS = "vault_id, kind, name, latest_version, created, updated, deleted_at, scheduled_purge_at, policy, due_at"
_VERSION_COLS = "vault_id, kind, name_ci, version, sealed, enabled, nbf, exp, created, updated, tags, props, seq"
# An object with its current version, in one statement (one snapshot): a cold read costs one
# statement instead of two. The version row is found by its rowid (``latest_seq``, schema version 7):
# two B-tree descents, not three through the object_versions_id index; its identity columns are
# checked as well, so a NULL or stale ``latest_seq`` answers no version (the caller's version read
# then finds it by the index), never another row. LEFT JOIN: the object is answered without its version.
# Only the columns the arguments do not already give (vault id, kind, name_ci, version): each column
# fetched costs a conversion and a free.
_OBJECT_AND_LATEST = (
    "SELECT o.name, o.latest_version, o.created, o.updated, o.deleted_at, o.scheduled_purge_at, o.policy, "
    "o.due_at, v.seq, v.sealed, v.enabled, v.nbf, v.exp, v.created, v.updated, v.tags, v.props "
    "FROM objects o LEFT JOIN object_versions v ON v.seq = o.latest_seq AND v.vault_id = o.vault_id "
    "AND v.kind = o.kind AND v.name_ci = o.name_ci AND v.version = o.latest_version "
    "WHERE o.vault_id = ? AND o.kind = ? AND o.name_ci = ?"
)


def _object_and_latest(
    run: sqlite3.Connection | sqlite3.Cursor, vault_id: str, kind: str, name: str
) -> tuple[records.ObjectRecord | None, records.VersionRecord | None]:
    """The object (None if absent) and its current version (None if absent too), by ``run`` (a
    connection, or a cursor kept for it). The version's ``name`` is the case-folded one, as ``get_version``'s."""
    name_ci = name.lower()
    r = run.execute(_OBJECT_AND_LATEST, (vault_id, kind, name_ci)).fetchone()
    if r is None:
        return None, None
    obj = records.ObjectRecord(vault_id, kind, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])
    if r[8] is None:
        return obj, None
    tags, props = orjson.loads(r[15]), orjson.loads(r[16])
    return obj, records.VersionRecord(
        vault_id, kind, name_ci, r[1], r[9], bool(r[10]), r[11], r[12], r[13], r[14], tags, props, r[8]
    )


# Bytes of the database file SQLite maps into memory per connection (``PRAGMA mmap_size``): none by
# default. In WAL mode a connection that begins a read after *any* other connection committed (every
# audit flush, every worker's write) unmaps the whole file and drops its page cache (SQLite's
# ``pagerBeginReadTransaction``), so a mapped connection faults every page in again: in process, with the
# audit log on (its flushes commit several times a second), a cold get over 1,000,000 keys took 3.0 page
# faults and 20-32 µs of system time with a 1 GiB map against 0.0 faults and 17-19 µs with ``read()``
# into SQLite's own page cache. A caller may still map (e.g. a tool reading a file nothing writes).
MMAP_SIZE = 0


def _object(row: tuple[Any, ...]) -> records.ObjectRecord:
    return records.ObjectRecord(*row)


def _version(r: tuple[Any, ...]) -> records.VersionRecord:
    return records.VersionRecord(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        bool(r[5]),
        r[6],
        r[7],
        r[8],
        r[9],
        orjson.loads(r[10]),
        orjson.loads(r[11]),
        r[12],
    )


class SqliteTransaction:
    """All queries, run on one connection inside (or, for reads, outside) a transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    # settings ---------------------------------------------------------------------------
    def get_setting(self, name: str) -> bytes | None:
        """The value kluis stored (a blob); ValueError naming the setting when the row holds another type
        (text, a number: edited outside kluis), which ``bytes()`` would misread or fail on."""
        row = self._c.execute(
            "SELECT typeof(value), CAST(value AS BLOB) FROM settings WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            return None
        if row[0] != "blob":
            raise ValueError(f"the setting {name!r} holds a {row[0]} value, not the blob kluis wrote")
        return bytes(row[1])

    def put_setting(self, name: str, value: bytes) -> None:
        self._c.execute(
            "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # wrapped data keys ------------------------------------------------------------------
    def list_wrapped_keys(self) -> list[records.WrappedKeyRecord]:
        rows = self._c.execute(
            "SELECT id, purpose, wrapped, kek_fingerprint, created FROM wrapped_keys ORDER BY id"
        ).fetchall()
        return [records.WrappedKeyRecord(int(r[0]), r[1], bytes(r[2]), r[3], int(r[4])) for r in rows]

    def add_wrapped_key(self, k: records.WrappedKeyRecord) -> None:
        self._c.execute(
            "INSERT INTO wrapped_keys (id, purpose, wrapped, kek_fingerprint, created) VALUES (?, ?, ?, ?, ?)",
            (k.key_id, k.purpose, k.wrapped, k.kek_fingerprint, k.created),
        )

    def rewrap_key(self, key_id: int, wrapped: bytes, kek_fingerprint: str) -> None:
        cur = self._c.execute(
            "UPDATE wrapped_keys SET wrapped = ?, kek_fingerprint = ? WHERE id = ?", (wrapped, kek_fingerprint, key_id)
        )
        if cur.rowcount != 1:
            raise KeyError(key_id)

    # principals -------------------------------------------------------------------------
    def add_principal(self, p: records.PrincipalRecord) -> None:
        self._c.execute(
            "INSERT INTO principals VALUES (?, ?, ?, ?, ?, ?)",
            (p.object_id, p.app_id, p.display_name, p.secret_hash, int(p.is_admin), p.created),
        )

    def _principal(self, where: str, arg: str) -> records.PrincipalRecord | None:
        row = self._c.execute(
            f"SELECT object_id, app_id, display_name, secret_hash, is_admin, created FROM principals WHERE {where} = ?",
            (arg,),
        ).fetchone()
        if row is None:
            return None
        return records.PrincipalRecord(row[0], row[1], row[2], row[3], bool(row[4]), row[5])

    def get_principal_by_app_id(self, app_id: str) -> records.PrincipalRecord | None:
        return self._principal("app_id", app_id)

    def get_principal(self, object_id: str) -> records.PrincipalRecord | None:
        return self._principal("object_id", object_id)

    def list_principals(self) -> list[records.PrincipalRecord]:
        rows = self._c.execute(
            "SELECT object_id, app_id, display_name, secret_hash, is_admin, created FROM principals "
            "ORDER BY created, display_name"
        ).fetchall()
        return [records.PrincipalRecord(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]

    def delete_principal(self, object_id: str) -> None:
        self._c.execute("DELETE FROM principals WHERE object_id = ?", (object_id,))
        self._c.execute("DELETE FROM policies WHERE object_id = ?", (object_id,))

    def set_principal_secret(self, object_id: str, secret_hash: str) -> None:
        self._c.execute("UPDATE principals SET secret_hash = ? WHERE object_id = ?", (secret_hash, object_id))

    # groups -----------------------------------------------------------------------------
    def add_group(self, g: records.GroupRecord) -> None:
        self._c.execute("INSERT INTO groups VALUES (?, ?, ?, ?)", (g.name.lower(), g.name, g.location, g.created))

    def get_group(self, name: str) -> records.GroupRecord | None:
        row = self._c.execute(
            "SELECT name, location, created FROM groups WHERE name_ci = ?", (name.lower(),)
        ).fetchone()
        return None if row is None else records.GroupRecord(*row)

    def list_groups(self) -> list[records.GroupRecord]:
        rows = self._c.execute("SELECT name, location, created FROM groups ORDER BY name_ci").fetchall()
        return [records.GroupRecord(*r) for r in rows]

    def delete_group(self, name: str) -> None:
        self._c.execute("DELETE FROM groups WHERE name_ci = ?", (name.lower(),))

    # vaults -----------------------------------------------------------------------------
    _VAULT_SELECT = (
        "SELECT v.vault_id, v.name, g.name, v.location, v.retention_days, v.purge_protection, v.created, v.sku "
        "FROM vaults v JOIN groups g ON g.name_ci = v.group_ci"
    )

    @staticmethod
    def _vault(r: tuple[Any, ...]) -> records.VaultRecord:
        return records.VaultRecord(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7])

    def add_vault(self, v: records.VaultRecord) -> None:
        self._c.execute(statements.INSERT_VAULT, statements.vault_row(v))

    def get_vault(self, name: str) -> records.VaultRecord | None:
        row = self._c.execute(self._VAULT_SELECT + " WHERE v.name_ci = ?", (name.lower(),)).fetchone()
        return None if row is None else self._vault(row)

    def list_vaults(self, group_name: str | None = None) -> list[records.VaultRecord]:
        if group_name is None:
            rows = self._c.execute(self._VAULT_SELECT + " ORDER BY v.name_ci").fetchall()
        else:
            rows = self._c.execute(
                self._VAULT_SELECT + " WHERE v.group_ci = ? ORDER BY v.name_ci", (group_name.lower(),)
            ).fetchall()
        return [self._vault(r) for r in rows]

    def delete_vault(self, vault_id: str) -> None:
        for table in ("object_versions", "objects", "policies", "vaults"):
            self._c.execute(f"DELETE FROM {table} WHERE vault_id = ?", (vault_id,))

    # policies ---------------------------------------------------------------------------
    def put_policy(self, p: records.PolicyRecord) -> None:
        self._c.execute(
            "INSERT INTO policies VALUES (?, ?, ?, ?, ?) ON CONFLICT (vault_id, object_id) DO UPDATE SET "
            "keys = excluded.keys, secrets = excluded.secrets, certificates = excluded.certificates",
            (p.vault_id, p.object_id, " ".join(p.keys), " ".join(p.secrets), " ".join(p.certificates)),
        )

    @staticmethod
    def _policy(r: tuple[Any, ...]) -> records.PolicyRecord:
        return records.PolicyRecord(r[0], r[1], r[2].split(), r[3].split(), r[4].split())

    def get_policy(self, vault_id: str, object_id: str) -> records.PolicyRecord | None:
        row = self._c.execute(
            "SELECT vault_id, object_id, keys, secrets, certificates FROM policies "
            "WHERE vault_id = ? AND object_id = ?",
            (vault_id, object_id),
        ).fetchone()
        return None if row is None else self._policy(row)

    def list_policies(self, vault_id: str) -> list[records.PolicyRecord]:
        rows = self._c.execute(
            "SELECT vault_id, object_id, keys, secrets, certificates FROM policies WHERE vault_id = ? "
            "ORDER BY object_id",
            (vault_id,),
        ).fetchall()
        return [self._policy(r) for r in rows]

    def delete_policy(self, vault_id: str, object_id: str) -> None:
        self._c.execute("DELETE FROM policies WHERE vault_id = ? AND object_id = ?", (vault_id, object_id))

    # vault objects ----------------------------------------------------------------------
    def get_object(self, vault_id: str, kind: str, name: str) -> records.ObjectRecord | None:
        row = self._c.execute(
            f"SELECT {_OBJECT_COLS} FROM objects WHERE vault_id = ? AND kind = ? AND name_ci = ?",
            (vault_id, kind, name.lower()),
        ).fetchone()
        return None if row is None else _object(row)

    def get_object_and_latest(
        self, vault_id: str, kind: str, name: str
    ) -> tuple[records.ObjectRecord | None, records.VersionRecord | None]:
        """The object (None if absent) and its current version (None if absent too), in one statement."""
        return _object_and_latest(self._c, vault_id, kind, name)

    def put_object(self, o: records.ObjectRecord) -> None:
        self._c.execute(statements.UPSERT_OBJECT, statements.object_row(o))

    def delete_object(self, vault_id: str, kind: str, name: str) -> None:
        args = (vault_id, kind, name.lower())
        self._c.execute("DELETE FROM object_versions WHERE vault_id = ? AND kind = ? AND name_ci = ?", args)
        self._c.execute("DELETE FROM objects WHERE vault_id = ? AND kind = ? AND name_ci = ?", args)

    def list_objects(
        self, vault_id: str, kind: str, *, deleted: bool, after: str | None, limit: int
    ) -> list[records.ObjectRecord]:
        state = "deleted_at IS NOT NULL" if deleted else "deleted_at IS NULL"
        rows = self._c.execute(
            f"SELECT {_OBJECT_COLS} FROM objects WHERE vault_id = ? AND kind = ? AND {state} AND name_ci > ? "
            "ORDER BY name_ci LIMIT ?",
            (vault_id, kind, (after or "").lower(), limit),
        ).fetchall()
        return [_object(r) for r in rows]

    def objects_due(self, *, now: int, limit: int) -> tuple[list[records.ObjectRecord], list[records.ObjectRecord]]:
        purge = self._c.execute(
            f"SELECT {_OBJECT_COLS} FROM objects WHERE scheduled_purge_at <= ? ORDER BY scheduled_purge_at LIMIT ?",
            (now, limit),
        ).fetchall()
        due = self._c.execute(
            f"SELECT {_OBJECT_COLS} FROM objects WHERE due_at <= ? AND deleted_at IS NULL ORDER BY due_at LIMIT ?",
            (now, limit),
        ).fetchall()
        return [_object(r) for r in purge], [_object(r) for r in due]

    def add_version(self, v: records.VersionRecord) -> None:
        cur = self._c.execute(
            "INSERT INTO object_versions (vault_id, kind, name_ci, version, sealed, enabled, nbf, exp, created, "
            "updated, tags, props) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                v.vault_id,
                v.kind,
                v.name.lower(),
                v.version,
                v.sealed,
                int(v.enabled),
                v.nbf,
                v.exp,
                v.created,
                v.updated,
                orjson.dumps(v.tags),
                orjson.dumps(v.props),
            ),
        )
        v.seq = int(cur.lastrowid or 0)

    def get_version(self, vault_id: str, kind: str, name: str, version: str) -> records.VersionRecord | None:
        row = self._c.execute(
            f"SELECT {_VERSION_COLS} FROM object_versions WHERE vault_id = ? AND kind = ? AND name_ci = ? "
            "AND version = ?",
            (vault_id, kind, name.lower(), version.lower()),
        ).fetchone()
        return None if row is None else _version(row)

    def update_version(self, v: records.VersionRecord) -> None:
        self._c.execute(statements.UPDATE_VERSION, statements.version_update_row(v, orjson.dumps))

    def list_versions(
        self, vault_id: str, kind: str, name: str, *, after_seq: int | None, limit: int
    ) -> list[records.VersionRecord]:
        rows = self._c.execute(
            f"SELECT {_VERSION_COLS} FROM object_versions WHERE vault_id = ? AND kind = ? AND name_ci = ? "
            "AND seq > ? ORDER BY seq LIMIT ?",
            (vault_id, kind, name.lower(), after_seq or 0, limit),
        ).fetchall()
        return [_version(r) for r in rows]

    def count_versions(self, vault_id: str, kind: str, name: str) -> int:
        row = self._c.execute(
            "SELECT count(*) FROM object_versions WHERE vault_id = ? AND kind = ? AND name_ci = ?",
            (vault_id, kind, name.lower()),
        ).fetchone()
        return int(row[0])

    # audit log ---------------------------------------------------------------------------
    def add_audit_batches(self, batches: Sequence[records.AuditBatch]) -> None:
        self._c.executemany(statements.INSERT_AUDIT_BATCH, [statements.audit_batch_row(b) for b in batches])

    def list_audit_batches(
        self, *, after_id: int, since_ms: int | None, until_ms: int | None, limit: int
    ) -> list[records.AuditBatch]:
        where, args = statements.audit_batches_where(after_id, since_ms, until_ms)
        rows = self._c.execute(
            f"SELECT {_AUDIT_READ}, id FROM audit_batches WHERE {where} ORDER BY id LIMIT ?", (*args, limit)
        ).fetchall()
        return [_audit_batch(r) for r in rows]

    def audit_time_from_newest(self, offset: int) -> int | None:
        row = self._c.execute(
            "SELECT min_time_ms FROM (SELECT min_time_ms, id, sum(count) OVER (ORDER BY id DESC) AS upto "
            "FROM audit_batches) WHERE upto > ? ORDER BY id DESC LIMIT 1",
            (offset,),
        ).fetchone()
        return None if row is None else int(row[0])

    def delete_audit_batches(self, *, before_ms: int) -> int:
        row = self._c.execute(
            "SELECT coalesce(sum(count), 0) FROM audit_batches WHERE max_time_ms < ?", (before_ms,)
        ).fetchone()
        self._c.execute("DELETE FROM audit_batches WHERE max_time_ms < ?", (before_ms,))
        return int(row[0])


# Each audit column's SQLite storage class as kluis writes it. SQLite keeps whatever type an UPDATE
# gives (``replace(body, ...)`` makes the blob text), so rows are read with ``typeof`` and text as
# bytes (text that is not UTF-8 would fail in the driver) and checked in :func:`_audit_batch`.
_AUDIT_KINDS: tuple[tuple[str, str], ...] = tuple(
    zip(statements.AUDIT_COLUMNS.split(", "), ("text", "integer", "integer", "integer", "integer", "text", "integer",
                                             "text", "blob", "integer"), strict=True)
)  # fmt: skip
_AUDIT_READ = ", ".join(
    f"typeof({name}), " + (f"CAST({name} AS BLOB)" if kind == "text" else name) for name, kind in _AUDIT_KINDS
)
_EMPTY: dict[str, object] = {"text": "", "integer": 0, "blob": b""}


def _audit_batch(row: Sequence[Any]) -> records.AuditBatch:
    """An :class:`records.AuditBatch` from a row of ``_AUDIT_READ, id``: a column of another storage class than
    kluis writes, or text that is not UTF-8, is named in ``damaged`` and read as its type's empty value."""
    values: list[Any] = []
    damaged: list[str] = []
    for i, (name, kind) in enumerate(_AUDIT_KINDS):
        stored, value = row[2 * i], row[2 * i + 1]
        if stored == kind and kind == "text":
            try:
                value = bytes(value).decode()
            except UnicodeDecodeError:
                stored = "non-UTF-8 text"
        if stored != kind:
            damaged.append(name)
            value = _EMPTY[kind]
        values.append(value)
    chain, first_seq, count, min_time, max_time, prev_hash, prev_time, mac, body, form = values
    return records.AuditBatch(
        chain, first_seq, count, min_time, max_time, prev_hash, prev_time, mac, body, form, row[-1], tuple(damaged)
    )


_CACHE_LIMIT = 20_000


class _ReadCache:
    def __init__(self) -> None:
        self.data_version: int | None = None
        self.entries: dict[tuple[Any, ...], Any] = {}
        self.generation = object()  # a new one whenever the entries are dropped (unique to this cache)

    def drop(self) -> None:
        self.entries.clear()
        self.generation = object()


class _RequestScope:
    """One request's reads: after its first check of ``PRAGMA data_version`` the later reads of the
    same request reuse it, unless the cache was dropped since (another connection's commit seen by a
    concurrent request, or a write). A request therefore reads data at least as fresh as its start."""

    __slots__ = ("checked",)

    def __init__(self) -> None:
        self.checked: object = None  # the generation of the cache when last checked


_scope: ContextVar[_RequestScope | None] = ContextVar("kluis_sqlite_request_scope", default=None)


class CachedReadTransaction(CachedLookups, SqliteTransaction):
    """Point lookups answered from the connection's cache while the database is unchanged.

    Records enter the cache as read-only twins (``kluis.store.cached.share``) and are handed out
    as they are: no copy per read, and a caller that tries to edit one gets ``AttributeError``.
    """

    def __init__(self, conn: sqlite3.Connection, cache: _ReadCache) -> None:
        super().__init__(conn)
        self._cache = cache
        self._hits = cache.entries  # the same dict for the cache's life (dropping clears it in place)
        self._pragma = conn.cursor()  # kept: a cursor made and freed per request cost more than the pragma
        self._join = conn.cursor()  # kept for the cold object read, likewise (its one row is read to the end)

    def data_version(self) -> int:
        version: int = self._pragma.execute("PRAGMA data_version").fetchone()[0]
        return version

    def _memo(self, key: tuple[Any, ...], load: Any) -> Any:
        hit = self._cache.entries.get(key, MISSING)
        if hit is MISSING:
            hit = self._remember(key, load())
        return hit

    def _remember(self, key: tuple[Any, ...], value: Any) -> Any:
        """Cache ``value`` (as its read-only twin, which is returned) under ``key``."""
        if len(self._cache.entries) >= _CACHE_LIMIT:
            self._cache.drop()
        shared = self._cache.entries[key] = share(value)
        return shared

    def get_object(self, vault_id: str, kind: str, name: str) -> records.ObjectRecord | None:
        """On a miss, the object and its current version are read in one statement and both cached
        (the version read that follows an object read is then a hit)."""
        name_ci = name.lower()
        key = ("object", vault_id, kind, name_ci)
        hit = self._cache.entries.get(key, MISSING)
        if hit is MISSING:
            obj, latest = _object_and_latest(self._join, vault_id, kind, name)
            hit = self._remember(key, obj)
            if latest is not None:
                self._remember(("version", vault_id, kind, name_ci, latest.version.lower()), latest)
        result: records.ObjectRecord | None = hit
        return result


def _private_files(path: str) -> None:
    """Create the database file 0600 before SQLite opens it (SQLite gives its -wal and -shm files
    the database file's mode), and tighten files an older kluis left readable by others."""
    if path == ":memory:" or path.startswith("file:"):
        return
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, path + "-wal", path + "-shm", path + ".writer-lock"):
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            pass


class SqliteStore:
    """Opens the database file, applies pending schema migrations, and hands out transactions."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL", mmap_size: int = MMAP_SIZE) -> None:
        self.path = str(path)
        self._synchronous = synchronous
        self._mmap_size = int(mmap_size)  # see MMAP_SIZE
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        _private_files(self.path)
        self._lock_fd = os.open(self.path + ".writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
        self.migrated_from, self.schema_version = migrate(self._conn())

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute(f"PRAGMA mmap_size={self._mmap_size}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _read_cache(self) -> _ReadCache:
        cache: _ReadCache | None = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = _ReadCache()
        return cache

    def _cached_reads(self, conn: sqlite3.Connection, cache: _ReadCache) -> ReadContext[SqliteTransaction]:
        """This thread's cached-read context: one per thread, reused (it holds no per-read state)."""
        ctx: ReadContext[SqliteTransaction] | None = getattr(self._local, "reads", None)
        if ctx is None:
            ctx = self._local.reads = ReadContext(CachedReadTransaction(conn, cache))
        return ctx

    def read(self) -> ReadContext[SqliteTransaction]:
        """Autocommit reads: each statement sees a consistent snapshot; no lock is held between them."""
        reads: ReadContext[SqliteTransaction] | None = getattr(self._local, "reads", None)
        if reads is None:
            reads = self._cached_reads(self._conn(), self._read_cache())
        tx = reads._tx
        assert isinstance(tx, CachedReadTransaction)
        if tx._c.in_transaction:  # inside this thread's write: read what it wrote, uncached
            return ReadContext(SqliteTransaction(tx._c))
        cache = tx._cache
        scope = _scope.get()
        if scope is None or scope.checked is not cache.generation:
            version = tx.data_version()
            if version != cache.data_version:
                cache.drop()
                cache.data_version = version
            if scope is not None:
                scope.checked = cache.generation
        return reads

    @staticmethod
    def begin_request() -> Token[_RequestScope | None]:
        """Start one request's reads (see ``_RequestScope``); pass the token to ``end_request``."""
        return _scope.set(_RequestScope())

    @staticmethod
    def end_request(token: Token[_RequestScope | None]) -> None:
        _scope.reset(token)

    @contextmanager
    def write(self) -> Iterator[SqliteTransaction]:
        conn = self._conn()
        if conn.in_transaction:  # nested use on the same thread joins the outer transaction
            yield SqliteTransaction(conn)
            return
        with self._write_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield SqliteTransaction(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                finally:
                    # this connection's own commits do not move data_version: forget what it cached
                    self._read_cache().drop()
                conn.execute("COMMIT")
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def cached_setting(self, name: str) -> bytes | None:
        """Through ``read()``: a cache hit after the request's freshness check; inside this thread's
        write, the write's own view (a local query, no round trip)."""
        with self.read() as tx:
            return tx.get_setting(name)

    @contextmanager
    def cache_only(self) -> Iterator[None]:
        """Nothing to do: SQLite reads run inline anyway (a point read costs microseconds)."""
        yield

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Always True: one SQLite file is served by one supervisor, whose scheduler is the only one."""
        yield True

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def copy_database(source: Path | str, target: Path | str) -> None:
    """A consistent copy of the database ``source`` at ``target`` (created 0600), via SQLite's online
    backup API: it copies one committed state while other connections keep reading and writing."""
    _private_files(str(target))
    src = sqlite3.connect(str(source), timeout=30)
    try:
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst)  # all pages in one step: one read snapshot, writers (WAL) are not blocked
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
    finally:
        src.close()


def read_setting(path: Path | str, name: str) -> bytes | None:
    """One value of the ``settings`` table of the database file at ``path`` (read-only); None when absent.
    sqlite3.DatabaseError when the file is not a database or has no settings table."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])
    finally:
        conn.close()

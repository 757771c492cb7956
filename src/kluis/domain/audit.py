"""The audit log: one record per routed operation, stored in MAC-chained batches, pruned by age/count.

Who may call what is decided elsewhere; this module records what happened. A record holds the time,
the caller (tenant, object id, app id), the client's address, the vault, the operation, the object
(name, version), the HTTP status and the request id: never key material, secret values or tokens
(an ``OperationEvent`` carries none, so none can leak in).

Storage: a request only appends a tuple of its event's fields to its worker's buffer (no MAC, no
database). A flush stores the buffered records as one *batch* row (``AuditBatch``: the records as
one orjson array, plus the chain, first seq, count, first/last time), at most ``_MAX_BATCH`` records
per row, in one transaction. A record's ``id`` is its batch's id * ``_IDS_PER_BATCH`` + its index
in the batch, so ids ascend in insertion order. Listing narrows by time range in SQL (the batch's
first/last time) and applies the other filters per record. Why one row per batch: flushing 500
records into SQLite (synchronous=FULL) cost 8.6 µs of CPU per record as rows with a MAC each,
5.4 µs as rows under one MAC per batch (``executemany``), 1.2 µs as one row (2026-11-30, 2 vCPU).

Tamper evidence: every writing process (a worker) starts its own *chain* of batches; each batch
carries the previous batch's MAC (``prev_hash``) and last time (``prev_time_ms``), its first seq,
and its own MAC (``hash``): HMAC-SHA256 under a key derived from the KEK over every other column
and the exact stored body (:func:`batch_mac`). Workers and nodes never wait for each other's
chains. Without ``kek.key`` nobody can forge a MAC, so an edited, inserted or reordered record or
batch, or one removed from the middle of a chain, is found by :meth:`AuditService.verify`; it
names the first record of the first bad batch (one MAC covers the batch, so an edit inside it is
located to the batch). Retention removes a prefix of every chain: whole batches whose last record
is older than a cutoff, whose value is kept in the database with its own MAC, so a chain that
starts after a deleted batch is accepted only when that batch was older than the (authentic)
cutoff. Not detectable from the database alone: removing the newest batches of a chain, or a whole
chain (export the log to keep those). Rows carried over from schema version 4 (one record each,
``format`` 0) keep their own per-record MAC and links and are checked as before.

Durability: records of successful mutating operations (everything except reads, the six crypto
operations and random bytes) are written synchronously, with whatever else is buffered, before the
dispatcher answers; the rest wait in a per-worker buffer flushed every ``batch`` records or
``interval`` seconds by a background thread, and on shutdown. A SIGKILL loses at most the buffered
records of reads / failed requests: those since the last completed flush, normally under ``interval``
seconds' or about ``batch`` records' worth (more while the database refuses writes: up to
``_MAX_BUFFER``), and never a write's record once the write was acknowledged.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import orjson

from kluis.domain.events import OperationEvent
from kluis.store import AuditBatch, AuditQuery, AuditRecord, Store

__all__ = [
    "AUDIT_CUTOFF_SETTING",
    "AuditLog",
    "AuditService",
    "BrokenLink",
    "VerifyReport",
    "batch_mac",
    "batch_records",
    "is_durable_write",
    "record_mac",
]

log = logging.getLogger("kluis.audit")

AUDIT_CUTOFF_SETTING = "audit_pruned_before"  # "<time_ms>:<mac>": records older than time_ms were pruned
# POSTs that change nothing stored: their records are batched like reads.
_NON_MUTATING = frozenset({"Encrypt", "Decrypt", "Sign", "Verify", "WrapKey", "UnwrapKey", "GetRandomBytes"})
_READ_METHODS = frozenset({"GET", "HEAD"})
# Probes are counted by metrics but not audited (a load balancer would fill the log with them).
_NOT_AUDITED = frozenset({"Health", "Liveness", "Readiness"})
_MAX_BUFFER = 200_000  # records held while the database refuses writes; past it the oldest are dropped
_IDS_PER_BATCH = 10_000  # a record's id: its batch's id * this + its index in the batch
_MAX_BATCH = _IDS_PER_BATCH  # records per stored batch; a larger flush stores several, chained
_PAGE = 64  # batches per query while listing or verifying
_FORMAT = 1  # batches written by AuditLog; 0: a version-4 record carried over by the migration
_BATCH_MAC_TAG = "kluis-audit-batch/1"

# A buffered record, and a row of a batch's body (a JSON array of these arrays), in this order:
# (time_ms, tenant_id, caller_object_id, caller_app_id, client_address, vault, operation, kind,
#  object_name, version, status, request_id, duration) - duration in seconds (float) in format 1,
# in whole microseconds in format 0.
Entry = tuple[int, str, str, str, str, str, str, str, str, str, int, str, float]


def is_durable_write(event: OperationEvent) -> bool:
    """True for a successful (2xx) mutating operation: its record must be stored before the answer."""
    return 200 <= event.status < 300 and event.method not in _READ_METHODS and event.operation not in _NON_MUTATING


def _mac(key: bytes, message: bytes) -> str:
    return hmac.digest(key, message, "sha256").hex()


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def record_mac(key: bytes, r: AuditRecord) -> str:
    """The MAC (hex) of a schema-version-4 record (``format`` 0): every field of ``r`` except ``hash``
    and ``id``, in a fixed order (a JSON array). Records written now are covered by :func:`batch_mac`."""
    fields = [
        r.chain, r.seq, r.time_ms, r.tenant_id, r.caller_object_id, r.caller_app_id, r.client_address, r.vault,
        r.operation, r.kind, r.object_name, r.version, r.status, r.request_id, r.duration_us, r.prev_hash,
        r.prev_time_ms,
    ]  # fmt: skip
    return _mac(key, orjson.dumps(fields))


def batch_mac(key: bytes, b: AuditBatch) -> str:
    """The MAC (hex) of a batch (``format`` 1): a JSON header of every column but ``hash`` and ``id``,
    a newline, then ``body`` byte for byte."""
    head = [_BATCH_MAC_TAG, b.chain, b.first_seq, b.count, b.min_time_ms, b.max_time_ms, b.prev_hash, b.prev_time_ms]
    return _mac(key, orjson.dumps(head) + b"\n" + b.body)


def batch_records(b: AuditBatch) -> list[AuditRecord]:
    """The records of a stored batch, in chain order, with their ids; ValueError when the body is not
    a JSON array of ``count`` records of the expected shape."""
    try:
        rows = orjson.loads(b.body)
        if not isinstance(rows, list) or len(rows) != b.count:
            raise ValueError(
                f"the batch holds {len(rows) if isinstance(rows, list) else 'no'} record(s), not {b.count}"
            )
        out: list[AuditRecord] = []
        prev_time = b.prev_time_ms
        base = b.id * _IDS_PER_BATCH
        for i, row in enumerate(rows):
            t, tenant, oid, app, client, vault, operation, kind, name, version, status, request_id, duration = row
            us = int(duration) if b.format == 0 else int(duration * 1_000_000)
            out.append(AuditRecord(
                b.chain, b.first_seq + i, t, tenant, oid, app, client, vault, operation, kind, name, version, status,
                request_id, us, b.prev_hash, prev_time, b.hash, base + i,
            ))  # fmt: skip
            prev_time = t
        return out
    except (orjson.JSONDecodeError, TypeError) as e:
        raise ValueError(f"the batch's body cannot be read: {e}") from None


class AuditLog:
    """One worker's writer: an ``EventBus`` subscriber that buffers each event for this process's chain.

    ``batch`` records or ``interval`` seconds (whichever comes first) trigger a background flush;
    durable writes (see :func:`is_durable_write`) flush at once, on the caller's thread. A failed
    flush keeps its records for the next attempt and calls ``on_error`` (metrics). Thread-safe:
    requests only append to the buffer (``list.append`` is atomic); only a flush, one at a time,
    removes the prefix it stores.
    """

    def __init__(
        self,
        store: Store,
        key: bytes,
        *,
        batch: int = 500,
        interval: float = 0.2,
        on_error: Callable[[], None] | None = None,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self._store = store
        self._key = key
        self._batch = max(1, batch)
        self._interval = interval
        self.on_error = on_error  # called after a failed flush (metrics count database errors)
        self._now_ms = now_ms or _wall_ms
        self.chain = uuid.uuid4().hex
        # the chain as stored so far (changed only by a flush that committed, or that dropped records)
        self._seq = 0
        self._prev_hash = ""
        self._prev_time = 0
        self._buffer: list[Entry] = []  # appended by requests, its prefix removed by a flush
        self._flush_lock = threading.Lock()  # one flush at a time, so batches reach the store in chain order
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, event: OperationEvent) -> None:
        operation = event.operation
        if operation in _NOT_AUDITED:
            return
        self._buffer.append((
            self._now_ms(), event.tenant_id, event.caller_object_id, event.caller_app_id, event.client_address,
            event.vault, operation, event.kind, event.object_name, event.version, event.status, event.request_id,
            event.duration,
        ))  # fmt: skip
        if 200 <= event.status < 300 and event.method not in _READ_METHODS and operation not in _NON_MUTATING:
            self.flush()  # a durable write: stored (with everything before it) before the answer
            return
        if self._thread is None:
            self._start()
        if len(self._buffer) >= self._batch:
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kluis-audit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()

    def _seal(self, entries: list[Entry]) -> list[AuditBatch]:
        """Link ``entries`` (made monotonic in time) into the chain as batches of at most ``_MAX_BATCH``."""
        prev_time = self._prev_time
        for i, entry in enumerate(entries):  # a chain's times never go backwards (the wall clock may)
            if entry[0] < prev_time:
                entries[i] = (prev_time, *entry[1:])
            else:
                prev_time = entry[0]
        seq, prev_hash, prev_time = self._seq, self._prev_hash, self._prev_time
        batches: list[AuditBatch] = []
        for start in range(0, len(entries), _MAX_BATCH):
            chunk = entries[start : start + _MAX_BATCH]
            b = AuditBatch(self.chain, seq, len(chunk), chunk[0][0], chunk[-1][0], prev_hash, prev_time, "",
                           orjson.dumps(chunk))  # fmt: skip
            b.hash = batch_mac(self._key, b)
            batches.append(b)
            seq, prev_hash, prev_time = seq + b.count, b.hash, b.max_time_ms
        return batches

    def flush(self) -> int:
        """Write everything buffered in one transaction; returns how many records were written (0 on
        failure: they stay buffered, the error is logged and ``on_error`` called)."""
        with self._flush_lock:
            buffer = self._buffer
            n = len(buffer)
            if not n:
                return 0
            entries = buffer[:n]
            del buffer[:n]  # records appended meanwhile stay, after these
            batches = self._seal(entries)
            try:
                with self._store.write() as tx:
                    tx.add_audit_batches(batches)
            except Exception:
                log.exception("writing %d audit record(s) failed; kept for the next attempt", n)
                buffer[:0] = entries
                if len(buffer) > _MAX_BUFFER:
                    lost = len(buffer) - _MAX_BUFFER
                    del buffer[:lost]
                    self._seq += lost  # the gap in seq is what verify reports
                    log.error("audit buffer full: %d record(s) dropped (verify will report the gap)", lost)
                if self.on_error is not None:
                    self.on_error()
                return 0
            last = batches[-1]
            self._seq, self._prev_hash, self._prev_time = last.first_seq + last.count, last.hash, last.max_time_ms
            return n

    @property
    def pending(self) -> int:
        """Records buffered, not yet written."""
        return len(self._buffer)

    def close(self) -> None:
        """Stop the background thread and write what is left."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()


@dataclass(frozen=True)
class BrokenLink:
    """The first record that does not fit its chain: its store ``id``, chain, seq, and why."""

    id: int
    chain: str
    seq: int
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    """``records`` checked in ``chains`` chains; ``pruned_before_ms``: retention's cutoff (0: none);
    ``broken``: the first bad link, or None when every chain is intact."""

    records: int
    chains: int
    pruned_before_ms: int
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _wanted(query: AuditQuery) -> Callable[[AuditRecord], bool] | None:
    """The per-record test of ``query``'s filters (vault, operation: any case), or None for none."""
    vault, operation, caller, status = query.vault.lower(), query.operation.lower(), query.caller, query.status
    since, until = query.since_ms, query.until_ms
    if not (vault or operation or caller or status is not None or since is not None or until is not None):
        return None

    def wanted(r: AuditRecord) -> bool:
        return (
            (since is None or r.time_ms >= since)
            and (until is None or r.time_ms < until)
            and (not vault or r.vault.lower() == vault)
            and (not caller or caller in (r.caller_object_id, r.caller_app_id))
            and (not operation or r.operation.lower() == operation)
            and (status is None or r.status == status)
        )

    return wanted


class AuditService:
    """Reading, verifying and pruning the stored log (any process; the MAC key comes from the KEK)."""

    def __init__(self, store: Store, key: bytes) -> None:
        self._store = store
        self._key = key

    def _batches(
        self, *, after_id: int = 0, since_ms: int | None = None, until_ms: int | None = None
    ) -> Iterator[AuditBatch]:
        while True:
            with self._store.read() as tx:
                page = tx.list_audit_batches(after_id=after_id, since_ms=since_ms, until_ms=until_ms, limit=_PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            after_id = page[-1].id

    def list(self, query: AuditQuery, *, after_id: int = 0, limit: int = 100) -> list[AuditRecord]:
        """Records matching ``query`` with id > ``after_id``, oldest first, at most ``limit`` (1..1000).
        A batch whose body cannot be read is skipped (``verify`` reports it)."""
        limit = max(1, min(limit, 1000))
        wanted = _wanted(query)
        out: list[AuditRecord] = []
        # the batch holding after_id may have later records: start at it
        first_batch = after_id // _IDS_PER_BATCH - 1 if after_id > 0 else 0
        for b in self._batches(after_id=first_batch, since_ms=query.since_ms, until_ms=query.until_ms):
            try:
                if b.damaged:
                    raise ValueError(f"columns of the wrong type: {', '.join(b.damaged)}")
                records = batch_records(b)
            except ValueError:
                log.error("audit batch %d cannot be read; left out of the listing", b.id)
                continue
            for r in records:
                if r.id > after_id and (wanted is None or wanted(r)):
                    out.append(r)
                    if len(out) == limit:
                        return out
        return out

    def cutoff(self) -> tuple[int, bool]:
        """(retention's cutoff in Unix ms, whether its MAC is authentic); (0, True) when nothing was pruned;
        (0, False) when the stored setting cannot be read (wrong type, not ``MS:HEX``): edited outside kluis."""
        try:
            with self._store.read() as tx:
                raw = tx.get_setting(AUDIT_CUTOFF_SETTING)
            if raw is None:
                return 0, True
            value, _, mac = raw.decode().partition(":")
            cutoff = int(value)
        except ValueError:  # also UnicodeDecodeError; the store's error for a value of the wrong type
            return 0, False
        expected = _mac(self._key, f"audit-cutoff:{value}".encode())
        return cutoff, hmac.compare_digest(mac.encode(), expected.encode())  # bytes: any edited text compares

    def verify(self) -> VerifyReport:
        """Recompute every batch's MAC and every chain's links, oldest first; report the first break."""
        cutoff, authentic = self.cutoff()
        if not authentic:
            return VerifyReport(0, 0, cutoff, BrokenLink(0, "", 0, "the retention cutoff was altered (its MAC fails)"))
        heads: dict[str, AuditBatch] = {}
        count = 0
        for b in self._batches():
            count += b.count
            broken = self._check(b, heads.get(b.chain), cutoff)
            if broken is not None:
                first = b.id * _IDS_PER_BATCH
                return VerifyReport(
                    count, len(heads) + (b.chain not in heads), cutoff, BrokenLink(first, b.chain, b.first_seq, broken)
                )
            heads[b.chain] = replace(b, body=b"")  # the links only: a chain per worker start
        return VerifyReport(count, len(heads), cutoff, None)

    def _authentic(self, b: AuditBatch) -> bool:
        """The batch's MAC matches its columns and body, and the body holds what the columns say."""
        if b.damaged:  # a column holds another type than kluis wrote (see AuditBatch.damaged)
            return False
        if b.format == _FORMAT:
            if not hmac.compare_digest(b.hash.encode(), batch_mac(self._key, b).encode()):
                return False
        elif b.format != 0:
            return False
        try:
            records = batch_records(b)
        except ValueError:
            return False
        if not records or records[0].time_ms != b.min_time_ms or records[-1].time_ms != b.max_time_ms:
            return False
        if b.format == 0:  # a version-4 record: its own MAC over its fields (the columns carry its links)
            return len(records) == 1 and hmac.compare_digest(
                b.hash.encode(), record_mac(self._key, records[0]).encode()
            )
        return True

    def _check(self, b: AuditBatch, last: AuditBatch | None, cutoff: int) -> str | None:
        if not self._authentic(b):
            last_id = b.id * _IDS_PER_BATCH + max(b.count, 1) - 1
            if b.damaged:
                return (f"the record was altered: its batch (records {b.id * _IDS_PER_BATCH}..{last_id}) holds "
                        f"values of the wrong type in {', '.join(b.damaged)}")  # fmt: skip
            return (f"the record was altered: the MAC of its batch (records {b.id * _IDS_PER_BATCH}..{last_id}) "
                    "does not match its fields")  # fmt: skip
        if last is None:
            if b.first_seq == 0:
                if b.prev_hash or b.prev_time_ms:
                    return "the first record of the chain names a predecessor"
                return None
            if b.prev_time_ms >= cutoff:
                return f"records before seq {b.first_seq} are missing (they were newer than the retention cutoff)"
            return None
        expected = last.first_seq + last.count
        if b.first_seq != expected:
            return f"records {expected}..{b.first_seq - 1} of the chain are missing"
        if b.prev_hash != last.hash or b.prev_time_ms != last.max_time_ms:
            return "the record does not link to the chain's previous record"
        return None

    def prune(self, *, now_ms: int, retention_days: int, keep: int) -> int:
        """Delete the batches whose every record is older than ``retention_days`` (0: no age limit) or
        older than the newest ``keep`` records (0: no count limit), so a few more records than the
        limits may stay; records the new cutoff with its MAC. Returns how many records were deleted."""
        cutoffs: list[int] = []
        if retention_days > 0:
            cutoffs.append(now_ms - retention_days * 86_400_000)
        if keep > 0:
            with self._store.read() as tx:
                oldest_kept = tx.audit_time_from_newest(keep - 1)
            if oldest_kept is not None:
                cutoffs.append(oldest_kept)
        if not cutoffs:
            return 0
        cutoff = max(cutoffs)
        current, _ = self.cutoff()
        if cutoff <= current:
            return 0
        with self._store.write() as tx:
            deleted = tx.delete_audit_batches(before_ms=cutoff)
            mac = _mac(self._key, f"audit-cutoff:{cutoff}".encode())
            tx.put_setting(AUDIT_CUTOFF_SETTING, f"{cutoff}:{mac}".encode())
        return deleted

"""The audit log: one record per routed operation, chained by MAC, written in batches, pruned by age/count.

Who may call what is decided elsewhere; this module records what happened. A record holds the time,
the caller (tenant, object id, app id), the client's address, the vault, the operation, the object
(name, version), the HTTP status and the request id: never key material, secret values or tokens
(an ``OperationEvent`` carries none, so none can leak in).

Tamper evidence: every writing process (a worker) starts its own *chain*; each record carries the
previous record's MAC (``prev_hash``) and time (``prev_time_ms``), and its own MAC (``hash``):
HMAC-SHA256 under a key derived from the KEK over every other field. Workers and nodes never wait
for each other's chains. Without ``kek.key`` nobody can forge a MAC, so an edited, inserted or
reordered record, or one removed from the middle of a chain, is found by :meth:`AuditService.verify`.
Retention removes a prefix of every chain: records older than a cutoff, whose value is kept in the
database with its own MAC, so a chain that starts after a deleted record is accepted only when that
record was older than the (authentic) cutoff. Not detectable from the database alone: removing the
newest records of a chain, or a whole chain (export the log to keep those).

Durability: records of successful mutating operations (everything except reads, the six crypto
operations and random bytes) are written synchronously, with whatever else is buffered, before the
dispatcher answers; the rest wait in a per-worker buffer flushed every ``batch`` records or
``interval`` seconds by a background thread, and on shutdown. A SIGKILL loses at most the buffered
records of reads / failed requests of the last ``interval`` seconds.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from kluis.domain.events import OperationEvent
from kluis.store import AuditQuery, AuditRecord, Store

__all__ = [
    "AUDIT_CUTOFF_SETTING",
    "AuditLog",
    "AuditService",
    "BrokenLink",
    "VerifyReport",
    "is_durable_write",
    "record_mac",
]

log = logging.getLogger("kluis.audit")

AUDIT_CUTOFF_SETTING = "audit_pruned_before"  # "<time_ms>:<mac>": records older than time_ms were pruned
# POSTs that change nothing stored: their records are batched like reads.
_NON_MUTATING = frozenset({"Encrypt", "Decrypt", "Sign", "Verify", "WrapKey", "UnwrapKey", "GetRandomBytes"})
# Probes are counted by metrics but not audited (a load balancer would fill the log with them).
_NOT_AUDITED = frozenset({"Health", "Liveness", "Readiness"})
_MAX_BUFFER = 200_000  # records held while the database refuses writes; past it the oldest are dropped
_PAGE = 1000  # records per query while verifying


def is_durable_write(event: OperationEvent) -> bool:
    """True for a successful (2xx) mutating operation: its record must be stored before the answer."""
    return 200 <= event.status < 300 and event.method not in ("GET", "HEAD") and event.operation not in _NON_MUTATING


def _mac(key: bytes, message: bytes) -> str:
    return hmac.digest(key, message, "sha256").hex()


def record_mac(key: bytes, r: AuditRecord) -> str:
    """The MAC (hex) of every field of ``r`` except ``hash`` and ``id``, in a fixed order (a JSON array)."""
    fields = [
        r.chain, r.seq, r.time_ms, r.tenant_id, r.caller_object_id, r.caller_app_id, r.client_address, r.vault,
        r.operation, r.kind, r.object_name, r.version, r.status, r.request_id, r.duration_us, r.prev_hash,
        r.prev_time_ms,
    ]  # fmt: skip
    return _mac(key, orjson.dumps(fields))


class AuditLog:
    """One worker's writer: an ``EventBus`` subscriber that links each event into this process's chain.

    ``batch`` records or ``interval`` seconds (whichever comes first) trigger a background flush;
    durable writes (see :func:`is_durable_write`) flush at once, on the caller's thread. A failed
    flush keeps its records for the next attempt and calls ``on_error`` (metrics). Thread-safe.
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
        self._now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)
        self.chain = uuid.uuid4().hex
        self._seq = 0
        self._prev_hash = ""
        self._prev_time = 0
        self._buffer: list[AuditRecord] = []
        self._lock = threading.Lock()  # chain state and buffer
        self._flush_lock = threading.Lock()  # one flush at a time, so batches reach the store in chain order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, event: OperationEvent) -> None:
        if event.operation in _NOT_AUDITED:
            return
        durable = is_durable_write(event)
        with self._lock:
            now = max(self._now_ms(), self._prev_time)  # a chain's times never go backwards
            r = AuditRecord(
                self.chain, self._seq, now, event.tenant_id, event.caller_object_id, event.caller_app_id,
                event.client_address, event.vault, event.operation, event.kind, event.object_name, event.version,
                event.status, event.request_id, int(event.duration * 1_000_000), "", self._prev_time, "",
            )  # fmt: skip
            # prev_hash and hash are filled in by flush, in chain order, off the request path
            self._seq += 1
            self._prev_time = now
            self._buffer.append(r)
            full = len(self._buffer) >= self._batch
            if self._thread is None and not durable:
                self._start()
        if durable:
            self.flush()
        elif full:
            self._wake.set()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kluis-audit", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write everything buffered in one transaction; returns how many records were written (0 on
        failure: they stay buffered, the error is logged and ``on_error`` called)."""
        with self._flush_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return 0
            prev = self._prev_hash
            for r in batch:  # link the chain (records kept from a failed flush keep their MACs)
                if not r.hash:
                    r.prev_hash = prev
                    r.hash = record_mac(self._key, r)
                prev = r.hash
            self._prev_hash = prev
            try:
                with self._store.write() as tx:
                    tx.add_audit_records(batch)
            except Exception:
                log.exception("writing %d audit record(s) failed; kept for the next attempt", len(batch))
                with self._lock:
                    self._buffer[:0] = batch
                    if len(self._buffer) > _MAX_BUFFER:
                        lost = len(self._buffer) - _MAX_BUFFER
                        del self._buffer[:lost]
                        log.error("audit buffer full: %d record(s) dropped (verify will report the gap)", lost)
                if self.on_error is not None:
                    self.on_error()
                return 0
            return len(batch)

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


class AuditService:
    """Reading, verifying and pruning the stored log (any process; the MAC key comes from the KEK)."""

    def __init__(self, store: Store, key: bytes) -> None:
        self._store = store
        self._key = key

    def list(self, query: AuditQuery, *, after_id: int = 0, limit: int = 100) -> list[AuditRecord]:
        """Records matching ``query`` with id > ``after_id``, oldest first, at most ``limit`` (1..1000)."""
        with self._store.read() as tx:
            return tx.list_audit_records(query, after_id=after_id, limit=max(1, min(limit, 1000)))

    def _all(self) -> Iterator[AuditRecord]:
        after = 0
        while True:
            with self._store.read() as tx:
                page = tx.list_audit_records(AuditQuery(), after_id=after, limit=_PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1].id

    def cutoff(self) -> tuple[int, bool]:
        """(retention's cutoff in Unix ms, whether its MAC is authentic); (0, True) when nothing was pruned."""
        with self._store.read() as tx:
            raw = tx.get_setting(AUDIT_CUTOFF_SETTING)
        if raw is None:
            return 0, True
        value, _, mac = raw.decode().partition(":")
        return int(value), hmac.compare_digest(mac, _mac(self._key, f"audit-cutoff:{value}".encode()))

    def verify(self) -> VerifyReport:
        """Recompute every record's MAC and every chain's links, oldest first; report the first break."""
        cutoff, authentic = self.cutoff()
        if not authentic:
            return VerifyReport(0, 0, cutoff, BrokenLink(0, "", 0, "the retention cutoff was altered (its MAC fails)"))
        heads: dict[str, AuditRecord] = {}
        count = 0
        for r in self._all():
            count += 1
            broken = self._check(r, heads.get(r.chain), cutoff)
            if broken is not None:
                return VerifyReport(
                    count, len(heads) + (r.chain not in heads), cutoff, BrokenLink(r.id, r.chain, r.seq, broken)
                )
            heads[r.chain] = r
        return VerifyReport(count, len(heads), cutoff, None)

    def _check(self, r: AuditRecord, last: AuditRecord | None, cutoff: int) -> str | None:
        if not hmac.compare_digest(r.hash, record_mac(self._key, r)):
            return "the record was altered: its MAC does not match its fields"
        if last is None:
            if r.seq == 0:
                if r.prev_hash or r.prev_time_ms:
                    return "the first record of the chain names a predecessor"
                return None
            if r.prev_time_ms >= cutoff:
                return f"records before seq {r.seq} are missing (they were newer than the retention cutoff)"
            return None
        if r.seq != last.seq + 1:
            return f"records {last.seq + 1}..{r.seq - 1} of the chain are missing"
        if r.prev_hash != last.hash or r.prev_time_ms != last.time_ms:
            return "the record does not link to the chain's previous record"
        return None

    def prune(self, *, now_ms: int, retention_days: int, keep: int) -> int:
        """Delete records older than ``retention_days`` (0: no age limit) and all but the newest ``keep``
        (0: no count limit); records the new cutoff with its MAC. Returns how many were deleted."""
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
            deleted = tx.delete_audit_records(before_ms=cutoff)
            mac = _mac(self._key, f"audit-cutoff:{cutoff}".encode())
            tx.put_setting(AUDIT_CUTOFF_SETTING, f"{cutoff}:{mac}".encode())
        return deleted

"""The audit log: chaining, batching, durable writes, verification (tampering found), retention."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from kluis.domain.audit import AUDIT_CUTOFF_SETTING, AuditLog, AuditService, is_durable_write, record_mac
from kluis.domain.events import OperationEvent
from kluis.store import AuditQuery, AuditRecord, SqliteStore

KEY = b"k" * 32


class Clock:
    def __init__(self, ms: int = 1_800_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def event(operation: str = "GetKey", method: str = "GET", status: int = 200, **kw: Any) -> OperationEvent:
    base: dict[str, Any] = {
        "request_id": f"req-{operation}-{time.perf_counter_ns()}", "operation": operation, "kind": "key",
        "status": status, "duration": 0.0015, "vault": "v1", "object_name": "k1", "version": "",
        "caller_object_id": "oid-1", "caller_app_id": "app-1", "tenant_id": "t-1", "client_address": "10.0.0.7",
        "method": method,
    }  # fmt: skip
    base.update(kw)
    return OperationEvent(**base)


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "a.db", synchronous="OFF")
    yield s  # type: ignore[misc]
    s.close()


def stored(store: SqliteStore, **filters: Any) -> list[AuditRecord]:
    with store.read() as tx:
        return tx.list_audit_records(AuditQuery(**filters), after_id=0, limit=10_000)


def test_a_record_holds_who_what_where_and_nothing_else(store: SqliteStore) -> None:
    audit = AuditLog(store, KEY, now_ms=Clock())
    audit(event("UpdateKey", "PATCH", version="abc"))
    (r,) = stored(store)  # a successful write is stored at once
    assert (r.time_ms, r.tenant_id, r.caller_object_id, r.caller_app_id, r.client_address) == (
        1_800_000_000_000, "t-1", "oid-1", "app-1", "10.0.0.7",
    )  # fmt: skip
    assert (r.vault, r.operation, r.kind, r.object_name, r.version, r.status) == (
        "v1",
        "UpdateKey",
        "key",
        "k1",
        "abc",
        200,
    )
    assert r.request_id.startswith("req-UpdateKey") and r.duration_us == 1500
    assert (r.chain, r.seq, r.prev_hash, r.prev_time_ms) == (audit.chain, 0, "", 0)
    assert r.hash == record_mac(KEY, r) and len(r.hash) == 64
    # the record's fields are exactly these: no place for a value, key or token
    assert {f.name for f in fields(AuditRecord)} == {
        "chain", "seq", "time_ms", "tenant_id", "caller_object_id", "caller_app_id", "client_address", "vault",
        "operation", "kind", "object_name", "version", "status", "request_id", "duration_us", "prev_hash",
        "prev_time_ms", "hash", "id",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "method", "status", "durable"),
    [
        ("CreateKey", "POST", 200, True),
        ("SetSecret", "PUT", 200, True),
        ("DeleteKey", "DELETE", 200, True),
        ("PurgeDeletedKey", "DELETE", 204, True),
        ("Release", "POST", 200, True),
        ("CreateKey", "POST", 403, False),  # refused: nothing changed
        ("GetKey", "GET", 200, False),
        ("Sign", "POST", 200, False),
        ("Decrypt", "POST", 200, False),
        ("GetRandomBytes", "POST", 200, False),
    ],
)
def test_which_operations_are_durable_writes(operation: str, method: str, status: int, durable: bool) -> None:
    assert is_durable_write(event(operation, method, status)) is durable


def test_reads_wait_in_the_buffer_and_a_write_takes_them_along_in_order(store: SqliteStore) -> None:
    audit = AuditLog(store, KEY, interval=3600)
    for _ in range(3):
        audit(event())
    assert stored(store) == [] and audit.pending == 3
    audit(event("CreateKey", "POST"))
    records = stored(store)
    assert [r.seq for r in records] == [0, 1, 2, 3] and [r.operation for r in records][-1] == "CreateKey"
    assert audit.pending == 0
    audit.close()


def test_a_full_batch_is_written_by_the_background_thread(store: SqliteStore) -> None:
    audit = AuditLog(store, KEY, batch=5, interval=3600)
    for _ in range(5):
        audit(event())
    deadline = time.monotonic() + 5
    while len(stored(store)) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(stored(store)) == 5
    audit.close()


def test_the_interval_flushes_a_partial_batch_and_close_flushes_the_rest(store: SqliteStore) -> None:
    audit = AuditLog(store, KEY, batch=1000, interval=0.05)
    audit(event())
    deadline = time.monotonic() + 5
    while not stored(store) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(stored(store)) == 1
    audit(event())
    audit.close()
    assert len(stored(store)) == 2


def test_health_probes_are_not_audited(store: SqliteStore) -> None:
    audit = AuditLog(store, KEY)
    audit(event("Readiness"))
    audit(event("Liveness"))
    assert audit.pending == 0


class FailingStore:
    def __init__(self, real: SqliteStore) -> None:
        self.real = real
        self.fail = True

    def write(self) -> Any:
        if self.fail:
            raise sqlite3.OperationalError("disk I/O error")
        return self.real.write()


def test_a_failed_flush_keeps_the_records_and_reports_the_error(store: SqliteStore) -> None:
    failing = FailingStore(store)
    errors: list[int] = []
    audit = AuditLog(failing, KEY, on_error=lambda: errors.append(1))  # type: ignore[arg-type]
    audit(event("CreateKey", "POST"))
    assert errors == [1] and audit.pending == 1
    failing.fail = False
    assert audit.flush() == 1
    assert AuditService(store, KEY).verify().ok


def test_chain_times_never_go_backwards(store: SqliteStore) -> None:
    clock = Clock()
    audit = AuditLog(store, KEY, now_ms=clock)
    audit(event())
    clock.ms -= 5000  # the wall clock stepped back
    audit(event())
    audit.flush()
    a, b = stored(store)
    assert b.time_ms == a.time_ms == b.prev_time_ms


def _two_chains(store: SqliteStore, clock: Clock, n: int = 4) -> tuple[AuditLog, AuditLog]:
    one, two = AuditLog(store, KEY, now_ms=clock), AuditLog(store, KEY, now_ms=clock)
    for i in range(n):
        clock.ms += 1000
        (one if i % 2 else two)(event())
        one.flush()
        two.flush()
    return one, two


def test_verify_accepts_interleaved_chains(store: SqliteStore) -> None:
    _two_chains(store, Clock(), 6)
    report = AuditService(store, KEY).verify()
    assert report.ok and report.records == 6 and report.chains == 2 and report.pruned_before_ms == 0


def _sql(store: SqliteStore, statement: str, *args: Any) -> None:
    conn = sqlite3.connect(store.path)
    conn.execute(statement, args)
    conn.commit()
    conn.close()


def test_verify_names_an_edited_record(store: SqliteStore) -> None:
    _two_chains(store, Clock(), 6)
    target = stored(store)[3]
    _sql(store, "UPDATE audit_log SET status = 403 WHERE id = ?", target.id)
    report = AuditService(store, KEY).verify()
    assert not report.ok and report.broken is not None
    assert (report.broken.id, report.broken.chain, report.broken.seq) == (target.id, target.chain, target.seq)
    assert "altered" in report.broken.reason


def test_verify_finds_a_record_removed_from_the_middle_of_a_chain(store: SqliteStore) -> None:
    _two_chains(store, Clock(), 6)
    records = stored(store)
    chain = records[0].chain
    mine = [r for r in records if r.chain == chain]
    _sql(store, "DELETE FROM audit_log WHERE id = ?", mine[1].id)
    report = AuditService(store, KEY).verify()
    assert report.broken is not None and report.broken.id == mine[2].id and "missing" in report.broken.reason


def test_verify_finds_a_deleted_chain_start_and_a_forged_record(store: SqliteStore) -> None:
    _two_chains(store, Clock(), 4)
    first = stored(store)[0]
    _sql(store, "DELETE FROM audit_log WHERE id = ?", first.id)
    broken = AuditService(store, KEY).verify().broken
    assert broken is not None and broken.chain == first.chain and "before seq 1" in broken.reason
    # a record recomputed without the KEK-derived key does not pass
    forged = replace(stored(store)[0], status=500)
    forged.hash = record_mac(b"x" * 32, forged)
    _sql(store, "UPDATE audit_log SET status = 500, hash = ? WHERE id = ?", forged.hash, forged.id)
    assert AuditService(store, KEY).verify().broken.id == forged.id  # type: ignore[union-attr]


def test_retention_by_age_keeps_the_chains_verifiable(store: SqliteStore) -> None:
    clock = Clock()
    _two_chains(store, clock, 8)  # one record a second
    service = AuditService(store, KEY)
    now = clock.ms - 3500 + 86_400_000  # records (1 s .. 8 s) older than 1 day: the first 4
    assert service.prune(now_ms=now, retention_days=1, keep=0) == 4
    assert len(stored(store)) == 4
    report = service.verify()
    assert report.ok and report.pruned_before_ms == now - 86_400_000
    assert service.prune(now_ms=now, retention_days=1, keep=0) == 0  # idempotent


def test_retention_by_count(store: SqliteStore) -> None:
    clock = Clock()
    _two_chains(store, clock, 10)
    service = AuditService(store, KEY)
    assert service.prune(now_ms=clock.ms, retention_days=0, keep=3) == 7
    assert len(stored(store)) == 3 and service.verify().ok
    assert service.prune(now_ms=clock.ms, retention_days=0, keep=0) == 0  # no limits: nothing to do


def test_a_raised_retention_cutoff_is_detected(store: SqliteStore) -> None:
    clock = Clock()
    _two_chains(store, clock, 6)
    first = stored(store)[0]
    _sql(store, "DELETE FROM audit_log WHERE id = ?", first.id)
    # hiding the deletion as retention needs a cutoff with a MAC only the KEK's holder can make
    _sql(store, "INSERT INTO settings VALUES (?, ?)", AUDIT_CUTOFF_SETTING, f"{clock.ms}:{'0' * 64}".encode())
    report = AuditService(store, KEY).verify()
    assert report.broken is not None and "cutoff" in report.broken.reason


def test_list_filters_and_pages(store: SqliteStore) -> None:
    clock = Clock()
    audit = AuditLog(store, KEY, now_ms=clock)
    audit(event("GetKey", vault="v1", caller_app_id="app-a"))
    clock.ms += 10
    audit(event("GetSecret", vault="v2", caller_object_id="oid-b", status=403))
    clock.ms += 10
    audit(event("CreateKey", "POST", vault="V1"))
    service = AuditService(store, KEY)
    assert [r.operation for r in service.list(AuditQuery(vault="v1"))] == ["GetKey", "CreateKey"]
    assert [r.operation for r in service.list(AuditQuery(caller="oid-b"))] == ["GetSecret"]
    assert [r.operation for r in service.list(AuditQuery(caller="app-a"))] == ["GetKey"]
    assert [r.operation for r in service.list(AuditQuery(status=403))] == ["GetSecret"]
    assert [r.operation for r in service.list(AuditQuery(operation="createkey"))] == ["CreateKey"]
    start = 1_800_000_000_000
    assert [r.operation for r in service.list(AuditQuery(since_ms=start + 10, until_ms=start + 20))] == ["GetSecret"]
    first = service.list(AuditQuery(), limit=2)
    rest = service.list(AuditQuery(), after_id=first[-1].id)
    assert [r.operation for r in first + rest] == ["GetKey", "GetSecret", "CreateKey"]

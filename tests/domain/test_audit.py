"""The audit log: chaining, batching, durable writes, verification (tampering found), retention, and the
records of schema version 4 carried over by the upgrade."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from kluis.domain import audit as audit_module
from kluis.domain.audit import (
    AUDIT_CUTOFF_SETTING,
    AuditLog,
    AuditService,
    batch_mac,
    batch_records,
    is_durable_write,
    record_mac,
)
from kluis.domain.events import OperationEvent
from kluis.store import AuditBatch, AuditQuery, AuditRecord, SqliteStore
from kluis.store.sqlite_schema import migrate

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
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "a.db", synchronous="OFF")
    yield s
    s.close()


def batches(store: SqliteStore) -> list[AuditBatch]:
    with store.read() as tx:
        return tx.list_audit_batches(after_id=0, since_ms=None, until_ms=None, limit=10_000)


def stored(store: SqliteStore) -> list[AuditRecord]:
    return [r for b in batches(store) for r in batch_records(b)]


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
    (b,) = batches(store)  # one MAC covers the batch the record is stored in
    assert r.hash == b.hash == batch_mac(KEY, b) and len(r.hash) == 64 and r.id == b.id * 10_000
    assert (b.chain, b.first_seq, b.count, b.min_time_ms, b.max_time_ms, b.format) == (
        audit.chain, 0, 1, 1_800_000_000_000, 1_800_000_000_000, 1,
    )  # fmt: skip
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
    assert audit.pending == 0 and len(batches(store)) == 1  # one row, one MAC for the four
    assert [r.id for r in records] == [records[0].id + i for i in range(4)]
    assert [r.prev_time_ms for r in records[1:]] == [r.time_ms for r in records[:-1]]
    audit.close()


def test_a_flush_larger_than_a_batch_row_stores_several_chained_rows(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_module, "_MAX_BATCH", 3)
    clock = Clock()
    audit = AuditLog(store, KEY, interval=3600, now_ms=clock)
    for _ in range(7):
        clock.ms += 1
        audit(event())
    assert audit.flush() == 7
    rows = batches(store)
    assert [(b.first_seq, b.count) for b in rows] == [(0, 3), (3, 3), (6, 1)]
    assert [b.prev_hash for b in rows[1:]] == [b.hash for b in rows[:-1]]
    assert [b.prev_time_ms for b in rows[1:]] == [b.max_time_ms for b in rows[:-1]]
    assert [r.seq for r in stored(store)] == list(range(7))
    assert AuditService(store, KEY).verify().ok
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
    audit = AuditLog(failing, KEY, interval=3600, on_error=lambda: errors.append(1))  # type: ignore[arg-type]
    audit(event())
    audit(event("CreateKey", "POST"))
    assert errors == [1] and audit.pending == 2
    audit(event())
    failing.fail = False
    assert audit.flush() == 3
    assert [r.seq for r in stored(store)] == [0, 1, 2] and AuditService(store, KEY).verify().ok
    audit.close()


def test_records_dropped_from_a_full_buffer_leave_a_gap_that_verify_reports(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_module, "_MAX_BUFFER", 3)
    failing = FailingStore(store)
    audit = AuditLog(failing, KEY, interval=3600)  # type: ignore[arg-type]
    for _ in range(5):
        audit(event())
    assert audit.flush() == 0 and audit.pending == 3  # the two oldest were dropped
    failing.fail = False
    assert audit.flush() == 3
    assert [r.seq for r in stored(store)] == [2, 3, 4]
    broken = AuditService(store, KEY).verify().broken
    assert broken is not None and "before seq 2 are missing" in broken.reason
    audit.close()


def test_appends_from_many_threads_during_flushes_are_all_stored_in_order(store: SqliteStore) -> None:
    import threading

    audit = AuditLog(store, KEY, batch=7, interval=0.001)
    per_thread, threads = 300, 4

    def work(t: int) -> None:
        for i in range(per_thread):
            audit(event(request_id=f"{t}-{i}"))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    audit.close()
    records = stored(store)
    assert [r.seq for r in records] == list(range(per_thread * threads))
    assert sorted(r.request_id for r in records) == sorted(
        f"{t}-{i}" for t in range(threads) for i in range(per_thread)
    )
    for t in range(threads):  # each thread's records in its own order
        mine = [int(r.request_id.split("-")[1]) for r in records if r.request_id.startswith(f"{t}-")]
        assert mine == list(range(per_thread))
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


def _body(store: SqliteStore, batch_id: int) -> list[list[Any]]:
    conn = sqlite3.connect(store.path)
    (body,) = conn.execute("SELECT body FROM audit_batches WHERE id = ?", (batch_id,)).fetchone()
    conn.close()
    rows: list[list[Any]] = orjson.loads(body)
    return rows


def _set_body(store: SqliteStore, batch_id: int, rows: list[list[Any]], **columns: Any) -> None:
    sets = "".join(f", {name} = ?" for name in columns)
    _sql(
        store, f"UPDATE audit_batches SET body = ?{sets} WHERE id = ?", orjson.dumps(rows), *columns.values(), batch_id
    )


_STATUS = 10  # index of the status in a body row


def test_verify_names_an_edited_record(store: SqliteStore) -> None:
    _two_chains(store, Clock(), 6)
    target = stored(store)[3]
    rows = _body(store, target.id // 10_000)
    rows[0][_STATUS] = 403
    _set_body(store, target.id // 10_000, rows)
    report = AuditService(store, KEY).verify()
    assert not report.ok and report.broken is not None
    assert (report.broken.id, report.broken.chain, report.broken.seq) == (target.id, target.chain, target.seq)
    assert "altered" in report.broken.reason


def _one_batch_of_five(store: SqliteStore) -> tuple[AuditLog, AuditBatch, Clock]:
    clock = Clock()
    audit = AuditLog(store, KEY, interval=3600, now_ms=clock)
    for i in range(5):
        clock.ms += 1000
        audit(event(object_name=f"k{i}"))
    audit.flush()
    (b,) = batches(store)
    assert b.count == 5 and AuditService(store, KEY).verify().ok
    return audit, b, clock


@pytest.mark.parametrize("change", ["edit", "remove", "swap", "insert", "hide-in-time"])
def test_verify_finds_any_change_inside_a_batch(store: SqliteStore, change: str) -> None:
    audit, b, _ = _one_batch_of_five(store)
    rows = _body(store, b.id)
    columns: dict[str, Any] = {}
    if change == "edit":
        rows[2][_STATUS] = 500
    elif change == "remove":  # the count and last time made to agree: only the MAC can tell
        del rows[2]
        columns["count"] = 4
    elif change == "swap":
        rows[1], rows[2] = rows[2], rows[1]
    elif change == "insert":
        rows.insert(3, [*rows[3][:11], "forged-request", 0.001])
        columns["count"] = 6
    else:  # a batch claiming later times would hide its records from a time-range listing
        columns["min_time_ms"] = b.max_time_ms
    _set_body(store, b.id, rows, **columns)
    broken = AuditService(store, KEY).verify().broken
    assert broken is not None and broken.id == b.id * 10_000 and broken.seq == 0 and "altered" in broken.reason
    assert f"records {b.id * 10_000}..{b.id * 10_000 + columns.get('count', 5) - 1}" in broken.reason
    audit.close()


# SQL edits that change a column's SQLite storage class, not only its value (SQLite keeps the type an
# UPDATE gives: replace() on a blob yields text). Each used to crash verify (TypeError, UnicodeDecodeError).
_TYPE_EDITS = {
    "body-replaced-as-text": "body = replace(body, ',200,', ',403,')",
    "body-cast-to-text-same-bytes": "body = CAST(body AS TEXT)",
    "body-a-number": "body = 42",
    "count-text": "count = 'five'",
    "first-seq-real": "first_seq = 0.5",
    "max-time-text": "max_time_ms = 'later'",
    "hash-a-blob": "hash = CAST(hash AS BLOB)",
    "hash-non-ascii": "hash = 'é' || substr(hash, 2)",
    "chain-not-utf8": "chain = CAST(X'FF' AS TEXT)",
    "format-text": "format = '1x'",
}


@pytest.mark.parametrize("edit", list(_TYPE_EDITS.values()), ids=list(_TYPE_EDITS))
def test_verify_names_the_batch_whose_column_types_were_edited(store: SqliteStore, edit: str) -> None:
    """Any type tampering of a batch row is a broken record naming the batch's first record, never a crash;
    the listing leaves a batch with damaged columns out and keeps the others."""
    _two_chains(store, Clock(), 6)
    target = batches(store)[2]
    _sql(store, f"UPDATE audit_batches SET {edit} WHERE id = ?", target.id)
    service = AuditService(store, KEY)
    report = service.verify()
    assert report.broken is not None, edit
    assert report.broken.id == target.id * 10_000 and "altered" in report.broken.reason
    (after,) = [b for b in batches(store) if b.id == target.id]
    listed = [r.id for r in service.list(AuditQuery(), limit=1000)]  # never a crash either
    assert len(listed) >= 5
    if after.damaged:  # the store named the column; the report does too, and the listing leaves the batch out
        assert all(column in report.broken.reason for column in after.damaged)
        assert target.id * 10_000 not in listed
    else:  # a readable row of the right types with a wrong MAC: listed as stored (only verify checks MACs)
        assert edit.startswith("hash =")


_CUTOFF_EDITS = {
    "replaced-as-text": "value = replace(value, '1', '2')",
    "cast-to-text-same-bytes": "value = CAST(value AS TEXT)",
    "a-number": "value = 1700000000000",
    "not-utf8": "value = X'FFFE'",
    "no-number": "value = CAST('soon:abc' AS BLOB)",
    "non-ascii-mac": "value = CAST(substr(CAST(value AS TEXT), 1, 14) || 'é' AS BLOB)",
}


@pytest.mark.parametrize("edit", list(_CUTOFF_EDITS.values()), ids=list(_CUTOFF_EDITS))
def test_verify_reports_an_edited_retention_cutoff_of_any_type(store: SqliteStore, edit: str) -> None:
    clock = Clock()
    _two_chains(store, clock, 8)
    service = AuditService(store, KEY)
    assert service.prune(now_ms=clock.ms - 3500 + 86_400_000, retention_days=1, keep=0) == 4
    assert service.verify().ok
    _sql(store, f"UPDATE settings SET {edit} WHERE name = ?", AUDIT_CUTOFF_SETTING)
    report = service.verify()
    assert report.broken is not None and "cutoff" in report.broken.reason and not report.ok


def test_on_postgresql_type_tampering_is_refused_and_text_edits_are_reported(postgres_url: str) -> None:
    """PostgreSQL keeps each column's type (bytea, bigint, text), so the tester's SQLite edit is refused by
    the database itself; the same edit through a text round trip, a non-ASCII MAC, and an unreadable cutoff
    are reported as broken records, never an internal error."""
    import psycopg

    from kluis.store.postgres import PostgresStore

    pg = PostgresStore(postgres_url, pool_size=2)
    try:
        clock = Clock()
        _two_chains(pg, clock, 8)  # type: ignore[arg-type]
        service = AuditService(pg, KEY)
        assert service.prune(now_ms=clock.ms - 3500 + 86_400_000, retention_days=1, keep=0) == 4
        assert service.verify().ok
        listed = service.list(AuditQuery(), limit=1000)
        target, last = listed[1].id // 10_000, listed[-1].id // 10_000
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.UndefinedFunction):  # replace(bytea, text, text): no such function
                conn.execute("UPDATE audit_batches SET body = replace(body, ',200,', ',403,')")
            with pytest.raises(psycopg.errors.DatatypeMismatch):
                conn.execute("UPDATE audit_batches SET count = 'five'::text")
            conn.execute("UPDATE audit_batches SET hash = 'é' || substr(hash, 2) WHERE id = %s", (last,))
        broken = service.verify().broken
        assert broken is not None and broken.id == last * 10_000 and "altered" in broken.reason
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE audit_batches SET body = convert_to(replace(convert_from(body, 'UTF8'), ',200,', ',403,'),"
                " 'UTF8') WHERE id = %s",
                (target,),
            )
        broken = service.verify().broken
        assert broken is not None and broken.id == target * 10_000 and "altered" in broken.reason
        for value in ("convert_to('soon:é', 'UTF8')", "'\\xfffe'::bytea"):
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute(f"UPDATE settings SET value = {value} WHERE name = %s", (AUDIT_CUTOFF_SETTING,))
            fresh = PostgresStore(postgres_url, pool_size=1)  # settings are cached; a new node reads the row
            try:
                broken = AuditService(fresh, KEY).verify().broken
            finally:
                fresh.close()
            assert broken is not None and "cutoff" in broken.reason, value
    finally:
        pg.close()


def test_verify_finds_reordered_batches(store: SqliteStore) -> None:
    clock = Clock()
    audit = AuditLog(store, KEY, now_ms=clock)
    for _ in range(3):
        clock.ms += 1000
        audit(event("CreateKey", "POST"))  # a durable write: a batch each
    _, second, third = batches(store)
    _sql(store, "UPDATE audit_batches SET id = 1000 WHERE id = ?", second.id)
    _sql(store, "UPDATE audit_batches SET id = ? WHERE id = ?", second.id, third.id)
    _sql(store, "UPDATE audit_batches SET id = ? WHERE id = 1000", third.id)
    broken = AuditService(store, KEY).verify().broken
    assert broken is not None and broken.seq == 2 and "missing" in broken.reason


def test_verify_finds_a_record_removed_from_the_middle_of_a_chain(store: SqliteStore) -> None:
    _two_chains(store, Clock(), 6)
    records = stored(store)
    chain = records[0].chain
    mine = [r for r in records if r.chain == chain]
    _sql(store, "DELETE FROM audit_batches WHERE id = ?", mine[1].id // 10_000)
    report = AuditService(store, KEY).verify()
    assert report.broken is not None and report.broken.id == mine[2].id and "missing" in report.broken.reason


def test_verify_finds_a_deleted_chain_start_and_a_forged_record(store: SqliteStore) -> None:
    _two_chains(store, Clock(), 4)
    first = stored(store)[0]
    _sql(store, "DELETE FROM audit_batches WHERE id = ?", first.id // 10_000)
    broken = AuditService(store, KEY).verify().broken
    assert broken is not None and broken.chain == first.chain and "before seq 1" in broken.reason
    # a batch re-sealed without the KEK-derived key does not pass
    target = batches(store)[0]
    rows = orjson.loads(target.body)
    rows[0][_STATUS] = 500
    forged = replace(target, body=orjson.dumps(rows))
    forged.hash = batch_mac(b"x" * 32, forged)
    _set_body(store, target.id, rows, hash=forged.hash)
    assert AuditService(store, KEY).verify().broken.id == target.id * 10_000  # type: ignore[union-attr]


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


def test_retention_removes_whole_batches_only(store: SqliteStore) -> None:
    audit, b, clock = _one_batch_of_five(store)  # records at +1 s .. +5 s
    for _ in range(2):
        clock.ms += 1000
        audit(event("CreateKey", "POST"))
    service = AuditService(store, KEY)
    # a cutoff inside the first batch keeps it whole: the chain stays a suffix that verifies
    assert service.prune(now_ms=b.min_time_ms + 2500 + 86_400_000, retention_days=1, keep=0) == 0
    assert len(stored(store)) == 7 and service.verify().ok
    assert service.prune(now_ms=b.max_time_ms + 1 + 86_400_000, retention_days=1, keep=0) == 5
    records = stored(store)
    assert [r.seq for r in records] == [5, 6]
    report = service.verify()
    assert report.ok and report.records == 2
    # keep=1: the newest batch holds the newest record; the one before goes
    assert service.prune(now_ms=clock.ms, retention_days=0, keep=1) == 1
    assert [r.seq for r in stored(store)] == [6] and service.verify().ok
    audit.close()


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
    _sql(store, "DELETE FROM audit_batches WHERE id = ?", first.id // 10_000)
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


def test_list_pages_and_filters_across_batches_of_any_size(store: SqliteStore) -> None:
    clock = Clock()
    audit = AuditLog(store, KEY, interval=3600, now_ms=clock)
    expected: list[tuple[str, int]] = []
    for size in (1, 4, 2, 7, 3):
        for _ in range(size):
            clock.ms += 10
            vault = "v1" if len(expected) % 3 else "v2"
            audit(event(vault=vault))
            expected.append((vault, clock.ms))
        audit.flush()
    assert len(batches(store)) == 5
    service = AuditService(store, KEY)
    for query in (AuditQuery(), AuditQuery(vault="V2"), AuditQuery(since_ms=expected[3][1], until_ms=expected[12][1])):
        want = [
            t
            for v, t in expected
            if (not query.vault or v == query.vault.lower())
            and (query.since_ms is None or t >= query.since_ms)
            and (query.until_ms is None or t < query.until_ms)
        ]
        for limit in (1, 3, 1000):
            got: list[AuditRecord] = []
            after = 0
            while True:
                page = service.list(query, after_id=after, limit=limit)
                got += page
                if len(page) < limit:
                    break
                after = page[-1].id
            assert [r.time_ms for r in got] == want
            assert [r.id for r in got] == sorted({r.id for r in got})


def _legacy_records(key: bytes) -> list[AuditRecord]:
    """Records as the per-record writer of schema version 4 made them: two interleaved chains."""
    out: list[AuditRecord] = []
    heads: dict[str, AuditRecord] = {}
    for i, chain in enumerate(["c-a", "c-b", "c-a", "c-a", "c-b"]):
        last = heads.get(chain)
        r = AuditRecord(
            chain, 0 if last is None else last.seq + 1, 1_700_000_000_000 + i * 1000, "t-1", "oid-1", "app-1",
            "10.0.0.7", "Vault" if i % 2 else "v1", "GetKey" if i else "CreateKey", "key", f"k{i}", "", 200,
            f"req-{i}", 1500 + i, "" if last is None else last.hash, 0 if last is None else last.time_ms, "",
        )  # fmt: skip
        r.hash = record_mac(key, r)
        heads[chain] = r
        out.append(r)
    return out


_V4_COLUMNS = (
    "chain, seq, time_ms, tenant_id, caller_object_id, caller_app_id, client_address, vault, operation, kind, "
    "object_name, version, status, request_id, duration_us, prev_hash, prev_time_ms, hash"
)


def _v4_row(r: AuditRecord) -> tuple[Any, ...]:
    return tuple(getattr(r, f.name) for f in fields(AuditRecord) if f.name != "id")


Upgraded = tuple[Any, list[AuditRecord], Callable[[str, tuple[Any, ...]], None]]


@pytest.fixture(params=["sqlite", "postgresql"])
def upgraded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Upgraded]:
    """A database at schema version 4 holding version-4 audit rows, opened (so upgraded) by the store;
    the version-4 records; a way to run SQL on the database behind the store's back (``?`` marks)."""
    legacy = _legacy_records(KEY)
    marks = ", ".join(["?"] * 18)
    execute: Callable[[str, tuple[Any, ...]], None]
    if request.param == "sqlite":
        path = tmp_path / "v4.db"
        conn = sqlite3.connect(path, isolation_level=None)
        assert migrate(conn, target=4) == (0, 4)
        conn.executemany(f"INSERT INTO audit_log ({_V4_COLUMNS}) VALUES ({marks})", [_v4_row(r) for r in legacy])
        conn.close()
        store: Any = SqliteStore(path, synchronous="OFF")

        def execute(sql: str, args: tuple[Any, ...]) -> None:
            with sqlite3.connect(path) as c:
                c.execute(sql, args)
    else:
        import psycopg

        from kluis.store import postgres_schema
        from kluis.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        with psycopg.connect(url, autocommit=True) as pg:
            assert postgres_schema.migrate(pg, target=4) == (0, 4)
            pg.cursor().executemany(
                f"INSERT INTO audit_log ({_V4_COLUMNS}) VALUES ({marks.replace('?', '%s')})",
                [_v4_row(r) for r in legacy],
            )
        store = PostgresStore(url, listen=False)

        def execute(sql: str, args: tuple[Any, ...]) -> None:
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(sql.replace("?", "%s"), args)  # type: ignore[arg-type]

    assert store.migrated_from == 4
    yield store, legacy, execute
    store.close()


def test_records_of_schema_version_4_list_and_verify_after_the_upgrade(upgraded: Upgraded) -> None:
    store, legacy, _ = upgraded
    service = AuditService(store, KEY)
    listed = service.list(AuditQuery(), limit=1000)
    assert [replace(r, id=0) for r in listed] == legacy  # every field as written, the MAC included
    assert [r.id for r in listed] == sorted(r.id for r in listed)
    assert [r.operation for r in service.list(AuditQuery(vault="VAULT"))] == ["GetKey", "GetKey"]
    report = service.verify()
    assert report.ok and report.records == 5 and report.chains == 2
    # the log goes on in batches after them, listed after them
    audit = AuditLog(store, KEY)
    audit(event("CreateKey", "POST"))
    after = service.list(AuditQuery(), limit=1000)
    assert len(after) == 6 and after[-1].operation == "CreateKey" and after[-1].id > listed[-1].id
    report = service.verify()
    assert report.ok and report.records == 6 and report.chains == 3
    # retention of the old rows keeps the rest verifiable
    assert service.prune(now_ms=1_700_000_002_500 + 86_400_000, retention_days=1, keep=0) == 3
    assert service.verify().ok and len(service.list(AuditQuery())) == 3
    audit.close()


def test_an_edited_record_of_schema_version_4_is_found(upgraded: Upgraded) -> None:
    store, legacy, execute = upgraded
    service = AuditService(store, KEY)
    target = service.list(AuditQuery(), limit=1000)[2]
    with store.read() as tx:
        (b,) = tx.list_audit_batches(after_id=target.id // 10_000 - 1, since_ms=None, until_ms=None, limit=1)
    assert b.format == 0 and b.hash == legacy[2].hash
    rows = orjson.loads(b.body)
    rows[0][_STATUS] = 403
    execute("UPDATE audit_batches SET body = ? WHERE id = ?", (orjson.dumps(rows), b.id))
    broken = service.verify().broken
    assert broken is not None and (broken.id, broken.seq) == (target.id, target.seq) and "altered" in broken.reason
    execute("UPDATE audit_batches SET body = ? WHERE id = ?", (b.body, b.id))
    assert service.verify().ok
    execute("UPDATE audit_batches SET prev_time_ms = 5 WHERE id = ?", (b.id,))  # a link column: in its MAC
    assert service.verify().broken is not None

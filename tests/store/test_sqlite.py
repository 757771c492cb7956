"""SqliteStore: the queries the domain relies on, durability across reopen, and write isolation."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from kluis.store import (
    AuditBatch,
    ObjectRecord,
    PolicyRecord,
    PrincipalRecord,
    SqliteStore,
    VersionRecord,
)
from kluis.store.sqlite import _OBJECT_AND_LATEST, SqliteTransaction
from tests.store.contract import *  # noqa: F403 - the store contract, run here against SQLite
from tests.store.contract import seed


def _version(vault: str, name: str, version: str, created: int = 1) -> VersionRecord:
    return VersionRecord(
        vault_id=vault, kind="key", name=name, version=version, sealed=b"\x01sealed", enabled=True, nbf=None,
        exp=None, created=created, updated=created, tags={"t": "1"}, props={"kty": "EC", "key_ops": ["sign"]},
    )  # fmt: skip


def _object(vault: str, name: str, latest: str, created: int, updated: int, **kw: object) -> ObjectRecord:
    return ObjectRecord(vault, "key", name, latest, created, updated, **kw)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "k.db")
    seed(s)  # the contract's vault "MyVault" (v1) in group "RG"
    return s


def test_vault_lookup_is_case_insensitive_and_joins_group(store: SqliteStore) -> None:
    with store.read() as tx:
        v = tx.get_vault("myvault")
        assert v is not None and v.name == "MyVault" and v.group_name == "RG"
        assert tx.get_vault("other") is None


def test_settings_roundtrip_and_overwrite(store: SqliteStore) -> None:
    with store.write() as tx:
        tx.put_setting("a", b"1")
        tx.put_setting("a", b"2")
    with store.read() as tx:
        assert tx.get_setting("a") == b"2"
        assert tx.get_setting("missing") is None


def test_key_versions_and_paging(store: SqliteStore) -> None:
    with store.write() as tx:
        for i in range(5):
            tx.add_version(_version("v1", "Key", f"{i:032x}", created=i))
        tx.put_object(_object("v1", "Key", f"{4:032x}", 0, 4))
        tx.put_object(_object("v1", "Another", f"{4:032x}", 0, 4, deleted_at=5, scheduled_purge_at=10))
    with store.read() as tx:
        assert tx.count_versions("v1", "key", "KEY") == 5
        first = tx.list_versions("v1", "key", "key", after_seq=None, limit=2)
        rest = tx.list_versions("v1", "key", "key", after_seq=first[-1].seq, limit=10)
        assert [v.version for v in first + rest] == [f"{i:032x}" for i in range(5)]
        assert [k.name for k in tx.list_objects("v1", "key", deleted=False, after=None, limit=10)] == ["Key"]
        assert [k.name for k in tx.list_objects("v1", "key", deleted=True, after=None, limit=10)] == ["Another"]
        assert first[0].props == {"kty": "EC", "key_ops": ["sign"]} and first[0].tags == {"t": "1"}
        assert tx.list_objects("v1", "secret", deleted=False, after=None, limit=10) == []  # kinds apart
        purge, rotate = tx.objects_due(now=10, limit=10)
        assert [k.name for k in purge] == ["Another"] and rotate == []


def test_failed_write_rolls_back(store: SqliteStore) -> None:
    with pytest.raises(RuntimeError), store.write() as tx:
        tx.put_setting("x", b"1")
        raise RuntimeError("boom")
    with store.read() as tx:
        assert tx.get_setting("x") is None


def test_data_survives_reopen(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "k.db")
    with s.write() as tx:
        tx.add_principal(PrincipalRecord("oid", "app", "n", "sha256$x$y", False, 1))
    s.close()
    s2 = SqliteStore(tmp_path / "k.db")
    with s2.read() as tx:
        p = tx.get_principal_by_app_id("app")
        assert p is not None and p.object_id == "oid"


def test_policies_replace_and_delete_with_principal(store: SqliteStore) -> None:
    with store.write() as tx:
        tx.add_principal(PrincipalRecord("oid", "app", "n", "h", False, 1))
        tx.put_policy(PolicyRecord("v1", "oid", ["get"], [], []))
        tx.put_policy(PolicyRecord("v1", "oid", ["get", "list"], ["get"], []))
    with store.read() as tx:
        p = tx.get_policy("v1", "oid")
        assert p is not None and p.keys == ["get", "list"] and p.secrets == ["get"]
    with store.write() as tx:
        tx.delete_principal("oid")
    with store.read() as tx:
        assert tx.get_policy("v1", "oid") is None


def test_delete_vault_removes_keys(store: SqliteStore) -> None:
    with store.write() as tx:
        tx.add_version(_version("v1", "k", "a" * 32))
        tx.put_object(_object("v1", "k", "a" * 32, 1, 1))
        tx.delete_vault("v1")
    with store.read() as tx:
        assert tx.get_object("v1", "key", "k") is None and tx.get_version("v1", "key", "k", "a" * 32) is None


def test_concurrent_writers_from_threads_do_not_lose_updates(store: SqliteStore) -> None:
    def bump(n: int) -> None:
        for _ in range(n):
            with store.write() as tx:
                cur = int(tx.get_setting("counter") or b"0")
                tx.put_setting("counter", str(cur + 1).encode())

    threads = [threading.Thread(target=bump, args=(50,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.read() as tx:
        assert tx.get_setting("counter") == b"200"


def test_read_cache_sees_other_connections_commits_at_once(tmp_path: Path) -> None:
    """Two stores on one file behave like two worker processes: no stale reads, ever."""
    a, b = SqliteStore(tmp_path / "k.db"), SqliteStore(tmp_path / "k.db")
    with a.write() as tx:
        tx.put_setting("x", b"1")
    with b.read() as tx:
        assert tx.get_setting("x") == b"1"  # cached in b now
    with a.write() as tx:
        tx.put_setting("x", b"2")
    with b.read() as tx:
        assert tx.get_setting("x") == b"2"
    with b.write() as tx:  # b's own commit does not move b's data_version: b must still see it
        tx.put_setting("x", b"3")
    with b.read() as tx:
        assert tx.get_setting("x") == b"3"


def test_read_cache_refuses_edits_of_what_it_hands_out(store: SqliteStore) -> None:
    with store.write() as tx:
        tx.add_version(_version("v1", "k", "a" * 32))
        tx.put_object(_object("v1", "k", "a" * 32, 1, 1))
    with store.read() as tx:
        rec = tx.get_object("v1", "key", "k")
        assert rec is not None
        with pytest.raises(AttributeError, match="read-only"):
            rec.latest_version = "tampered"
    with store.read() as tx:
        again = tx.get_object("v1", "key", "K")
        assert again is not None and again.latest_version == "a" * 32


def test_reads_inside_a_write_see_uncommitted_changes(store: SqliteStore) -> None:
    with store.write() as tx:
        tx.put_setting("y", b"1")
        with store.read() as inner:
            assert inner.get_setting("y") == b"1"


def test_a_request_checks_freshness_once_and_still_sees_other_commits_next_request(tmp_path: Path) -> None:
    a, b = SqliteStore(tmp_path / "k.db"), SqliteStore(tmp_path / "k.db")
    with a.write() as tx:
        tx.put_setting("x", b"1")
    token = b.begin_request()
    try:
        with b.read() as tx:
            assert tx.get_setting("x") == b"1"
        with a.write() as tx:  # another connection commits in the middle of b's request
            tx.put_setting("x", b"2")
        with b.read() as tx:  # same request: its first check stands (a snapshot as of the request's start)
            assert tx.get_setting("x") == b"1"
        with b.write() as tx:  # but its own writes are seen at once
            tx.put_setting("y", b"mine")
        with b.read() as tx:
            assert tx.get_setting("y") == b"mine" and tx.get_setting("x") == b"2"
    finally:
        b.end_request(token)
    with a.write() as tx:
        tx.put_setting("x", b"3")
    with b.read() as tx:  # outside a request every read checks
        assert tx.get_setting("x") == b"3"


def test_a_cold_object_read_brings_its_current_version_in_the_same_statement(store: SqliteStore) -> None:
    with store.write() as tx:
        tx.add_version(_version("v1", "Key-K", "a" * 32))
        tx.add_version(_version("v1", "Key-K", "b" * 32, created=2))
        tx.put_object(_object("v1", "Key-K", "b" * 32, 1, 2))
        tx.put_object(_object("v1", "orphan", "c" * 32, 1, 1))  # its version row is missing
    with store.read() as tx:
        statements: list[str] = []
        tx._c.set_trace_callback(statements.append)
        try:
            obj = tx.get_object("v1", "key", "key-k")
            latest = tx.get_version("v1", "key", "key-k", "B" * 32)  # case-insensitive, as the uncached read
            older = tx.get_version("v1", "key", "key-k", "a" * 32)  # not the current one: its own read
            orphan = tx.get_object("v1", "key", "orphan")
            missing = tx.get_object("v1", "key", "nope")
        finally:
            tx._c.set_trace_callback(None)
    assert obj is not None and obj.name == "Key-K" and obj.latest_version == "b" * 32
    assert latest is not None and latest.version == "b" * 32 and latest.created == 2 and latest.props["kty"] == "EC"
    assert older is not None and older.version == "a" * 32
    assert orphan is not None and orphan.latest_version == "c" * 32 and missing is None
    # one statement per object (joined with its current version), one for the older version, none for the latest
    assert sum("FROM objects o LEFT JOIN object_versions" in s for s in statements) == 3
    assert sum("FROM object_versions WHERE" in s for s in statements) == 1
    with store.read() as tx:  # and the version from the join is uncached the same as a direct read
        direct = SqliteTransaction(tx._c).get_version("v1", "key", "key-k", "b" * 32)
    assert direct == latest


def test_connections_do_not_map_the_database_file_unless_asked(tmp_path: Path) -> None:
    # a mapped WAL reader unmaps the whole file whenever another connection committed (every audit flush):
    # reads through SQLite's page cache cost a cold read less (see MMAP_SIZE)
    s = SqliteStore(tmp_path / "k.db")
    with s.read() as tx:
        assert tx._c.execute("PRAGMA mmap_size").fetchone()[0] == 0
    mapped = SqliteStore(tmp_path / "k.db", mmap_size=1 << 20)
    with mapped.read() as tx:
        assert tx._c.execute("PRAGMA mmap_size").fetchone()[0] == 1 << 20


def _sql(store: SqliteStore, statement: str, *args: object) -> None:
    conn = sqlite3.connect(store.path)
    conn.execute(statement, args)
    conn.commit()
    conn.close()


def test_audit_columns_of_the_wrong_type_are_named_not_misread(store: SqliteStore) -> None:
    """SQLite keeps whatever type an UPDATE gives; a batch row read back names each column that holds
    another storage class than kluis wrote (or text that is not UTF-8) and gives its type's empty value."""
    with store.write() as tx:
        tx.add_audit_batches(
            [AuditBatch("c", 0, 1, 5, 5, "", 0, "h0", b"[1]"), AuditBatch("c", 1, 1, 6, 6, "h0", 5, "h1", b"[2]")]
        )
    _sql(
        store,
        "UPDATE audit_batches SET body = CAST(body AS TEXT), count = 'x', chain = CAST(X'FF' AS TEXT) "
        "WHERE first_seq = 0",
    )
    with store.read() as tx:
        first, second = tx.list_audit_batches(after_id=0, since_ms=None, until_ms=None, limit=10)
    assert first.damaged == ("chain", "count", "body")
    assert (first.chain, first.count, first.body, first.hash, first.max_time_ms) == ("", 0, b"", "h0", 5)
    assert second.damaged == () and second.body == b"[2]" and second.chain == "c"


@pytest.mark.parametrize("edit", ["CAST(value AS TEXT)", "42", "4.2"])
def test_a_setting_of_the_wrong_type_is_a_value_error_naming_it(store: SqliteStore, edit: str) -> None:
    """``bytes()`` would fail on text and turn 42 into 42 zero bytes: a clear ValueError instead."""
    with store.write() as tx:
        tx.put_setting("s", b"1:abc")
    _sql(store, f"UPDATE settings SET value = {edit} WHERE name = 's'")
    with store.read() as tx, pytest.raises(ValueError, match=r"the setting 's' holds a (text|integer|real) value"):
        tx.get_setting("s")


def test_a_cold_object_read_finds_its_current_version_by_rowid_and_never_a_wrong_one(store: SqliteStore) -> None:
    with store.write() as tx:
        tx.add_version(_version("v1", "k", "a" * 32))
        tx.add_version(_version("v1", "k", "b" * 32, created=2))
        tx.put_object(_object("v1", "k", "b" * 32, 1, 2))
    conn = store._conn()
    plan = " | ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + _OBJECT_AND_LATEST, ("v1", "key", "k")))
    assert "USING INTEGER PRIMARY KEY" in plan and "object_versions_id" not in plan  # two descents, not three
    seqs = dict(conn.execute("SELECT version, seq FROM object_versions WHERE name_ci = 'k'").fetchall())
    assert conn.execute("SELECT latest_seq FROM objects WHERE name_ci = 'k'").fetchone()[0] == seqs["b" * 32]
    for stale in (seqs["a" * 32], None):  # pointing at another version, or unset: the index finds the right one
        _sql(store, "UPDATE objects SET latest_seq = ? WHERE name_ci = 'k'", stale)
        with store.read() as tx:
            obj, latest = SqliteTransaction(tx._c).get_object_and_latest("v1", "key", "K")
            assert obj is not None and latest is None
            obj = tx.get_object("v1", "key", "K")
            assert obj is not None
            v = tx.get_version("v1", "key", "K", obj.latest_version)
        assert v is not None and v.version == "b" * 32 and v.created == 2
    with store.write() as tx:  # the next upsert of the object sets it again
        tx.put_object(_object("v1", "k", "b" * 32, 1, 3))
    with store.read() as tx:
        assert SqliteTransaction(tx._c).get_object_and_latest("v1", "key", "k")[1] is not None


def test_cached_reads_hand_out_one_shared_read_only_record_and_writes_read_editable_rows(store: SqliteStore) -> None:
    with store.write() as tx:
        tx.add_version(_version("v1", "k", "1" * 32))
        tx.put_object(_object("v1", "k", "1" * 32, 1, 1))
    with store.read() as tx:
        first = tx.get_object("v1", "key", "k"), tx.get_version("v1", "key", "k", "1" * 32), tx.get_vault("myvault")
    with store.read() as tx:  # unchanged database: the cache's own records, not copies
        again = tx.get_object("v1", "key", "k"), tx.get_version("v1", "key", "k", "1" * 32), tx.get_vault("myvault")
    assert all(a is b and a is not None for a, b in zip(first, again, strict=True))
    obj = first[0]
    assert obj is not None
    with pytest.raises(AttributeError, match="read-only"):
        obj.latest_version = "2" * 32
    with store.write() as tx:  # what a write reads is its own, editable
        fresh = tx.get_object("v1", "key", "k")
        assert fresh is not None and fresh == obj and fresh is not obj
        fresh.updated = 2
        tx.put_object(fresh)
    with store.read() as tx:
        after = tx.get_object("v1", "key", "k")
        assert after is not None and after.updated == 2 and obj.updated == 1

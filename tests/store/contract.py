"""The store contract: what the domain relies on from every ``Store`` (memory, SQLite, PostgreSQL).

Not a test module itself: tests/store/test_memory.py, test_sqlite.py and test_postgres.py import
these tests and give them a ``store`` fixture (an empty store holding group "RG" and vault "v1"
named "MyVault"). Every test here must pass against all three.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from kluis.store import (
    GroupRecord,
    ObjectRecord,
    PolicyRecord,
    PrincipalRecord,
    Store,
    VaultRecord,
    VersionRecord,
    WrappedKeyRecord,
)


def seed(store: Store) -> Store:
    """The contract's starting state: group "RG" and vault "v1" ("MyVault") in it."""
    with store.write() as tx:
        tx.add_group(GroupRecord("RG", "local", 1))
        tx.add_vault(VaultRecord("v1", "MyVault", "RG", "local", 90, False, 1, "standard"))
    return store


def version(name: str, ver: str, *, created: int = 1, kind: str = "key", vault: str = "v1") -> VersionRecord:
    return VersionRecord(
        vault_id=vault, kind=kind, name=name, version=ver, sealed=b"\x00\x01sealed\xff", enabled=True, nbf=None,
        exp=None, created=created, updated=created, tags={"t": "1"},
        props={"kty": "EC", "key_ops": ["sign", "verify"], "exportable": False, "nested": {"n": None, "x": 1.5}},
    )  # fmt: skip


def obj(name: str, latest: str, *, created: int = 1, kind: str = "key", **kw: Any) -> ObjectRecord:
    return ObjectRecord("v1", kind, name, latest, created, created, **kw)


def add(store: Store, name: str, ver: str, *, created: int = 1, **kw: Any) -> VersionRecord:
    """One new current version, as the domain writes it: read the object, add the version, put the object."""
    with store.write() as tx:
        previous = tx.get_object("v1", "key", name)
        v = version(name, ver, created=created)
        tx.add_version(v)
        tx.put_object(obj(previous.name if previous else name, ver, created=previous.created if previous else created))
    return v


def test_contract_vault_lookup_is_case_insensitive_and_names_the_group(store: Store) -> None:
    with store.read() as tx:
        v = tx.get_vault("myvault")
        assert v is not None and (v.vault_id, v.name, v.group_name, v.sku) == ("v1", "MyVault", "RG", "standard")
        assert v.retention_days == 90 and v.purge_protection is False
        assert tx.get_vault("other") is None
        assert [x.name for x in tx.list_vaults()] == ["MyVault"]
        assert [x.name for x in tx.list_vaults("rg")] == ["MyVault"] and tx.list_vaults("nope") == []


def test_contract_groups(store: Store) -> None:
    with store.write() as tx:
        tx.add_group(GroupRecord("b-Group", "west", 5))
    with store.read() as tx:
        assert tx.get_group("B-GROUP") == GroupRecord("b-Group", "west", 5)
        assert [g.name for g in tx.list_groups()] == ["b-Group", "RG"]  # by case-folded name
    with store.write() as tx:
        tx.delete_group("B-group")
    with store.read() as tx:
        assert tx.get_group("b-group") is None


def test_contract_settings_roundtrip_and_overwrite(store: Store) -> None:
    with store.write() as tx:
        tx.put_setting("a", b"1")
        tx.put_setting("a", b"\x00\xff2")
    with store.read() as tx:
        assert tx.get_setting("a") == b"\x00\xff2"
        assert tx.get_setting("missing") is None


def test_contract_cached_setting_follows_committed_writes_also_inside_a_write(store: Store) -> None:
    """``cached_setting`` (the clock offset's read on every ``Clock.now()``) sees this store's commits
    at once, and answers inside a write as well."""
    assert store.cached_setting("offset") is None
    with store.write() as tx:
        tx.put_setting("offset", b"60")
    assert store.cached_setting("offset") == b"60"
    with store.write() as tx:
        assert store.cached_setting("offset") == b"60"
        tx.put_setting("offset", b"-5")
    assert store.cached_setting("offset") == b"-5"
    assert store.cached_setting("offset") == b"-5"  # and again (a cache hit where there is a cache)


def test_contract_wrapped_keys_add_list_rewrap(store: Store) -> None:
    with store.read() as tx:
        assert tx.list_wrapped_keys() == []
    with store.write() as tx:
        tx.add_wrapped_key(WrappedKeyRecord(2, "backup", b"\x00wrapped-2\xff", "fp:old", 5))
        tx.add_wrapped_key(WrappedKeyRecord(1, "seal", b"wrapped-1", "fp:old", 4))
    with store.read() as tx:
        assert tx.list_wrapped_keys() == [
            WrappedKeyRecord(1, "seal", b"wrapped-1", "fp:old", 4),
            WrappedKeyRecord(2, "backup", b"\x00wrapped-2\xff", "fp:old", 5),
        ]
    with store.write() as tx:
        tx.rewrap_key(2, b"new-2", "fp:new")
        with pytest.raises(KeyError):
            tx.rewrap_key(9, b"x", "fp:new")
    with store.read() as tx:
        assert [(k.key_id, k.wrapped, k.kek_fingerprint) for k in tx.list_wrapped_keys()] == [
            (1, b"wrapped-1", "fp:old"),
            (2, b"new-2", "fp:new"),
        ]
    with pytest.raises(Exception), store.write() as tx:  # noqa: B017 - each backend's own duplicate-key error
        tx.add_wrapped_key(WrappedKeyRecord(1, "seal", b"again", "fp:new", 6))


def test_contract_principals_and_their_policies(store: Store) -> None:
    a = PrincipalRecord("oid-a", "app-a", "Zed", "hash-a", True, 2)
    b = PrincipalRecord("oid-b", "app-b", "Alice", "hash-b", False, 2)
    with store.write() as tx:
        tx.add_principal(a)
        tx.add_principal(b)
        tx.put_policy(PolicyRecord("v1", "oid-b", ["get"], [], []))
    with store.read() as tx:
        assert tx.get_principal_by_app_id("app-a") == a and tx.get_principal("oid-b") == b
        assert [p.display_name for p in tx.list_principals()] == ["Alice", "Zed"]  # by created, then name
    with store.write() as tx:
        tx.set_principal_secret("oid-b", "hash-new")
        tx.delete_principal("oid-a")
    with store.read() as tx:
        found = tx.get_principal("oid-b")
        assert found is not None and found.secret_hash == "hash-new"
        assert tx.get_principal("oid-a") is None and tx.get_principal_by_app_id("app-a") is None
    with store.write() as tx:
        tx.delete_principal("oid-b")
    with store.read() as tx:
        assert tx.get_policy("v1", "oid-b") is None  # a principal's policies go with it


def test_contract_policies_upsert_list_delete(store: Store) -> None:
    with store.write() as tx:
        tx.put_policy(PolicyRecord("v1", "p2", ["get"], ["set"], []))
        tx.put_policy(PolicyRecord("v1", "p1", ["get", "list"], [], ["all"]))
        tx.put_policy(PolicyRecord("v1", "p2", ["sign"], [], []))
    with store.read() as tx:
        assert tx.get_policy("v1", "p2") == PolicyRecord("v1", "p2", ["sign"], [], [])
        assert [p.object_id for p in tx.list_policies("v1")] == ["p1", "p2"]
    with store.write() as tx:
        tx.delete_policy("v1", "p1")
    with store.read() as tx:
        assert tx.get_policy("v1", "p1") is None and len(tx.list_policies("v1")) == 1


def test_contract_versions_page_by_seq_and_keep_their_properties(store: Store) -> None:
    made = [add(store, "Key", f"{i:032x}", created=i) for i in range(5)]
    seqs = [v.seq for v in made]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5 and seqs[0] > 0
    with store.read() as tx:
        page = tx.list_versions("v1", "key", "KEY", after_seq=None, limit=2)
        assert [v.version for v in page] == [made[0].version, made[1].version]
        rest = tx.list_versions("v1", "key", "key", after_seq=page[-1].seq, limit=10)
        assert [v.version for v in rest] == [v.version for v in made[2:]]
        assert tx.count_versions("v1", "key", "kEy") == 5
        got = tx.get_version("v1", "key", "KEY", made[3].version.upper())
    assert got is not None
    assert (got.sealed, got.enabled, got.nbf, got.exp, got.created, got.tags) == (
        b"\x00\x01sealed\xff", True, None, None, 3, {"t": "1"}
    )  # fmt: skip
    assert got.props == made[3].props and got.seq == made[3].seq


def test_contract_update_version_changes_attributes_only(store: Store) -> None:
    v = add(store, "k", "a" * 32)
    v.enabled, v.nbf, v.exp, v.updated = False, 10, 20, 30
    v.tags, v.props = {"x": "y"}, {"kty": "RSA", "key_ops": []}
    v.sealed = b"other"  # material never changes
    with store.write() as tx:
        tx.update_version(v)
    with store.read() as tx:
        got = tx.get_version("v1", "key", "k", "a" * 32)
    assert got is not None
    assert (got.enabled, got.nbf, got.exp, got.updated, got.tags, got.props, got.sealed) == (
        False, 10, 20, 30, {"x": "y"}, {"kty": "RSA", "key_ops": []}, b"\x00\x01sealed\xff"
    )  # fmt: skip


def test_contract_objects_list_live_and_deleted_by_name(store: Store) -> None:
    for name in ("b", "A", "c-2", "C-1"):
        add(store, name, uuid.uuid4().hex)
    with store.write() as tx:
        gone = tx.get_object("v1", "key", "B")
        assert gone is not None and gone.name == "b"
        gone.deleted_at, gone.scheduled_purge_at = 100, 200
        tx.put_object(gone)
    with store.read() as tx:
        live = tx.list_objects("v1", "key", deleted=False, after=None, limit=10)
        assert [o.name for o in live] == ["A", "C-1", "c-2"]  # case-folded code-point order
        page = tx.list_objects("v1", "key", deleted=False, after="a", limit=1)
        assert [o.name for o in page] == ["C-1"]
        deleted = tx.list_objects("v1", "key", deleted=True, after=None, limit=10)
        assert [(o.name, o.deleted_at, o.scheduled_purge_at) for o in deleted] == [("b", 100, 200)]
        assert tx.list_objects("v1", "secret", deleted=False, after=None, limit=10) == []


def test_contract_put_object_keeps_created_and_updates_the_rest(store: Store) -> None:
    add(store, "k", "1" * 32, created=5)
    with store.write() as tx:
        tx.put_object(obj("K", "2" * 32, created=99, policy='{"p": 1}', due_at=50))
    with store.read() as tx:
        o = tx.get_object("v1", "key", "k")
    assert o is not None and (o.name, o.latest_version, o.created, o.policy, o.due_at) == (
        "K", "2" * 32, 5, '{"p": 1}', 50
    )  # fmt: skip


def test_contract_delete_object_takes_its_versions(store: Store) -> None:
    add(store, "k", "1" * 32)
    add(store, "k", "2" * 32)
    add(store, "other", "3" * 32)
    with store.write() as tx:
        tx.delete_object("v1", "key", "K")
    with store.read() as tx:
        assert tx.get_object("v1", "key", "k") is None
        assert tx.count_versions("v1", "key", "k") == 0 and tx.get_version("v1", "key", "k", "1" * 32) is None
        assert tx.count_versions("v1", "key", "other") == 1


def test_contract_objects_due_for_purge_and_action(store: Store) -> None:
    for name in ("p1", "p2", "d1", "d2", "later"):
        add(store, name, uuid.uuid4().hex)
    with store.write() as tx:
        for name, fields in {
            "p2": {"deleted_at": 1, "scheduled_purge_at": 20},
            "p1": {"deleted_at": 1, "scheduled_purge_at": 10},
            "d2": {"due_at": 30},
            "d1": {"due_at": 15},
            "later": {"due_at": 1000, "scheduled_purge_at": None},
        }.items():
            o = tx.get_object("v1", "key", name)
            assert o is not None
            for k, val in fields.items():
                setattr(o, k, val)
            tx.put_object(o)
    with store.read() as tx:
        purge, due = tx.objects_due(now=100, limit=10)
        assert [o.name for o in purge] == ["p1", "p2"] and [o.name for o in due] == ["d1", "d2"]
        purge, due = tx.objects_due(now=100, limit=1)
        assert [o.name for o in purge] == ["p1"] and [o.name for o in due] == ["d1"]


def test_contract_delete_vault_takes_everything_in_it(store: Store) -> None:
    add(store, "k", "1" * 32)
    with store.write() as tx:
        tx.put_policy(PolicyRecord("v1", "someone", ["get"], [], []))
        tx.delete_vault("v1")
    with store.read() as tx:
        assert tx.get_vault("MyVault") is None and tx.get_object("v1", "key", "k") is None
        assert tx.list_policies("v1") == [] and tx.count_versions("v1", "key", "k") == 0


def test_contract_a_failed_write_leaves_nothing(store: Store) -> None:
    with store.read() as tx:  # warm any read cache first: the rollback must not be hidden by it
        assert tx.get_setting("x") is None
    with pytest.raises(RuntimeError), store.write() as tx:
        tx.put_setting("x", b"1")
        tx.add_version(version("k", "1" * 32))
        raise RuntimeError("boom")
    with store.read() as tx:
        assert tx.get_setting("x") is None and tx.count_versions("v1", "key", "k") == 0


def test_contract_nested_writes_join_and_reads_inside_a_write_see_it(store: Store) -> None:
    with store.write() as outer:
        outer.put_setting("x", b"1")
        with store.read() as inner_read:
            assert inner_read.get_setting("x") == b"1"
        with store.write() as inner:
            inner.put_setting("y", b"2")
    with store.read() as tx:
        assert (tx.get_setting("x"), tx.get_setting("y")) == (b"1", b"2")


def test_contract_reads_see_this_stores_writes_at_once(store: Store) -> None:
    v = add(store, "k", "1" * 32)
    for enabled in (False, True, False):
        with store.read() as tx:  # cached...
            assert tx.get_version("v1", "key", "k", v.version) is not None
        v.enabled = enabled
        with store.write() as tx:
            tx.update_version(v)
        with store.read() as tx:  # ...and invalidated by the commit
            got = tx.get_version("v1", "key", "k", v.version)
            assert got is not None and got.enabled is enabled


def _edit(record: Any, name: str, value: Any) -> None:
    """Try to edit a record a read handed out: a copy takes it, a cached store's shared record refuses."""
    try:
        setattr(record, name, value)
    except AttributeError as e:
        assert "read-only" in str(e)


def test_contract_an_edit_of_a_record_handed_out_never_reaches_the_store(store: Store) -> None:
    add(store, "k", "1" * 32)
    for _ in range(2):  # the first read loads (a cached store: a miss), the second may be a cache hit
        with store.read() as tx:
            o, vault = tx.get_object("v1", "key", "k"), tx.get_vault("myvault")
            v, policy = tx.get_version("v1", "key", "k", "1" * 32), tx.get_policy("v1", "oid")
            assert o is not None and vault is not None and v is not None
            _edit(o, "latest_version", "edited")
            _edit(vault, "name", "edited")
            _edit(v, "enabled", False)
            if policy is not None:
                _edit(policy, "keys", ["all"])
    with store.read() as tx:
        again, vault_again = tx.get_object("v1", "key", "k"), tx.get_vault("myvault")
        v_again = tx.get_version("v1", "key", "k", "1" * 32)
        assert again is not None and again.latest_version == "1" * 32
        assert vault_again is not None and vault_again.name == "MyVault"
        assert v_again is not None and v_again.enabled is True


def test_contract_exclusive_is_granted_when_nobody_holds_it(store: Store) -> None:
    with store.exclusive("scheduler") as mine:
        assert mine is True
    with store.exclusive("scheduler") as mine:
        assert mine is True  # released at the end of the block


def test_contract_concurrent_versions_of_one_name_are_distinct_and_ordered(store: Store) -> None:
    """Writers racing on one name: every version lands with its own seq, and the object's current
    version is the one with the highest seq (the last committed), as the domain's add_version needs."""
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(5):
                add(store, "raced", f"{i:016x}{j:016x}")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with store.read() as tx:
        versions = tx.list_versions("v1", "key", "raced", after_seq=None, limit=100)
        current = tx.get_object("v1", "key", "raced")
    assert len(versions) == 20 and len({v.seq for v in versions}) == 20 and len({v.version for v in versions}) == 20
    assert current is not None and current.latest_version == versions[-1].version


def test_contract_a_write_refused_by_the_database_leaves_nothing(store: Store) -> None:
    """A duplicate name fails the whole write, even where the database reports it only at commit."""
    import sqlite3

    import psycopg

    with pytest.raises((ValueError, sqlite3.IntegrityError, psycopg.errors.UniqueViolation)), store.write() as tx:
        tx.put_setting("z", b"1")
        tx.add_group(GroupRecord("rg", "elsewhere", 2))
    with store.read() as tx:
        assert tx.get_setting("z") is None
        group = tx.get_group("RG")
        assert group is not None and group.location == "local"


def _batch(chain: str, first_seq: int, count: int, first_ms: int, last_ms: int) -> Any:
    from kluis.store import AuditBatch

    return AuditBatch(chain, first_seq, count, first_ms, last_ms, "", 0, f"h{first_seq}", b"\x00[opaque]\xff")


def test_contract_audit_batches_append_list_by_time_and_prune(store: Store) -> None:
    with store.write() as tx:
        tx.add_audit_batches([_batch("c1", 0, 2, 1000, 2000), _batch("c1", 2, 1, 2500, 2500)])
        tx.add_audit_batches([_batch("c2", 0, 3, 3000, 4000)])
    with store.read() as tx:
        every = tx.list_audit_batches(after_id=0, since_ms=None, until_ms=None, limit=10)
        assert [(b.chain, b.first_seq, b.count) for b in every] == [("c1", 0, 2), ("c1", 2, 1), ("c2", 0, 3)]
        assert all(b.id > 0 for b in every) and every[0].id < every[1].id < every[2].id  # in insertion order
        assert every[0].body == b"\x00[opaque]\xff" and every[0].format == 1  # bytes kept as they are
        assert (every[2].min_time_ms, every[2].max_time_ms, every[2].hash) == (3000, 4000, "h0")
        after = tx.list_audit_batches(after_id=every[0].id, since_ms=None, until_ms=None, limit=1)
        assert [b.first_seq for b in after] == [2]

        def times(since: int | None, until: int | None) -> list[int]:
            return [b.min_time_ms for b in tx.list_audit_batches(after_id=0, since_ms=since, until_ms=until, limit=10)]

        assert times(2000, None) == [1000, 2500, 3000]  # a batch that reaches into the range counts
        assert times(2001, 3000) == [2500] and times(None, 1001) == [1000] and times(4001, None) == []
        # records counted from the newest: 3 in c2's batch, then c1's second batch, then its first
        assert tx.audit_time_from_newest(0) == 3000 and tx.audit_time_from_newest(2) == 3000
        assert tx.audit_time_from_newest(3) == 2500 and tx.audit_time_from_newest(5) == 1000
        assert tx.audit_time_from_newest(6) is None
    with store.write() as tx:
        assert tx.delete_audit_batches(before_ms=2500) == 2  # records of the batches wholly before it
        assert tx.delete_audit_batches(before_ms=2500) == 0
    with store.read() as tx:
        left = tx.list_audit_batches(after_id=0, since_ms=None, until_ms=None, limit=10)
        assert [(b.chain, b.first_seq) for b in left] == [("c1", 2), ("c2", 0)]


__all__ = [name for name in dict(globals()) if name.startswith("test_contract_")]


# The V7 migration's promise, checked on a raw connection of either dialect (sqlite3 or psycopg): every
# object row's latest_seq is the row id of its current version.
_CURRENT_VERSION_ROWS = (
    "SELECT o.latest_seq, v.seq FROM objects o JOIN object_versions v ON v.vault_id = o.vault_id "
    "AND v.kind = o.kind AND v.name_ci = o.name_ci AND v.version = o.latest_version"
)


def assert_objects_point_at_their_current_version(conn: Any, objects: int) -> None:
    """Every one of ``objects`` object rows has ``latest_seq`` = its current version's ``seq``."""
    current = conn.execute(_CURRENT_VERSION_ROWS).fetchall()
    assert len(current) == objects and all(seq == want for seq, want in current)

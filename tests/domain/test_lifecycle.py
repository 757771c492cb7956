"""The lifecycle every kind shares: names, versions, PATCH attributes, the nbf/exp window, soft delete,
recover, purge, paging and sealing, on a real SQLite store (a made-up kind shows it is not key-specific)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from kluis.crypto import CryptoError
from kluis.domain.errors import BadParameter, Conflict, Forbidden, NotFound
from kluis.domain.lifecycle import (
    MAX_PAGE,
    Lifecycle,
    ObjectKind,
    UnsealedCache,
    check_tags,
    page_size,
    recovery_level,
    validate_name,
)
from kluis.domain.views import Changes
from kluis.store import ObjectRecord, VaultRecord, VersionRecord
from tests.domain.conftest import World

DAY = 86400
THING = ObjectKind(
    kind="thing",
    title="Thing",
    time_exempt=frozenset({"peek"}),
    disabled_code="ThingDisabled",
    expired_code="ThingExpired",
    not_yet_valid_code="ThingNotYetValid",
)


class Things:
    """A Lifecycle for THING that records what it was told to forget."""

    def __init__(self, world: World) -> None:
        self.forgotten: list[tuple[str, str]] = []
        self.life = Lifecycle(
            THING, world.store, world.clock, world.sealer, on_forget=lambda v, n: self.forgotten.append((v, n))
        )


@pytest.fixture
def things(world: World) -> Iterator[Things]:
    yield Things(world)


def _version(world: World, vault: VaultRecord, name: str, version: str | None = None) -> VersionRecord:
    return Lifecycle(THING, world.store, world.clock, world.sealer).read(vault, name, version)[1]


# -- pure rules --------------------------------------------------------------------------------------
def test_validate_name() -> None:
    assert validate_name("Abc-123") == "Abc-123" and validate_name("a" * 127) == "a" * 127
    for bad in ("", "a" * 128, "a_b", "a b", "a.b", "ä"):
        with pytest.raises(BadParameter, match="invalid name"):
            validate_name(bad)


def test_check_tags() -> None:
    assert check_tags({"a": "1", "b": ""}) == {"a": "1", "b": ""}
    assert check_tags({f"t{i}": "v" for i in range(15)})
    with pytest.raises(BadParameter, match="A key can have at most 15 tags"):
        check_tags({f"t{i}": "v" for i in range(16)}, title="A key")
    bad: object
    for bad in ([], "x", {"a": 1}, {"a": None}, {"a" * 257: "v"}, {"a": "v" * 257}):
        with pytest.raises(BadParameter):
            check_tags(bad)


def test_page_size_and_recovery_level(world: World) -> None:
    assert page_size(None) == MAX_PAGE == 25 and page_size(1) == 1 and page_size(25) == 25
    for bad in (0, 26, -1):
        with pytest.raises(BadParameter, match="between 1 and 25"):
            page_size(bad)
    v = world.vault
    assert recovery_level(v) == "Recoverable+Purgeable"
    assert recovery_level(replace(v, retention_days=89)) == "CustomizedRecoverable+Purgeable"
    assert recovery_level(replace(v, purge_protection=True)) == "Recoverable"
    assert recovery_level(replace(v, retention_days=7, purge_protection=True)) == "CustomizedRecoverable"


def test_kind_messages() -> None:
    err = THING.not_found("t1", "v9")
    assert err.code == "ThingNotFound" and "A thing with (name/id) t1/v9 was not found" in err.message
    assert "(name/id) t1 was" in THING.not_found("t1").message
    assert THING.deleted_not_found("t1").code == "ThingNotFound"
    conflict = THING.deleted_conflict("t1")
    assert isinstance(conflict, Conflict) and conflict.inner_code == "ObjectIsDeletedButRecoverable"


# -- versions and sealing ----------------------------------------------------------------------------
def test_versions_keep_the_first_casing_and_seal_their_material(world: World, things: Things) -> None:
    life = things.life
    v1 = life.add_version(world.vault, "Thing-1", b"first", Changes(tags={"a": "1"}), {"p": 1})
    v2 = life.add_version(world.vault, "thing-1", b"second", Changes(enabled=False, exp=5), {"p": 2})
    assert v1.kind == "thing" and v1.name == v2.name == "Thing-1" and v1.version != v2.version
    assert (v2.enabled, v2.exp, v2.tags, v2.props) == (False, 5, {}, {"p": 2})  # a version's own attributes
    obj, latest = life.read(world.vault, "THING-1")
    assert latest.version == v2.version and obj.created == v1.created
    assert life.unseal(latest) == b"second"
    assert life.unseal(life.read(world.vault, "thing-1", v1.version)[1]) == b"first"
    assert latest.sealed != b"second" and b"second" not in latest.sealed
    for moved in (replace(latest, name="other"), replace(latest, version=v1.version), replace(latest, kind="key")):
        with pytest.raises(CryptoError):  # sealed material is bound to its kind, vault, name and version
            Lifecycle(THING if moved.kind == "thing" else world.keys.lifecycle.kind, world.store, world.clock,
                      world.sealer).unseal(moved)  # fmt: skip
    with pytest.raises(NotFound) as err:
        life.get(world.vault, "thing-1", "0" * 32)
    assert err.value.code == "ThingNotFound"


def test_add_version_runs_the_check_inside_and_validates_names(world: World, things: Things) -> None:
    seen: list[ObjectRecord | None] = []
    things.life.add_version(world.vault, "t", b"m", Changes(), {}, check=seen.append)
    things.life.add_version(world.vault, "t", b"m", Changes(), {}, check=seen.append)
    assert seen[0] is None and seen[1] is not None and seen[1].name == "t"

    def refuse(previous: ObjectRecord | None) -> None:
        raise BadParameter("no")

    with pytest.raises(BadParameter):
        things.life.add_version(world.vault, "t", b"m", Changes(), {}, check=refuse)
    assert len(things.life.list_versions(world.vault, "t", maxresults=None, token=None).items) == 2
    with pytest.raises(BadParameter, match="invalid name"):
        things.life.add_version(world.vault, "bad name", b"m", Changes(), {})


# -- PATCH ---------------------------------------------------------------------------------------------
def test_update_is_patch(world: World, things: Things) -> None:
    life = things.life
    old = life.add_version(world.vault, "t", b"m", Changes(nbf=10, exp=20, tags={"a": "1"}), {"p": 1})
    new = life.add_version(world.vault, "t", b"m", Changes(), {"p": 2})
    world.clock.t += 100
    same = life.update(world.vault, "t", old.version, Changes())
    assert (same.enabled, same.nbf, same.exp, same.tags, same.props) == (True, 10, 20, {"a": "1"}, {"p": 1})
    assert same.updated == old.updated + 100  # touched, nothing else changed
    cleared = life.update(world.vault, "t", old.version, Changes(nbf=None, tags={}))
    assert (cleared.nbf, cleared.exp, cleared.tags) == (None, 20, {})
    latest = life.update(world.vault, "t", None, Changes(enabled=False), apply=lambda v: {**v.props, "q": 3})
    assert latest.version == new.version and latest.enabled is False and latest.props == {"p": 2, "q": 3}
    assert things.forgotten[-1] == (world.vault.vault_id, "t")


def test_a_refused_update_changes_nothing(world: World, things: Things) -> None:
    things.life.add_version(world.vault, "t", b"m", Changes(), {"p": 1})

    def refuse(v: VersionRecord) -> dict[str, object]:
        raise Forbidden("immutable")

    with pytest.raises(Forbidden):
        things.life.update(world.vault, "t", None, Changes(enabled=False, tags={"x": "y"}), apply=refuse)
    view = things.life.get(world.vault, "t")
    assert view.enabled is True and view.tags == {}


# -- the nbf/exp window ------------------------------------------------------------------------------
def test_check_usable_window(world: World, things: Things) -> None:
    things.life.add_version(world.vault, "t", b"m", Changes(nbf=100, exp=200), {})
    v = _version(world, world.vault, "t")
    check = things.life.check_usable
    check(v, "use", 100)  # nbf is inclusive
    check(v, "use", 199)
    for now, code, words in ((99, "ThingNotYetValid", "not yet valid"), (200, "ThingExpired", "expired")):
        with pytest.raises(Forbidden, match=words) as err:
            check(v, "use", now)
        assert err.value.inner_code == code
    check(v, "peek", 99)  # exempt operations ignore the window...
    check(v, "peek", 10_000)
    disabled = replace(v, enabled=False)
    for op in ("use", "peek"):  # ...but never a disabled version
        with pytest.raises(Forbidden, match="disabled thing") as err:
            check(disabled, op, 150)
        assert err.value.inner_code == "ThingDisabled"
    open_ended = replace(v, nbf=None, exp=None)
    check(open_ended, "use", 0)


def test_usable_reads_and_checks_now(world: World, things: Things) -> None:
    things.life.add_version(world.vault, "t", b"m", Changes(exp=world.clock.t + 10), {})
    things.life.usable(world.vault, "t", None, "use")
    world.clock.t += 10
    with pytest.raises(Forbidden, match="expired"):
        things.life.usable(world.vault, "t", None, "use")
    things.life.add_version(world.vault, "n", b"m", Changes(nbf=world.clock.t + 5), {})
    with pytest.raises(Forbidden, match="not yet valid"):  # no ``now`` given: the lifecycle's clock
        things.life.check_usable(things.life.read(world.vault, "n")[1], "use")
    world.clock.t += 5
    things.life.check_usable(things.life.read(world.vault, "n")[1], "use")


# -- delete, recover, purge ------------------------------------------------------------------------
def test_soft_delete_recover_purge(world: World) -> None:
    world.keys.create_key(world.vault, "k", kty="EC")
    deleted = world.keys.lifecycle.delete(world.vault, "k")
    assert deleted.deleted is not None
    assert deleted.deleted.scheduled_purge_date - deleted.deleted.deleted_date == 90 * DAY
    with pytest.raises(NotFound):
        world.keys.get_key(world.vault, "k")
    with pytest.raises(Conflict) as err:
        world.keys.create_key(world.vault, "k", kty="EC")
    assert err.value.inner_code == "ObjectIsDeletedButRecoverable"
    assert [k.name for k in world.keys.list_deleted_keys(world.vault, maxresults=None, token=None).items] == ["k"]
    world.keys.lifecycle.recover(world.vault, "k")
    assert world.keys.get_key(world.vault, "k").name == "k"
    with pytest.raises(NotFound):
        world.keys.lifecycle.recover(world.vault, "k")
    world.keys.lifecycle.delete(world.vault, "k")
    world.keys.lifecycle.purge(world.vault, "k")
    with pytest.raises(NotFound):
        world.keys.lifecycle.get_deleted(world.vault, "k")
    world.keys.create_key(world.vault, "k", kty="EC")  # the name is free again


def test_purge_protection_and_retention_expiry(world: World) -> None:
    vault = world.mgmt.create_vault(
        "guarded", "rg", retention_days=7, purge_protection=True, creator_object_id="owner-oid"
    )
    view = world.keys.create_key(vault, "k", kty="EC")
    assert view.recovery_level == "CustomizedRecoverable" and view.recoverable_days == 7
    world.keys.lifecycle.delete(vault, "k")
    with pytest.raises(Forbidden, match="purge protection"):
        world.keys.lifecycle.purge(vault, "k")
    world.clock.t += 7 * DAY - 1
    assert world.tick() == (0, 0)
    world.clock.t += 1
    assert world.tick() == (1, 0)
    with pytest.raises(NotFound):
        world.keys.lifecycle.get_deleted(vault, "k")


def test_soft_delete_hides_the_name_until_recovered_or_purged(world: World, things: Things) -> None:
    life = things.life
    life.add_version(world.vault, "t", b"m", Changes(), {})
    with pytest.raises(NotFound):
        life.get_deleted(world.vault, "t")  # live, not deleted
    view = life.delete(world.vault, "t")
    assert view.deleted is not None and view.deleted.deleted_date == world.clock.t
    assert things.forgotten == [(world.vault.vault_id, "t")]
    with pytest.raises(Conflict):
        life.ensure_not_deleted(world.vault, "t")
    with pytest.raises(Conflict):
        life.add_version(world.vault, "t", b"m", Changes(), {})
    with pytest.raises(NotFound):
        life.update(world.vault, "t", None, Changes(enabled=False))
    with pytest.raises(NotFound):
        life.delete(world.vault, "t")
    assert life.list_versions(world.vault, "t", maxresults=None, token=None).items == []
    world.clock.t += 5
    recovered = life.recover(world.vault, "t")
    assert recovered.deleted is None and life.get(world.vault, "t").version == view.version
    life.ensure_not_deleted(world.vault, "t")
    with pytest.raises(NotFound):
        life.purge(world.vault, "t")  # only a deleted object can be purged


def test_purge_if_due_only_after_retention(world: World, things: Things) -> None:
    life = things.life
    life.add_version(world.vault, "t", b"m", Changes(), {})
    life.delete(world.vault, "t")
    end = world.clock.t + world.vault.retention_days * DAY
    assert life.purge_if_due(world.vault.vault_id, "t", end - 1) is False
    assert life.purge_if_due(world.vault.vault_id, "missing", end) is False
    assert life.purge_if_due(world.vault.vault_id, "t", end) is True
    with pytest.raises(NotFound):
        life.get_deleted(world.vault, "t")


# -- listing ---------------------------------------------------------------------------------------------
def test_list_versions_of_a_missing_name_is_an_empty_page(world: World, things: Things) -> None:
    page = things.life.list_versions(world.vault, "never-made", maxresults=None, token=None)
    assert page.items == [] and page.next_token is None
    with pytest.raises(BadParameter, match="skiptoken"):
        things.life.list_versions(world.vault, "t", maxresults=None, token="Z2FyYmFnZQ")
    with pytest.raises(BadParameter):
        things.life.list_versions(world.vault, "t", maxresults=26, token=None)


def test_list_is_one_item_per_name_paged_and_split_by_state(world: World, things: Things) -> None:
    life = things.life
    for name in ("c", "a", "b"):
        life.add_version(world.vault, name, b"m", Changes(), {})
    latest_a = life.add_version(world.vault, "a", b"m", Changes(), {})
    life.delete(world.vault, "b")
    first = life.list(world.vault, deleted=False, maxresults=1, token=None)
    assert [(i.name, i.version) for i in first.items] == [("a", latest_a.version)] and first.next_token
    rest = life.list(world.vault, deleted=False, maxresults=None, token=first.next_token)
    assert [i.name for i in rest.items] == ["c"] and rest.next_token is None
    deleted = life.list(world.vault, deleted=True, maxresults=None, token=None)
    assert [(i.name, i.deleted is not None) for i in deleted.items] == [("b", True)]
    assert world.keys.list_keys(world.vault, maxresults=None, token=None).items == []  # kinds do not mix


# -- scheduling --------------------------------------------------------------------------------------
def test_schedule_is_asked_when_the_current_version_or_policy_changes(world: World) -> None:
    asked: list[tuple[str | None, str]] = []

    def schedule(obj: ObjectRecord, latest: VersionRecord) -> int | None:
        asked.append((obj.policy, latest.version))
        return latest.created + 30 if obj.policy else None

    life = Lifecycle(THING, world.store, world.clock, world.sealer, schedule=schedule)

    def due() -> int | None:
        with world.store.read() as tx:
            obj = tx.get_object(world.vault.vault_id, "thing", "t")
        assert obj is not None
        return obj.due_at

    life.add_version(world.vault, "t", b"m", Changes(), {})
    assert due() is None
    life.set_policy(world.vault, "t", '{"every": 30}')
    assert due() == world.clock.t + 30 and asked[-1][0] == '{"every": 30}'
    life.reschedule(world.vault.vault_id, "t", 7)
    assert due() == 7
    life.delete(world.vault, "t")
    assert due() is None  # a deleted object is not acted on
    life.recover(world.vault, "t")
    assert due() == world.clock.t + 30


def _record(name: str, version: str, vault_id: str = "v1") -> VersionRecord:
    return VersionRecord(vault_id, "thing", name, version, b"", True, None, None, 0, 0, {}, {})


def test_unsealed_cache_loads_once_and_keeps_the_recently_used_within_its_budget() -> None:
    loads: list[str] = []

    def load(v: VersionRecord) -> str:
        loads.append(v.version)
        return v.version * 2  # costs 2 characters

    cache: UnsealedCache[str] = UnsealedCache(4, len)
    assert cache.get(_record("A", "a"), load) == "aa"
    assert cache.get(_record("a", "a"), load) == "aa"  # names are case-insensitive: a hit
    assert cache.get(_record("B", "b"), load) == "bb"
    assert loads == ["a", "b"]
    cache.get(_record("A", "a"), load)  # now "a" is the most recently used
    cache.get(_record("C", "c"), load)  # 6 characters > 4: the least recently used ("b") goes
    assert loads == ["a", "b", "c"]
    cache.get(_record("A", "a"), load)
    cache.get(_record("B", "b"), load)
    assert loads == ["a", "b", "c", "b"]


def test_unsealed_cache_forgets_every_version_of_one_name_in_one_vault() -> None:
    loads: list[str] = []

    def load(v: VersionRecord) -> str:
        loads.append(f"{v.vault_id}/{v.name}/{v.version}")
        return "x"

    cache: UnsealedCache[str] = UnsealedCache(10, lambda _: 1)
    for v in (_record("n", "1"), _record("n", "2"), _record("other", "1"), _record("n", "1", "v2")):
        cache.get(v, load)
    cache.forget("v1", "N")
    for v in (_record("n", "1"), _record("n", "2"), _record("other", "1"), _record("n", "1", "v2")):
        cache.get(v, load)
    assert loads[4:] == ["v1/n/1", "v1/n/2"]


def test_shared_views_are_remembered_only_while_the_store_hands_out_the_same_records(
    world: World, things: Things
) -> None:
    life = things.life
    life.add_version(world.vault, "Mixed-Case", b"m", Changes(tags={"a": "1"}), {"p": 1})
    with world.store.read() as tx:
        vault = tx.get_vault(world.vault.name)
    assert vault is not None
    first = life.get(vault, "mixed-case")
    assert first.name == "Mixed-Case" and life.get(vault, "MIXED-CASE") is first  # same cached records: same view
    _, v = life.read(vault, "mixed-case")
    assert v.name == "Mixed-Case" and life.read(vault, "mixed-case")[1] is v  # one renamed read-only copy
    with pytest.raises(AttributeError, match="read-only"):
        v.enabled = False
    life.update(world.vault, "mixed-case", None, Changes(tags={"a": "2"}))  # a write: the store drops its cache
    second = life.get(vault, "mixed-case")
    assert second is not first and second.tags == {"a": "2"} and first.tags == {"a": "1"}
    plain = life.view(world.vault, *life.read(vault, "mixed-case"))
    assert plain == second and plain is not second  # view() itself always makes a new one
    reloaded = replace(vault)  # another vault record object (as after a reload): not the same view either
    assert life.shared_view(reloaded, *life.read(vault, "mixed-case")) is not second


def test_shared_views_of_plain_records_are_not_remembered(world: World, things: Things) -> None:
    life = things.life
    life.add_version(world.vault, "t", b"m", Changes(), {"p": 1})
    with world.store.write() as tx:  # a write's reads are plain, editable rows
        obj = life.live(tx, world.vault, "t")
        v = life.version(tx, obj, None)
    first = life.shared_view(world.vault, obj, v)
    assert life.shared_view(world.vault, obj, v) is not first  # nothing guarantees plain records stay as they are

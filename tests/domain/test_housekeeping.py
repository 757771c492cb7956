"""One scheduler tick: purge what retention released, act on what is due; each object on its own, failures
retried with exponential backoff, and one bad object never stops the others."""

from __future__ import annotations

import logging

import pytest

from kluis.domain.errors import BadParameter
from kluis.domain.housekeeping import RETRY_FIRST, RETRY_MAX, Housekeeping
from kluis.domain.lifecycle import Lifecycle, ObjectKind
from kluis.domain.views import Changes
from kluis.store import ObjectRecord, VaultRecord
from tests.domain.conftest import World

DAY = 86400
JOB = ObjectKind("job", "Job", frozenset(), "JobDisabled", "JobExpired", "JobNotYetValid")


class Jobs:
    """Objects of kind "job" that are due at creation; the action fails for names in ``failing``."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.life = Lifecycle(JOB, world.store, world.clock, world.sealer, schedule=lambda o, v: v.created)
        self.failing: dict[str, Exception] = {}
        self.acted: list[str] = []
        self.keeper = Housekeeping(world.store, world.clock, {"job": self.life}, {"job": self.act})

    def act(self, vault: VaultRecord, obj: ObjectRecord) -> None:
        if obj.name in self.failing:
            raise self.failing[obj.name]
        self.acted.append(obj.name)
        self.life.reschedule(obj.vault_id, obj.name, None)  # done: nothing more is due

    def add(self, name: str, vault: VaultRecord | None = None) -> None:
        self.life.add_version(vault or self.world.vault, name, b"m", Changes(), {})

    def due_at(self, name: str) -> int | None:
        with self.world.store.read() as tx:
            obj = tx.get_object(self.world.vault.vault_id, "job", name)
        assert obj is not None
        return obj.due_at

    def tick(self) -> tuple[int, int, int]:
        r = self.keeper.tick({v.vault_id: v for v in self.world.mgmt.list_vaults()})
        return r.purged, r.acted, r.failed


@pytest.fixture
def jobs(world: World) -> Jobs:
    return Jobs(world)


def test_a_failing_object_does_not_stop_another_due_object(jobs: Jobs, caplog: pytest.LogCaptureFixture) -> None:
    jobs.add("bad")
    jobs.add("good")
    jobs.failing["bad"] = RuntimeError("boom")
    now = jobs.world.clock.t
    with caplog.at_level(logging.ERROR, logger="kluis.scheduler"):
        assert jobs.tick() == (0, 1, 1)
    assert jobs.acted == ["good"]
    assert jobs.due_at("bad") == now + RETRY_FIRST
    assert any("bad" in r.getMessage() and "attempt 1" in r.getMessage() for r in caplog.records)
    assert jobs.tick() == (0, 0, 0)  # not due again before the backoff ends


def test_backoff_doubles_up_to_a_day_and_resets_after_success(jobs: Jobs) -> None:
    jobs.add("bad")
    jobs.failing["bad"] = RuntimeError("boom")
    clock = jobs.world.clock
    delays = []
    for _ in range(12):
        before = clock.t
        assert jobs.tick() == (0, 0, 1)
        due = jobs.due_at("bad")
        assert due is not None
        delays.append(due - before)
        clock.t = due
    assert delays[:4] == [RETRY_FIRST, 2 * RETRY_FIRST, 4 * RETRY_FIRST, 8 * RETRY_FIRST]
    assert max(delays) == RETRY_MAX and delays[-1] == RETRY_MAX
    del jobs.failing["bad"]
    assert jobs.tick() == (0, 1, 0)
    jobs.life.reschedule(jobs.world.vault.vault_id, "bad", clock.t)
    jobs.failing["bad"] = RuntimeError("again")
    jobs.tick()
    assert jobs.due_at("bad") == clock.t + RETRY_FIRST  # a success forgets the earlier failures


def test_an_object_that_cannot_be_acted_on_is_unscheduled(jobs: Jobs) -> None:
    jobs.add("oct")
    jobs.failing["oct"] = BadParameter("cannot rotate a symmetric key")
    assert jobs.tick() == (0, 0, 0)
    assert jobs.due_at("oct") is None


def test_objects_of_unknown_vaults_or_kinds_are_left_alone(world: World, jobs: Jobs) -> None:
    jobs.add("j")
    keeper = Housekeeping(world.store, world.clock, {"job": jobs.life}, {})  # no action for jobs
    assert keeper.tick({world.vault.vault_id: world.vault}).acted == 0
    assert jobs.keeper.tick({}).acted == 0  # the vault is not known (deleted meanwhile)
    assert jobs.due_at("j") is not None and jobs.acted == []


def test_a_failing_purge_does_not_stop_another(world: World, jobs: Jobs) -> None:
    class Stuck(Lifecycle):
        def purge_if_due(self, vault_id: str, name: str, now: int) -> bool:
            if name == "stuck":
                raise RuntimeError("disk full")
            return super().purge_if_due(vault_id, name, now)

    life = Stuck(JOB, world.store, world.clock, world.sealer)
    for name in ("stuck", "free"):
        life.add_version(world.vault, name, b"m", Changes(), {})
        life.delete(world.vault, name)
    keeper = Housekeeping(world.store, world.clock, {"job": life}, {})
    world.clock.t += world.vault.retention_days * DAY
    result = keeper.tick({world.vault.vault_id: world.vault})
    assert (result.purged, result.failed) == (1, 1)
    assert [i.name for i in life.list(world.vault, deleted=True, maxresults=None, token=None).items] == ["stuck"]

"""The scheduler's work, one tick at a time: purge what retention released, act on what is due.

Every object is handled on its own: a failure is logged with the object's identity, the object
is retried later with exponential backoff (stored as its ``due_at``, so every worker and node
agrees), and it never stops the other objects of the tick. Kinds register what "due" means for
them (keys: rotation).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kluis.domain.clock import Clock
from kluis.domain.errors import BadParameter
from kluis.domain.lifecycle import Lifecycle
from kluis.store import ObjectRecord, Store, VaultRecord

__all__ = ["Housekeeping", "TickResult"]

log = logging.getLogger("kluis.scheduler")

BATCH = 500  # objects per kind of work per tick
RETRY_FIRST = 60  # seconds before the first retry of a failed object
RETRY_MAX = 86400  # backoff never waits longer than a day

DueAction = Callable[[VaultRecord, ObjectRecord], None]


@dataclass
class TickResult:
    purged: int = 0
    acted: int = 0
    failed: int = 0


class Housekeeping:
    """``lifecycles`` by kind; ``actions`` by kind: what to do with a due object (e.g. rotate a key)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        lifecycles: Mapping[str, Lifecycle],
        actions: Mapping[str, DueAction],
    ) -> None:
        self._store = store
        self._clock = clock
        self._lifecycles = lifecycles
        self._actions = actions
        self._failures: dict[tuple[str, str, str], int] = {}

    def tick(self, vaults_by_id: Mapping[str, VaultRecord]) -> TickResult:
        now = self._clock.now()
        with self._store.read() as tx:
            purge, due = tx.objects_due(now=now, limit=BATCH)
        result = TickResult()
        for obj in purge:
            try:
                if self._lifecycles[obj.kind].purge_if_due(obj.vault_id, obj.name, now):
                    result.purged += 1
            except Exception:
                result.failed += 1
                log.exception("purge of %s %s in vault %s failed; retried next tick", obj.kind, obj.name, obj.vault_id)
        for obj in due:
            vault = vaults_by_id.get(obj.vault_id)
            action = self._actions.get(obj.kind)
            if vault is None or action is None:
                continue
            ident = (obj.vault_id, obj.kind, obj.name.lower())
            try:
                action(vault, obj)
                self._failures.pop(ident, None)
                result.acted += 1
            except BadParameter as e:  # the object cannot be acted on (e.g. an oct key): stop retrying
                log.warning("%s %s in vault %s: %s; no longer scheduled", obj.kind, obj.name, vault.name, e.message)
                self._lifecycles[obj.kind].reschedule(obj.vault_id, obj.name, None)
            except Exception:
                result.failed += 1
                attempts = self._failures.get(ident, 0) + 1
                self._failures[ident] = attempts
                delay = min(RETRY_FIRST * 2 ** min(attempts - 1, 20), RETRY_MAX)
                log.exception(
                    "scheduled action on %s %s in vault %s failed (attempt %d); retrying in %d s",
                    obj.kind,
                    obj.name,
                    vault.name,
                    attempts,
                    delay,
                )
                try:
                    self._lifecycles[obj.kind].reschedule(obj.vault_id, obj.name, now + delay)
                except Exception:
                    log.exception("could not reschedule %s %s", obj.kind, obj.name)
        return result

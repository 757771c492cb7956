"""The lifecycle every vault object shares (keys, secrets, later certificates), written once.

Names, versions, attributes with PATCH semantics, enabled / nbf / exp, soft delete, recover,
purge (with the vault's retention and purge protection), paging, and sealing of the material
(AES-256-GCM under the KEK, bound to vault, kind, name and version) live here. A kind plugs in
what is its own: a ``kind`` description (names and messages), the properties it stores beside the
material, and optionally when the scheduler must next act on an object (key rotation).

Permission checks are not made here: the HTTP layer's route table names the permission of every
operation and asks the one authorization point (``kluis.domain.authorization``) before any of
these methods runs.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kluis.crypto import Sealer
from kluis.domain.clock import Clock
from kluis.domain.errors import BadParameter, Conflict, Forbidden, NotFound
from kluis.domain.paging import decode_token, encode_token
from kluis.domain.views import Changes, DeletedInfo, ObjectView, Page, is_set
from kluis.store import ObjectRecord, Store, Transaction, VaultRecord, VersionRecord
from kluis.store.cached import clone, is_shared, share

__all__ = [
    "MAX_PAGE",
    "MAX_TAGS",
    "Lifecycle",
    "ObjectKind",
    "UnsealedCache",
    "check_tags",
    "page_size",
    "recovery_level",
    "validate_name",
]

# Object names: Azure's rule for keys, secrets and certificates (REST spec path pattern).
_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_PAGE = 25  # Azure's largest maxresults for list operations
MAX_TAGS = 15  # Azure: "A maximum of 15 tags can be specified"
MAX_TAG_LENGTH = 256  # Azure's limit on tag names and values, in characters
T = TypeVar("T")


def validate_name(name: str) -> str:
    """The name if it matches ``^[0-9a-zA-Z-]{1,127}$``; BadParameter otherwise."""
    if not _NAME.match(name or ""):
        raise BadParameter(f"The request URI contains an invalid name: {name}")
    return name


def check_tags(tags: Any, *, title: str = "An object", max_length: int = MAX_TAG_LENGTH) -> dict[str, str]:
    """Tags as Azure accepts them: at most 15, string values, names and values <= ``max_length``
    characters (the kind's limit: 256 for keys, 512 for secrets)."""
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise BadParameter("tags must be an object whose values are strings.")
    if len(tags) > MAX_TAGS:
        raise BadParameter(f"{title} can have at most {MAX_TAGS} tags.")
    for k, v in tags.items():
        if len(k) > max_length or len(v) > max_length:
            raise BadParameter(f"Tag names and values can be at most {max_length} characters.")
    return dict(tags)


def page_size(maxresults: int | None) -> int:
    """``maxresults`` checked against Azure's 1..25 (None: 25)."""
    if maxresults is None:
        return MAX_PAGE
    if not 1 <= maxresults <= MAX_PAGE:
        raise BadParameter(f"maxresults must be between 1 and {MAX_PAGE}.")
    return maxresults


def recovery_level(vault: VaultRecord) -> str:
    """Azure's ``recoveryLevel`` for a vault's retention (< 90 days: Customized) and purge protection."""
    custom = "CustomizedRecoverable" if vault.retention_days < 90 else "Recoverable"
    return custom if vault.purge_protection else custom + "+Purgeable"


@dataclass(frozen=True)
class ObjectKind:
    """What differs between kinds in the shared lifecycle: names, messages, time rules.

    ``kind`` is the store's kind ("key"), ``title`` the word Azure's messages use ("Key"),
    ``time_exempt`` the operations a version still serves outside its nbf/exp window, and
    ``disabled_code`` the inner error code of an operation refused on a disabled version.
    """

    kind: str
    title: str
    time_exempt: frozenset[str]
    disabled_code: str
    expired_code: str
    not_yet_valid_code: str

    def not_found(self, name: str, version: str | None = None) -> NotFound:
        """Key Vault's 404 for an object (or one version of it) that does not exist or is deleted."""
        ident = f"{name}/{version}" if version else name
        lower = self.title.lower()
        return NotFound(
            f"A {lower} with (name/id) {ident} was not found in this key vault. If you recently deleted this "
            f"{lower} you may be able to recover it using the correct recovery command. For help resolving "
            "this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
            code=f"{self.title}NotFound",
        )

    def deleted_not_found(self, name: str) -> NotFound:
        return NotFound(f"Deleted {self.title} not found: {name}", code=f"{self.title}NotFound")

    def deleted_conflict(self, name: str) -> Conflict:
        return Conflict(
            f"{self.title} {name} is currently in a deleted but recoverable state, and its name cannot be "
            f"reused; in this state, the {self.title.lower()} can only be recovered or purged.",
            inner_code="ObjectIsDeletedButRecoverable",
        )


Scheduler = Callable[[ObjectRecord, VersionRecord], int | None]


class UnsealedCache(Generic[T]):
    """A bounded per-process LRU of what versions unseal to (a key's material, a secret's value),
    keyed by (vault id, lower-case name, version); safe to share between threads.

    A version's sealed material never changes, so caching it is safe; callers still read the
    version's attributes from the store on every use, so a disabled, expired or deleted object is
    refused even while its material sits here. Each entry costs ``cost(item)`` of ``budget``
    (``lambda _: 1``: a number of entries; ``len``: characters); the least recently used go first.
    """

    def __init__(self, budget: int, cost: Callable[[T], int]) -> None:
        self._budget = budget
        self._cost = cost
        self._items: OrderedDict[tuple[str, str, str], T] = OrderedDict()
        self._spent = 0
        self._lock = threading.Lock()

    def get(self, v: VersionRecord, load: Callable[[VersionRecord], T]) -> T:
        """The cached item of version ``v``, or ``load(v)`` (called outside the lock), kept for next time."""
        ident = (v.vault_id, v.name.lower(), v.version)
        with self._lock:
            hit = self._items.get(ident)
            if hit is not None:
                self._items.move_to_end(ident)
                return hit
        item = load(v)
        with self._lock:
            if ident not in self._items:
                self._items[ident] = item
                self._spent += self._cost(item)
            while self._spent > self._budget and self._items:
                _, old = self._items.popitem(last=False)
                self._spent -= self._cost(old)
        return item

    def forget(self, vault_id: str, name: str) -> None:
        """Drop every cached version of one object (a ``Lifecycle``'s ``on_forget``: its versions changed)."""
        with self._lock:
            for k in [k for k in self._items if k[0] == vault_id and k[1] == name.lower()]:
                self._spent -= self._cost(self._items.pop(k))


_MEMO_SIZE = 4096  # entries of each identity memo below (bounded: it is cleared when full)


class _RenamedVersions:
    """Read-only copies of shared version records under their object's stored name, by the stored
    record's identity (an entry holds the record, so its id cannot be reused while it is here)."""

    def __init__(self) -> None:
        self._items: dict[int, tuple[VersionRecord, str, VersionRecord]] = {}

    def get(self, v: VersionRecord, name: str) -> VersionRecord:
        hit = self._items.get(id(v))
        if hit is not None and hit[0] is v and hit[1] == name:
            return hit[2]
        copy = clone(v)
        copy.name = name
        renamed: VersionRecord = share(copy)
        if len(self._items) >= _MEMO_SIZE:
            self._items.clear()
        self._items[id(v)] = (v, name, renamed)
        return renamed


class _SharedViews:
    """Views of shared records (what cached reads hand out), by the records' identity.

    A shared record is read-only, and the store hands out the same object only while its row is
    unchanged (SQLite: the per-request ``PRAGMA data_version`` check drops the cache on any commit;
    PostgreSQL: notifications and the age bound), so a view made from the same (vault, object,
    version) objects is exactly the view made now. Views are never edited by their callers.
    """

    def __init__(self) -> None:
        self._items: dict[int, tuple[VaultRecord, ObjectRecord, VersionRecord, ObjectView]] = {}

    def get(
        self,
        vault: VaultRecord,
        obj: ObjectRecord,
        v: VersionRecord,
        make: Callable[[VaultRecord, ObjectRecord, VersionRecord], ObjectView],
    ) -> ObjectView:
        hit = self._items.get(id(v))
        if hit is not None and hit[0] is vault and hit[1] is obj and hit[2] is v:
            return hit[3]
        view = make(vault, obj, v)
        if is_shared(vault) and is_shared(obj) and is_shared(v):  # plain records may change: not kept
            if len(self._items) >= _MEMO_SIZE:
                self._items.clear()
            self._items[id(v)] = (vault, obj, v, view)
        return view


class Lifecycle:
    """The shared lifecycle of one kind of object in every vault.

    ``schedule(obj, latest)`` answers when the scheduler must next act on an object (Unix
    seconds) or None; it is asked whenever the current version or the object's policy changes.
    ``on_forget(vault_id, name)`` is told when a name's versions change state or go away, so
    caches of unsealed material can drop them.
    """

    def __init__(
        self,
        kind: ObjectKind,
        store: Store,
        clock: Clock,
        sealer: Sealer,
        *,
        schedule: Scheduler | None = None,
        on_forget: Callable[[str, str], None] | None = None,
    ) -> None:
        self.kind = kind
        self._store = store
        self._clock = clock
        self._sealer = sealer
        self._schedule = schedule
        self._on_forget = on_forget
        self._renamed = _RenamedVersions()
        self._views = _SharedViews()

    # -- sealing ------------------------------------------------------------------------------
    def _context(self, vault_id: str, name: str, version: str) -> bytes:
        return f"kluis/{self.kind.kind}/{vault_id}/{name.lower()}/{version}".encode()

    def seal(self, vault_id: str, name: str, version: str, plaintext: bytes) -> bytes:
        """Material sealed for one version's row (bound to vault, kind, name and version)."""
        return self._sealer.seal(plaintext, context=self._context(vault_id, name, version))

    def unseal(self, v: VersionRecord) -> bytes:
        return self._sealer.unseal(v.sealed, context=self._context(v.vault_id, v.name, v.version))

    # -- reading ------------------------------------------------------------------------------
    def live(self, tx: Transaction, vault: VaultRecord, name: str) -> ObjectRecord:
        """The object if it exists and is not deleted; ``<Kind>NotFound`` otherwise."""
        obj = tx.get_object(vault.vault_id, self.kind.kind, name)
        if obj is None or obj.deleted_at is not None:
            raise self.kind.not_found(name)
        return obj

    def version(self, tx: Transaction, obj: ObjectRecord, version: str | None) -> VersionRecord:
        """The given version of ``obj`` (None or "": the current one), named with the object's stored
        casing (versions are stored under the case-folded name). A cached read's records are shared
        and read-only: one whose name differs is answered as a renamed read-only copy, the same copy
        while the store hands out the same record (so views of it can be remembered, ``shared_view``)."""
        v = tx.get_version(obj.vault_id, self.kind.kind, obj.name, version or obj.latest_version)
        if v is None:
            raise self.kind.not_found(obj.name, version)
        if v.name == obj.name:
            return v
        if not is_shared(v):  # the caller's own row (read in a write, or a store that copies)
            v.name = obj.name
            return v
        return self._renamed.get(v, obj.name)

    def read(self, vault: VaultRecord, name: str, version: str | None = None) -> tuple[ObjectRecord, VersionRecord]:
        with self._store.read() as tx:
            obj = self.live(tx, vault, name)
            return obj, self.version(tx, obj, version)

    def view(self, vault: VaultRecord, obj: ObjectRecord, v: VersionRecord) -> ObjectView:
        deleted = None
        if obj.deleted_at is not None and obj.scheduled_purge_at is not None:
            deleted = DeletedInfo(obj.deleted_at, obj.scheduled_purge_at)
        return ObjectView(
            kind=obj.kind,
            name=obj.name,
            version=v.version,
            enabled=v.enabled,
            nbf=v.nbf,
            exp=v.exp,
            created=v.created,
            updated=v.updated,
            recovery_level=recovery_level(vault),
            recoverable_days=vault.retention_days,
            tags=v.tags,
            props=v.props,
            deleted=deleted,
        )

    def shared_view(self, vault: VaultRecord, obj: ObjectRecord, v: VersionRecord) -> ObjectView:
        """``view(vault, obj, v)``, the same object again while the store hands out the same records
        (reads' hot path: the API can then remember what it encoded of it). Callers never edit it."""
        return self._views.get(vault, obj, v, self.view)

    def get(self, vault: VaultRecord, name: str, version: str | None = None) -> ObjectView:
        """The live object's latest or given version; NotFound otherwise. No state check (a disabled
        key's public part is still readable; kinds whose read *is* a use call ``usable``)."""
        obj, v = self.read(vault, name, version)
        return self.shared_view(vault, obj, v)

    def check_usable(self, v: VersionRecord, operation: str, now: int | None = None) -> None:
        """May ``v`` serve ``operation`` at ``now`` (Unix seconds; None: the lifecycle's clock, read only
        when ``v`` has an nbf or exp to compare it with)? Forbidden if disabled, or outside its nbf/exp
        window unless the kind exempts the operation (Azure: "Date-time controlled operations")."""
        kind = self.kind
        if not v.enabled:
            raise Forbidden(
                f"Operation {operation} is not allowed on a disabled {kind.title.lower()}.",
                inner_code=kind.disabled_code,
            )
        if operation in kind.time_exempt or (v.nbf is None and v.exp is None):
            return
        if now is None:
            now = self._clock.now()
        if v.nbf is not None and now < v.nbf:
            raise Forbidden(
                f"Operation {operation} is not allowed on a {kind.title.lower()} that is not yet valid.",
                inner_code=kind.not_yet_valid_code,
            )
        if v.exp is not None and now >= v.exp:
            raise Forbidden(
                f"Operation {operation} is not allowed on an expired {kind.title.lower()}.",
                inner_code=kind.expired_code,
            )

    def usable(
        self, vault: VaultRecord, name: str, version: str | None, operation: str
    ) -> tuple[ObjectRecord, VersionRecord]:
        """The version, read and checked for ``operation`` now (see ``check_usable``)."""
        obj, v = self.read(vault, name, version)
        self.check_usable(v, operation)
        return obj, v

    def list(self, vault: VaultRecord, *, deleted: bool, maxresults: int | None, token: str | None) -> Page[ObjectView]:
        """One item per name (its current version), ordered by name, ``maxresults`` per page."""
        limit = page_size(maxresults)
        with self._store.read() as tx:
            rows = tx.list_objects(
                vault.vault_id, self.kind.kind, deleted=deleted, after=decode_token(token), limit=limit + 1
            )
            page: Page[ObjectView] = Page()
            for obj in rows[:limit]:
                v = tx.get_version(vault.vault_id, self.kind.kind, obj.name, obj.latest_version)
                if v is not None:
                    page.items.append(self.view(vault, obj, v))
        if len(rows) > limit:
            page.next_token = encode_token(rows[limit - 1].name.lower())
        return page

    def list_versions(
        self, vault: VaultRecord, name: str, *, maxresults: int | None, token: str | None
    ) -> Page[ObjectView]:
        """Every version of a live name, oldest first. A name that does not exist (or is deleted) has
        no versions: an empty page, as Azure answers (its live tests list versions of a name that was
        never created and expect no error)."""
        limit = page_size(maxresults)
        marker = decode_token(token)
        if marker is not None and not marker.isdigit():
            raise BadParameter("The $skiptoken is invalid; use the nextLink returned by the previous page.")
        after = int(marker) if marker is not None else None
        with self._store.read() as tx:
            obj = tx.get_object(vault.vault_id, self.kind.kind, name)
            if obj is None or obj.deleted_at is not None:
                return Page()
            rows = tx.list_versions(vault.vault_id, self.kind.kind, name, after_seq=after, limit=limit + 1)
        page = Page(items=[self.view(vault, obj, r) for r in rows[:limit]])
        if len(rows) > limit:
            page.next_token = encode_token(str(rows[limit - 1].seq))
        return page

    # -- writing ------------------------------------------------------------------------------
    def ensure_not_deleted(self, vault: VaultRecord, name: str) -> None:
        """Conflict (``ObjectIsDeletedButRecoverable``) if the name is deleted and not yet purged."""
        with self._store.read() as tx:
            obj = tx.get_object(vault.vault_id, self.kind.kind, name)
        if obj is not None and obj.deleted_at is not None:
            raise self.kind.deleted_conflict(name)

    def add_version(
        self,
        vault: VaultRecord,
        name: str,
        material: bytes,
        changes: Changes,
        props: dict[str, Any],
        *,
        check: Callable[[ObjectRecord | None], None] | None = None,
    ) -> ObjectView:
        """A new current version of ``name`` (created if new) holding ``material`` (sealed here).

        ``check(previous)`` runs inside the write transaction, for rules that depend on whether
        the name already exists. Conflict if the name is deleted but recoverable.
        """
        validate_name(name)
        version = uuid.uuid4().hex
        sealed = self.seal(vault.vault_id, name, version, material)
        with self._store.write() as tx:
            previous = tx.get_object(vault.vault_id, self.kind.kind, name)
            if previous is not None and previous.deleted_at is not None:
                raise self.kind.deleted_conflict(name)
            if check is not None:
                check(previous)
            now = self._clock.now()
            rec = VersionRecord(
                vault_id=vault.vault_id,
                kind=self.kind.kind,
                name=name,
                version=version,
                sealed=sealed,
                enabled=changes.enabled if isinstance(changes.enabled, bool) else True,
                nbf=changes.nbf if isinstance(changes.nbf, int) else None,
                exp=changes.exp if isinstance(changes.exp, int) else None,
                created=now,
                updated=now,
                tags=changes.tags if isinstance(changes.tags, dict) else {},
                props=props,
            )
            tx.add_version(rec)
            obj = ObjectRecord(
                vault_id=vault.vault_id,
                kind=self.kind.kind,
                name=previous.name if previous else name,
                latest_version=version,
                created=previous.created if previous else now,
                updated=now,
                policy=previous.policy if previous else None,
            )
            obj.due_at = self.due(obj, rec)
            tx.put_object(obj)
        return self.view(vault, obj, rec)

    def due(self, obj: ObjectRecord, latest: VersionRecord) -> int | None:
        return self._schedule(obj, latest) if self._schedule is not None else None

    def update(
        self,
        vault: VaultRecord,
        name: str,
        version: str | None,
        changes: Changes,
        apply: Callable[[VersionRecord], dict[str, Any]] | None = None,
    ) -> ObjectView:
        """PATCH one version's attributes: absent (UNSET) fields stay as they are; material never
        changes. ``apply(version)`` returns the kind's new properties (it may raise to refuse)."""
        with self._store.write() as tx:
            obj = self.live(tx, vault, name)
            v = self.version(tx, obj, version)
            if isinstance(changes.enabled, bool):
                v.enabled = changes.enabled
            if is_set(changes.nbf):
                v.nbf = changes.nbf if isinstance(changes.nbf, int) else None
            if is_set(changes.exp):
                v.exp = changes.exp if isinstance(changes.exp, int) else None
            if isinstance(changes.tags, dict):
                v.tags = changes.tags
            if apply is not None:
                v.props = apply(v)
            v.updated = self._clock.now()
            tx.update_version(v)
            if v.version == obj.latest_version:
                due = self.due(obj, v)
                if due != obj.due_at:
                    obj.due_at = due
                    tx.put_object(obj)
        self._forget(vault.vault_id, name)
        return self.view(vault, obj, v)

    def set_policy(self, vault: VaultRecord, name: str, policy: str) -> tuple[ObjectRecord, VersionRecord]:
        """Store the kind's policy document (JSON text) on a live object and reschedule it."""
        with self._store.write() as tx:
            obj = self.live(tx, vault, name)
            latest = self.version(tx, obj, None)
            obj.policy = policy
            obj.due_at = self.due(obj, latest)
            tx.put_object(obj)
        return obj, latest

    def reschedule(self, vault_id: str, name: str, due_at: int | None) -> None:
        """Move (or clear) when the scheduler next acts on an object (used for retry backoff)."""
        with self._store.write() as tx:
            obj = tx.get_object(vault_id, self.kind.kind, name)
            if obj is not None:
                obj.due_at = due_at
                tx.put_object(obj)

    def delete(self, vault: VaultRecord, name: str) -> ObjectView:
        """Soft delete: every version moves to the deleted collection until the vault's retention ends."""
        with self._store.write() as tx:
            obj = self.live(tx, vault, name)
            now = self._clock.now()
            obj.deleted_at = now
            obj.scheduled_purge_at = now + vault.retention_days * 86400
            obj.due_at = None
            obj.updated = now
            tx.put_object(obj)
            view = self.view(vault, obj, self.version(tx, obj, None))
        self._forget(vault.vault_id, name)
        return view

    def _deleted(self, tx: Transaction, vault: VaultRecord, name: str) -> ObjectRecord:
        obj = tx.get_object(vault.vault_id, self.kind.kind, name)
        if obj is None or obj.deleted_at is None:
            raise self.kind.deleted_not_found(name)
        return obj

    def get_deleted(self, vault: VaultRecord, name: str) -> ObjectView:
        with self._store.read() as tx:
            obj = self._deleted(tx, vault, name)
            return self.view(vault, obj, self.version(tx, obj, None))

    def recover(self, vault: VaultRecord, name: str) -> ObjectView:
        """Back to the live collection with all versions (and its schedule)."""
        with self._store.write() as tx:
            obj = self._deleted(tx, vault, name)
            obj.deleted_at = None
            obj.scheduled_purge_at = None
            obj.updated = self._clock.now()
            latest = self.version(tx, obj, None)
            obj.due_at = self.due(obj, latest)
            tx.put_object(obj)
            return self.view(vault, obj, latest)

    def purge(self, vault: VaultRecord, name: str) -> None:
        """Gone for good; Forbidden while the vault has purge protection."""
        with self._store.write() as tx:
            self._deleted(tx, vault, name)
            if vault.purge_protection:
                raise Forbidden(
                    'Operation "purge" is not allowed because purge protection is enabled for this vault. '
                    "Key Vault service will automatically purge it after the retention period has passed. "
                    f"Vault: {vault.name};location={vault.location}"
                )
            tx.delete_object(vault.vault_id, self.kind.kind, name)
        self._forget(vault.vault_id, name)

    def purge_if_due(self, vault_id: str, name: str, now: int) -> bool:
        """The scheduler's purge: only if the retention really ended (re-read in the transaction)."""
        with self._store.write() as tx:
            fresh = tx.get_object(vault_id, self.kind.kind, name)
            if fresh is None or fresh.scheduled_purge_at is None or fresh.scheduled_purge_at > now:
                return False
            tx.delete_object(vault_id, self.kind.kind, name)
        self._forget(vault_id, name)
        return True

    def _forget(self, vault_id: str, name: str) -> None:
        if self._on_forget is not None:
            self._on_forget(vault_id, name)

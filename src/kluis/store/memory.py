"""In-memory store: the same protocols over plain dicts, for unit tests only (never offered to users).

Writes are serialized by one re-entrant lock (a nested ``write()`` on the same thread joins the
outer one) and are all-or-nothing: the tables are copied when a write starts and put back if it
raises. Records are copied in and out, so callers never share state with the store.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TypeVar

from kluis.store import records

__all__ = ["MemoryStore", "MemoryTransaction"]

R = TypeVar("R")


def _copy(record: R | None) -> R | None:
    return None if record is None else replace(record)  # type: ignore[type-var]


@dataclass
class _Tables:
    settings: dict[str, bytes] = field(default_factory=dict)
    wrapped_keys: dict[int, records.WrappedKeyRecord] = field(default_factory=dict)
    principals: dict[str, records.PrincipalRecord] = field(default_factory=dict)
    groups: dict[str, records.GroupRecord] = field(default_factory=dict)
    vaults: dict[str, records.VaultRecord] = field(default_factory=dict)  # by vault_id
    policies: dict[tuple[str, str], records.PolicyRecord] = field(default_factory=dict)
    objects: dict[tuple[str, str, str], records.ObjectRecord] = field(default_factory=dict)
    versions: dict[tuple[str, str, str, str], records.VersionRecord] = field(default_factory=dict)
    audit: dict[int, records.AuditBatch] = field(default_factory=dict)  # by id, ascending

    def snapshot(self) -> _Tables:
        return _Tables(**{name: dict(getattr(self, name)) for name in self.__dataclass_fields__})


class MemoryTransaction:
    """Every query of the ``Transaction`` protocol over one ``_Tables``."""

    def __init__(self, tables: _Tables, seq: Iterator[int]) -> None:
        self._t = tables
        self._seq = seq

    # settings
    def get_setting(self, name: str) -> bytes | None:
        return self._t.settings.get(name)

    def put_setting(self, name: str, value: bytes) -> None:
        self._t.settings[name] = bytes(value)

    # wrapped data keys
    def list_wrapped_keys(self) -> list[records.WrappedKeyRecord]:
        return [replace(k) for _, k in sorted(self._t.wrapped_keys.items())]

    def add_wrapped_key(self, k: records.WrappedKeyRecord) -> None:
        if k.key_id in self._t.wrapped_keys:
            raise ValueError(f"data key {k.key_id} exists")
        self._t.wrapped_keys[k.key_id] = replace(k)

    def rewrap_key(self, key_id: int, wrapped: bytes, kek_fingerprint: str) -> None:
        old = self._t.wrapped_keys[key_id]
        self._t.wrapped_keys[key_id] = replace(old, wrapped=bytes(wrapped), kek_fingerprint=kek_fingerprint)

    # principals
    def add_principal(self, p: records.PrincipalRecord) -> None:
        if p.object_id in self._t.principals or any(x.app_id == p.app_id for x in self._t.principals.values()):
            raise ValueError(f"principal {p.object_id} / {p.app_id} exists")
        self._t.principals[p.object_id] = replace(p)

    def get_principal_by_app_id(self, app_id: str) -> records.PrincipalRecord | None:
        return _copy(next((p for p in self._t.principals.values() if p.app_id == app_id), None))

    def get_principal(self, object_id: str) -> records.PrincipalRecord | None:
        return _copy(self._t.principals.get(object_id))

    def list_principals(self) -> list[records.PrincipalRecord]:
        return [replace(p) for p in sorted(self._t.principals.values(), key=lambda p: (p.created, p.display_name))]

    def delete_principal(self, object_id: str) -> None:
        self._t.principals.pop(object_id, None)
        for key in [k for k in self._t.policies if k[1] == object_id]:
            del self._t.policies[key]

    def set_principal_secret(self, object_id: str, secret_hash: str) -> None:
        p = self._t.principals.get(object_id)
        if p is not None:
            self._t.principals[object_id] = replace(p, secret_hash=secret_hash)

    # groups and vaults
    def add_group(self, g: records.GroupRecord) -> None:
        if g.name.lower() in self._t.groups:
            raise ValueError(f"group {g.name} exists")
        self._t.groups[g.name.lower()] = replace(g)

    def get_group(self, name: str) -> records.GroupRecord | None:
        return _copy(self._t.groups.get(name.lower()))

    def list_groups(self) -> list[records.GroupRecord]:
        return [replace(self._t.groups[k]) for k in sorted(self._t.groups)]

    def delete_group(self, name: str) -> None:
        self._t.groups.pop(name.lower(), None)

    def add_vault(self, v: records.VaultRecord) -> None:
        if v.vault_id in self._t.vaults or self.get_vault(v.name) is not None:
            raise ValueError(f"vault {v.name} exists")
        self._t.vaults[v.vault_id] = replace(v)

    def _vault_view(self, v: records.VaultRecord) -> records.VaultRecord:
        group = self._t.groups.get(v.group_name.lower())  # the group's own casing, as the SQL join gives
        return replace(v, group_name=group.name if group is not None else v.group_name)

    def get_vault(self, name: str) -> records.VaultRecord | None:
        for v in self._t.vaults.values():
            if v.name.lower() == name.lower() and v.group_name.lower() in self._t.groups:
                return self._vault_view(v)
        return None

    def list_vaults(self, group_name: str | None = None) -> list[records.VaultRecord]:
        found = [
            self._vault_view(v)
            for v in self._t.vaults.values()
            if (group_name is None or v.group_name.lower() == group_name.lower())
            and v.group_name.lower() in self._t.groups
        ]
        return sorted(found, key=lambda v: v.name.lower())

    def delete_vault(self, vault_id: str) -> None:
        self._t.vaults.pop(vault_id, None)
        self._t.policies = {k: p for k, p in self._t.policies.items() if k[0] != vault_id}
        self._t.objects = {k: o for k, o in self._t.objects.items() if k[0] != vault_id}
        self._t.versions = {k: v for k, v in self._t.versions.items() if k[0] != vault_id}

    # access policies
    def put_policy(self, p: records.PolicyRecord) -> None:
        self._t.policies[(p.vault_id, p.object_id)] = replace(
            p, keys=list(p.keys), secrets=list(p.secrets), certificates=list(p.certificates)
        )

    def get_policy(self, vault_id: str, object_id: str) -> records.PolicyRecord | None:
        p = self._t.policies.get((vault_id, object_id))
        if p is None:
            return None
        return replace(p, keys=list(p.keys), secrets=list(p.secrets), certificates=list(p.certificates))

    def list_policies(self, vault_id: str) -> list[records.PolicyRecord]:
        keys = sorted(k for k in self._t.policies if k[0] == vault_id)
        return [p for p in (self.get_policy(*k) for k in keys) if p is not None]

    def delete_policy(self, vault_id: str, object_id: str) -> None:
        self._t.policies.pop((vault_id, object_id), None)

    # vault objects
    def get_object(self, vault_id: str, kind: str, name: str) -> records.ObjectRecord | None:
        return _copy(self._t.objects.get((vault_id, kind, name.lower())))

    def put_object(self, o: records.ObjectRecord) -> None:
        key = (o.vault_id, o.kind, o.name.lower())
        old = self._t.objects.get(key)
        self._t.objects[key] = replace(o, created=old.created) if old is not None else replace(o)

    def delete_object(self, vault_id: str, kind: str, name: str) -> None:
        name_ci = name.lower()
        self._t.objects.pop((vault_id, kind, name_ci), None)
        for key in [k for k in self._t.versions if k[:3] == (vault_id, kind, name_ci)]:
            del self._t.versions[key]

    def list_objects(
        self, vault_id: str, kind: str, *, deleted: bool, after: str | None, limit: int
    ) -> list[records.ObjectRecord]:
        marker = (after or "").lower()
        found = sorted(
            (k[2], o)
            for k, o in self._t.objects.items()
            if k[0] == vault_id and k[1] == kind and (o.deleted_at is not None) == deleted and k[2] > marker
        )
        return [replace(o) for _, o in found[:limit]]

    def objects_due(self, *, now: int, limit: int) -> tuple[list[records.ObjectRecord], list[records.ObjectRecord]]:
        objs = list(self._t.objects.values())
        purge = sorted(
            (o for o in objs if o.scheduled_purge_at is not None and o.scheduled_purge_at <= now),
            key=lambda o: o.scheduled_purge_at or 0,
        )
        due = sorted(
            (o for o in objs if o.due_at is not None and o.due_at <= now and o.deleted_at is None),
            key=lambda o: o.due_at or 0,
        )
        return [replace(o) for o in purge[:limit]], [replace(o) for o in due[:limit]]

    def add_version(self, v: records.VersionRecord) -> None:
        key = (v.vault_id, v.kind, v.name.lower(), v.version)
        if key in self._t.versions:
            raise ValueError(f"version {v.version} exists")
        v.seq = next(self._seq)
        self._t.versions[key] = replace(v, name=v.name.lower())

    def get_version(self, vault_id: str, kind: str, name: str, version: str) -> records.VersionRecord | None:
        return _copy(self._t.versions.get((vault_id, kind, name.lower(), version.lower())))

    def update_version(self, v: records.VersionRecord) -> None:
        key = (v.vault_id, v.kind, v.name.lower(), v.version)
        old = self._t.versions.get(key)
        if old is not None:
            self._t.versions[key] = replace(
                old, enabled=v.enabled, nbf=v.nbf, exp=v.exp, updated=v.updated, tags=v.tags, props=v.props
            )

    def list_versions(
        self, vault_id: str, kind: str, name: str, *, after_seq: int | None, limit: int
    ) -> list[records.VersionRecord]:
        prefix = (vault_id, kind, name.lower())
        found = sorted(
            (v for k, v in self._t.versions.items() if k[:3] == prefix and v.seq > (after_seq or 0)),
            key=lambda v: v.seq,
        )
        return [replace(v) for v in found[:limit]]

    def count_versions(self, vault_id: str, kind: str, name: str) -> int:
        prefix = (vault_id, kind, name.lower())
        return sum(1 for k in self._t.versions if k[:3] == prefix)

    # audit log
    def add_audit_batches(self, batches: Sequence[records.AuditBatch]) -> None:
        for b in batches:
            bid = next(self._seq)
            self._t.audit[bid] = replace(b, id=bid)

    def list_audit_batches(
        self, *, after_id: int, since_ms: int | None, until_ms: int | None, limit: int
    ) -> list[records.AuditBatch]:
        found = [
            replace(b)
            for i, b in sorted(self._t.audit.items())
            if i > after_id
            and (since_ms is None or b.max_time_ms >= since_ms)
            and (until_ms is None or b.min_time_ms < until_ms)
        ]
        return found[:limit]

    def audit_time_from_newest(self, offset: int) -> int | None:
        upto = 0
        for i in sorted(self._t.audit, reverse=True):
            upto += self._t.audit[i].count
            if upto > offset:
                return self._t.audit[i].min_time_ms
        return None

    def delete_audit_batches(self, *, before_ms: int) -> int:
        gone = [i for i, b in self._t.audit.items() if b.max_time_ms < before_ms]
        removed = sum(self._t.audit[i].count for i in gone)
        for i in gone:
            del self._t.audit[i]
        return removed


class MemoryStore:
    """Process-local tables; reads see committed state, a write sees its own changes."""

    def __init__(self) -> None:
        self._tables = _Tables()
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._local = threading.local()
        self.migrated_from = self.schema_version = 0

    @contextmanager
    def read(self) -> Iterator[MemoryTransaction]:
        with self._lock:  # a read never sees half a write
            yield MemoryTransaction(self._tables, self._seq)

    @contextmanager
    def write(self) -> Iterator[MemoryTransaction]:
        with self._lock:
            if getattr(self._local, "depth", 0):
                yield MemoryTransaction(self._tables, self._seq)
                return
            before = self._tables.snapshot()
            self._local.depth = 1
            try:
                yield MemoryTransaction(self._tables, self._seq)
            except BaseException:
                self._tables = before
                raise
            finally:
                self._local.depth = 0

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Always True: one process is the whole cluster."""
        yield True

    def close(self) -> None:
        return None

    def cached_setting(self, name: str) -> bytes | None:
        """The committed setting (there is no cache to consult)."""
        with self.read() as tx:
            return tx.get_setting(name)

    def begin_request(self) -> None:
        """Every read sees the committed state: nothing to share within a request."""
        return None

    def end_request(self, token: object) -> None:
        return None

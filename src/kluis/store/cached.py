"""The point lookups both stores answer from a per-process read cache, written once.

``CachedLookups`` goes before a store's transaction class (``class CachedReadTransaction(CachedLookups,
SqliteTransaction)``); the store supplies ``_memo(key, load)``: its own freshness rule (SQLite: exact,
by ``PRAGMA data_version``; PostgreSQL: notifications plus an age bound). Keys name what they cache, so
a store can drop exactly what a write changed. Records are handed out as copies (``clone``), so a
caller that edits one cannot corrupt the cache. ``ReadContext`` is what both stores' ``read()`` hands out.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

from kluis.store.records import ObjectRecord, PolicyRecord, VaultRecord, VersionRecord

__all__ = ["MISSING", "CachedLookups", "ReadContext", "clone"]

MISSING = object()  # "not cached" (None is a cacheable answer: the row does not exist)
T_co = TypeVar("T_co", covariant=True)


def clone(value: Any) -> Any:
    """A shallow copy of a record (~10x cheaper than ``copy.copy``); immutable values as they are."""
    if value is None or isinstance(value, bytes | str):
        return value
    copy = object.__new__(type(value))
    copy.__dict__.update(value.__dict__)
    return copy


class ReadContext(Generic[T_co]):
    """``with store.read() as tx``: hands out ``tx`` and has nothing to release, so a plain object
    beats a ``@contextmanager`` generator on the hot read path."""

    __slots__ = ("_tx",)

    def __init__(self, tx: T_co) -> None:
        self._tx = tx

    def __enter__(self) -> T_co:
        return self._tx

    def __exit__(self, *exc: object) -> None:
        return None


class CachedLookups:
    """Settings, vaults, policies, objects and versions through ``_memo``; every other query as the
    transaction class after this one in the MRO answers it."""

    def _memo(self, key: tuple[Any, ...], load: Any) -> Any:
        raise NotImplementedError

    def _next(self) -> Any:
        return cast(Any, super())

    def get_setting(self, name: str) -> bytes | None:
        result: bytes | None = self._memo(("setting", name), lambda: self._next().get_setting(name))
        return result

    def get_vault(self, name: str) -> VaultRecord | None:
        result: VaultRecord | None = self._memo(("vault", name.lower()), lambda: self._next().get_vault(name))
        return result

    def get_policy(self, vault_id: str, object_id: str) -> PolicyRecord | None:
        result: PolicyRecord | None = self._memo(
            ("policy", vault_id, object_id), lambda: self._next().get_policy(vault_id, object_id)
        )
        return result

    def get_object(self, vault_id: str, kind: str, name: str) -> ObjectRecord | None:
        result: ObjectRecord | None = self._memo(
            ("object", vault_id, kind, name.lower()), lambda: self._next().get_object(vault_id, kind, name)
        )
        return result

    def get_version(self, vault_id: str, kind: str, name: str, version: str) -> VersionRecord | None:
        result: VersionRecord | None = self._memo(
            ("version", vault_id, kind, name.lower(), version.lower()),
            lambda: self._next().get_version(vault_id, kind, name, version),
        )
        return result

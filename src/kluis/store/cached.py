"""The point lookups both stores answer from a per-process read cache, written once.

``CachedLookups`` goes before a store's transaction class (``class CachedReadTransaction(CachedLookups,
SqliteTransaction)``); the store supplies ``_memo(key, load)``: its own freshness rule (SQLite: exact,
by ``PRAGMA data_version``; PostgreSQL: notifications plus an age bound). Keys name what they cache, so
a store can drop exactly what a write changed. ``ReadContext`` is what both stores' ``read()`` hands out.

Records are cached and handed out *shared* (no copy per read: a get-key request makes four lookups,
and copying each was ~5% of its CPU): ``share`` turns a loaded record into its read-only twin (same
class but for ``__setattr__``/``__delattr__``, which raise ``AttributeError``; equal to the plain
record with the same fields) before it enters the cache, so a caller that tries to edit one fails at
once instead of corrupting the cache. Code that changes a record does so on rows it read inside
``store.write()`` (those lookups are not cached: plain records) or on an explicit ``clone``.
Tags and properties (dicts inside records) are shared as before: the domain replaces them, never
mutates them in place (``kluis.store.records``).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

from kluis.store.records import ObjectRecord, PolicyRecord, VaultRecord, VersionRecord

__all__ = ["MISSING", "CachedLookups", "ReadContext", "clone", "is_shared", "share"]

MISSING = object()  # "not cached" (None is a cacheable answer: the row does not exist)
T_co = TypeVar("T_co", covariant=True)


class _ReadOnly:
    """What a record's read-only twin adds to it (mixed in before the record class): edits raise."""

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """Constructing one (``dataclasses.replace`` does) makes an editable plain record."""
        return _EDITABLE[cls](*args, **kwargs)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(
            f"{_EDITABLE[type(self)].__name__} from a cached read is shared with the cache and read-only "
            f"(setting {name!r}): change a copy (kluis.store.cached.clone), or read it inside store.write()"
        )

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    def __eq__(self, other: object) -> bool:
        """Equal to a record of the same class (plain or read-only) with the same fields."""
        if isinstance(other, _EDITABLE[type(self)]):
            return vars(self) == vars(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like the (unfrozen) dataclasses it twins

    def __reduce__(self) -> tuple[Any, ...]:
        """``copy.copy``, ``copy.deepcopy`` and pickle make editable plain records of it."""
        return _plain, (_EDITABLE[type(self)], dict(vars(self)))


def _plain(cls: type, fields: dict[str, Any]) -> Any:
    """A record of class ``cls`` holding ``fields`` (what a shared record's copies are made with)."""
    record: Any = object.__new__(cls)
    record.__dict__.update(fields)
    return record


_RECORDS: tuple[type, ...] = (VaultRecord, PolicyRecord, ObjectRecord, VersionRecord)
#: The read-only twin of each cached record class, and back.
_SHARED: dict[type, type] = {cls: type(f"Shared{cls.__name__}", (_ReadOnly, cls), {}) for cls in _RECORDS}
_EDITABLE: dict[type, type] = {twin: cls for cls, twin in _SHARED.items()}


def clone(value: Any) -> Any:
    """An editable shallow copy of a record, plain or shared (~10x cheaper than ``copy.copy``);
    immutable values as they are."""
    if value is None or isinstance(value, bytes | str):
        return value
    cls = type(value)
    copy: Any = object.__new__(_EDITABLE.get(cls, cls))
    copy.__dict__.update(value.__dict__)
    return copy


def share(value: Any) -> Any:
    """``value`` as the cache keeps and hands it out: a record as its read-only twin (a shallow copy,
    made once when it enters the cache); None, bytes and strings as they are."""
    twin = _SHARED.get(type(value))
    if twin is None:
        return value
    shared: Any = object.__new__(twin)
    shared.__dict__.update(value.__dict__)
    return shared


def is_shared(value: object) -> bool:
    """Whether ``value`` is a record as a cached read hands it out (read-only, shared with the cache)."""
    return isinstance(value, _ReadOnly)


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


_NO_HITS: dict[tuple[Any, ...], Any] = {}  # never filled: every lookup goes to ``_memo``


class CachedLookups:
    """Settings, vaults, policies, objects and versions through ``_memo``; every other query as the
    transaction class after this one in the MRO answers it.

    ``_hits`` is a store's shortcut for hits: a dict of entries valid as they are (SQLite: its cache,
    exact while ``PRAGMA data_version`` is unchanged, which ``read()`` checked), looked up first
    without a call or a loader closure; the default is empty, so everything goes to ``_memo``."""

    _hits: dict[tuple[Any, ...], Any] = _NO_HITS

    def _memo(self, key: tuple[Any, ...], load: Any) -> Any:
        raise NotImplementedError

    def _next(self) -> Any:
        return cast(Any, super())

    def get_setting(self, name: str) -> bytes | None:
        result: bytes | None = self._memo(("setting", name), lambda: self._next().get_setting(name))
        return result

    def get_vault(self, name: str) -> VaultRecord | None:
        key = ("vault", name.lower())
        result: VaultRecord | None = self._hits.get(key, MISSING)
        if result is MISSING:
            result = self._memo(key, lambda: self._next().get_vault(name))
        return result

    def get_policy(self, vault_id: str, object_id: str) -> PolicyRecord | None:
        key = ("policy", vault_id, object_id)
        result: PolicyRecord | None = self._hits.get(key, MISSING)
        if result is MISSING:
            result = self._memo(key, lambda: self._next().get_policy(vault_id, object_id))
        return result

    def get_object(self, vault_id: str, kind: str, name: str) -> ObjectRecord | None:
        key = ("object", vault_id, kind, name.lower())
        result: ObjectRecord | None = self._hits.get(key, MISSING)
        if result is MISSING:
            result = self._memo(key, lambda: self._next().get_object(vault_id, kind, name))
        return result

    def get_version(self, vault_id: str, kind: str, name: str, version: str) -> VersionRecord | None:
        key = ("version", vault_id, kind, name.lower(), version.lower())
        result: VersionRecord | None = self._hits.get(key, MISSING)
        if result is MISSING:
            result = self._memo(key, lambda: self._next().get_version(vault_id, kind, name, version))
        return result

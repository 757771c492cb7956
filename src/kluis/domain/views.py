"""What the domain hands back to the HTTP layer: plain, already-checked views of keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["UNSET", "DeletedInfo", "KeyChanges", "KeyView", "Page", "Unset", "is_set"]

T = TypeVar("T")


class Unset:
    """Sentinel for "not given" in PATCH-style updates, distinct from an explicit ``None``."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET = Unset()


def is_set(value: object) -> bool:
    return not isinstance(value, Unset)


@dataclass
class KeyChanges:
    """Properties a caller may set on create/import or change on update; UNSET leaves them alone."""

    key_ops: list[str] | Unset = UNSET
    enabled: bool | Unset = UNSET
    nbf: int | Unset | None = UNSET
    exp: int | Unset | None = UNSET
    exportable: bool | Unset = UNSET
    tags: dict[str, str] | Unset = UNSET
    release_policy: dict[str, Any] | Unset | None = UNSET


@dataclass(frozen=True)
class DeletedInfo:
    deleted_date: int
    scheduled_purge_date: int


@dataclass
class KeyView:
    name: str
    version: str
    kty: str
    jwk: dict[str, str]
    key_ops: list[str]
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int
    recovery_level: str
    recoverable_days: int
    tags: dict[str, str]
    exportable: bool = False
    release_policy: dict[str, Any] | None = None
    deleted: DeletedInfo | None = None


@dataclass
class Page(Generic[T]):
    items: list[T] = field(default_factory=list)
    next_token: str | None = None

"""What the domain hands back to the HTTP layer: plain, already-checked views of vault objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["UNSET", "Changes", "DeletedInfo", "KeyChanges", "ObjectView", "Page", "SecretChanges", "Unset", "is_set"]

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
class Changes:
    """Attributes every object kind has; UNSET leaves them alone (PATCH semantics).

    ``nbf`` / ``exp`` are Unix seconds, or None to clear them.
    """

    enabled: bool | Unset = UNSET
    nbf: int | Unset | None = UNSET
    exp: int | Unset | None = UNSET
    tags: dict[str, str] | Unset = UNSET


@dataclass
class KeyChanges(Changes):
    """A key's own properties on create/import/update."""

    key_ops: list[str] | Unset = UNSET
    exportable: bool | Unset = UNSET
    release_policy: dict[str, Any] | Unset | None = UNSET


@dataclass
class SecretChanges(Changes):
    """A secret's own properties on set/update."""

    content_type: str | Unset | None = UNSET


@dataclass(frozen=True)
class DeletedInfo:
    deleted_date: int  # Unix seconds
    scheduled_purge_date: int  # Unix seconds


@dataclass
class ObjectView:
    """One version of a vault object as a caller may see it. ``props`` are the kind's own properties
    (keys: ``kty``, ``jwk`` (public), ``key_ops``, ``exportable``, ``release_policy``; secrets:
    ``contentType``, ``kid``, ``managed``); never private material."""

    kind: str
    name: str
    version: str
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int
    recovery_level: str
    recoverable_days: int
    tags: dict[str, str]
    props: dict[str, Any]
    deleted: DeletedInfo | None = None

    # -- keys ---------------------------------------------------------------------------------
    @property
    def kty(self) -> str:
        return str(self.props["kty"])

    @property
    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = self.props["jwk"]
        return jwk

    @property
    def key_ops(self) -> list[str]:
        return list(self.props.get("key_ops") or [])

    @property
    def exportable(self) -> bool:
        return bool(self.props.get("exportable", False))

    @property
    def release_policy(self) -> dict[str, Any] | None:
        policy: dict[str, Any] | None = self.props.get("release_policy")
        return policy


@dataclass
class Page(Generic[T]):
    items: list[T] = field(default_factory=list)
    next_token: str | None = None

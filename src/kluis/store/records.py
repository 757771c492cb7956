"""Plain rows that cross the store boundary. No behaviour: the domain owns the rules."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "GroupRecord",
    "KeyRecord",
    "KeyVersionRecord",
    "PolicyRecord",
    "PrincipalRecord",
    "VaultRecord",
]


@dataclass
class PrincipalRecord:
    object_id: str
    app_id: str
    display_name: str
    secret_hash: str
    is_admin: bool
    created: int


@dataclass
class GroupRecord:
    name: str
    location: str
    created: int


@dataclass
class VaultRecord:
    vault_id: str
    name: str
    group_name: str
    location: str
    retention_days: int
    purge_protection: bool
    created: int


@dataclass
class PolicyRecord:
    vault_id: str
    object_id: str
    keys: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)


@dataclass
class KeyRecord:
    """A key name in a vault: which version is current, and its soft-delete / rotation state."""

    vault_id: str
    name: str
    latest_version: str
    created: int
    updated: int
    deleted_at: int | None = None
    scheduled_purge_at: int | None = None
    rotation_policy: str | None = None  # JSON text, as the domain wrote it
    rotate_at: int | None = None


@dataclass
class KeyVersionRecord:
    vault_id: str
    name: str
    version: str
    kty: str
    public_jwk: str  # JSON text
    sealed: bytes
    key_ops: str  # JSON text
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int
    tags: str  # JSON text
    exportable: bool = False
    release_policy: str | None = None
    seq: int = 0

"""Plain rows that cross the store boundary. No behaviour: the domain owns the rules.

Vault objects of every kind (keys, secrets, later certificates) share two records: an
``ObjectRecord`` per name (current version, soft-delete and scheduling state) and a
``VersionRecord`` per version (sealed material, attributes, tags and the kind's own properties).
Tags and properties arrive as dicts (decoded JSON); the store may share them between readers,
so the domain replaces them and never mutates them in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AuditBatch",
    "AuditQuery",
    "AuditRecord",
    "GroupRecord",
    "ObjectRecord",
    "PolicyRecord",
    "PrincipalRecord",
    "VaultRecord",
    "VersionRecord",
    "WrappedKeyRecord",
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
    sku: str = "premium"  # Azure's vault SKU: "standard" or "premium" (HSM key types need premium)


@dataclass
class PolicyRecord:
    vault_id: str
    object_id: str
    keys: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)


@dataclass
class ObjectRecord:
    """One name of one kind in a vault: its current version and soft-delete / scheduling state.

    ``kind`` is ``"key"`` or ``"secret"``; times are Unix seconds; ``policy`` is the kind's own
    policy document as JSON text (a key's rotation policy); ``due_at`` is when the scheduler must
    next act on the object (a key's rotation), or None.
    """

    vault_id: str
    kind: str
    name: str
    latest_version: str
    created: int
    updated: int
    deleted_at: int | None = None
    scheduled_purge_at: int | None = None
    policy: str | None = None
    due_at: int | None = None


@dataclass
class VersionRecord:
    """One version: ``sealed`` is the AES-GCM-sealed material (a key's private part, a secret's value);
    ``props`` holds the kind's own properties (a key's ``kty``, public ``jwk``, ``key_ops``...;
    a secret's ``contentType``...), JSON-compatible values only. ``seq`` orders versions of a name."""

    vault_id: str
    kind: str
    name: str
    version: str
    sealed: bytes
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int
    tags: dict[str, str]
    props: dict[str, Any]
    seq: int = 0


@dataclass
class AuditRecord:
    """One audited operation, as listed (``kluis.domain.audit`` gives the rules; the store keeps records
    in ``AuditBatch`` rows).

    ``chain`` names the chain (one per writing process); ``seq`` counts from 0 within it; ``time_ms``
    is Unix milliseconds (real time, never moved by ``kluis time set``); ``prev_time_ms`` is the
    previous record's ``time_ms`` (0 for seq 0); ``hash`` is the MAC (hex) of the batch holding the
    record and ``prev_hash`` that of the chain's previous batch ("" for the first). ``status`` is the
    HTTP status answered; ``duration_us`` microseconds. ``id`` ascends in insertion order (0 before
    insertion). No key material, secret value or token is ever a field.
    """

    chain: str
    seq: int
    time_ms: int
    tenant_id: str
    caller_object_id: str
    caller_app_id: str
    client_address: str
    vault: str
    operation: str
    kind: str
    object_name: str
    version: str
    status: int
    request_id: str
    duration_us: int
    prev_hash: str
    prev_time_ms: int
    hash: str
    id: int = 0


@dataclass
class AuditBatch:
    """One stored row of the audit log: ``count`` consecutive records of one chain, from ``first_seq``.

    ``body`` is the records, encoded and authenticated by ``kluis.domain.audit`` (the store never
    reads it); ``min_time_ms`` / ``max_time_ms`` (Unix ms) are its first and last record's times,
    for time-range listings and retention; ``prev_hash`` / ``prev_time_ms`` repeat the chain's
    previous batch's ``hash`` / ``max_time_ms`` ("" / 0 for the first); ``hash`` is this batch's MAC
    (hex). ``format``: 1 for batches written by ``AuditLog``, 0 for a single record carried over
    from the per-record table of schema version 4. ``id`` is assigned by the store, ascending in
    insertion order (0 before insertion). ``damaged``: the columns a store found holding a value of
    another type than it wrote (an edit outside kluis, e.g. SQLite text where it wrote a blob); each
    such field then holds its type's empty value ("", 0, b"") and the batch cannot verify. Empty for
    a row read back as written.
    """

    chain: str
    first_seq: int
    count: int
    min_time_ms: int
    max_time_ms: int
    prev_hash: str
    prev_time_ms: int
    hash: str
    body: bytes
    format: int = 1
    id: int = 0
    damaged: tuple[str, ...] = ()


@dataclass
class AuditQuery:
    """Filters for listing audit records; None / "" means no filter. Times are Unix milliseconds,
    ``since_ms`` inclusive and ``until_ms`` exclusive; ``caller`` matches the caller's object id or
    app id; ``status`` the exact HTTP status."""

    since_ms: int | None = None
    until_ms: int | None = None
    vault: str = ""
    caller: str = ""
    operation: str = ""
    status: int | None = None


@dataclass
class WrappedKeyRecord:
    """A data key as the database keeps it: wrapped by the key-encryption key (never stored itself).

    ``purpose``: "seal" (new sealed blobs), "seal-v1" (the pre-data-key KEK, which opens version-1
    blobs), "backup" (backup blobs) or "audit" (audit-chain MACs); ``kek_fingerprint`` names the KEK
    that wrapped it; ``created`` is Unix milliseconds.
    """

    key_id: int
    purpose: str
    wrapped: bytes
    kek_fingerprint: str
    created: int

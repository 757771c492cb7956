"""Backup / restore of one vault object with all its versions, for every kind.

The blob is ``kluis-<kind>-backup-v2.`` + base64url(AES-256-GCM(JSON)), sealed under a backup key
with the tenant id and kind as associated data: it restores into any vault of the same kluis
tenant, and a tampered blob, a blob of another kind or from another tenant is refused. Azure's
blobs are opaque too; SDKs never look inside. Inside, each version's material is in plaintext
(the envelope is the protection) so a restore re-seals it for its new vault.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson

from kluis.crypto import CryptoError, Sealer
from kluis.domain.errors import BadParameter, Conflict
from kluis.domain.lifecycle import Lifecycle
from kluis.domain.views import ObjectView
from kluis.store import ObjectRecord, Store, VaultRecord, VersionRecord

__all__ = ["MAX_BACKUP_VERSIONS", "BackupEnvelope", "ObjectBackup"]

MAX_BACKUP_VERSIONS = 500
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")
_INVALID = "The backup blob is invalid: it is corrupt, was modified, or belongs to another tenant."


class BackupEnvelope:
    """Seals and opens backup documents: ``prefix + base64url(sealed JSON)``, bound to tenant and kind."""

    def __init__(self, sealer: Sealer, tenant_id: str) -> None:
        self._sealer = sealer
        self._tenant_id = tenant_id

    def seal(self, prefix: str, doc: dict[str, Any]) -> bytes:
        sealed = self._sealer.seal(orjson.dumps(doc), context=self._aad(prefix))
        return prefix.encode() + base64.urlsafe_b64encode(sealed)

    def open(self, prefix: str, blob: bytes) -> dict[str, Any]:
        """The document; BadParameter for anything kluis did not seal for this tenant and prefix."""
        head = prefix.encode()
        if not blob.startswith(head):
            raise BadParameter(_INVALID)
        text = blob[len(head) :]
        try:
            sealed = base64.b64decode(text.translate(_URLSAFE_TO_STD), validate=True)
            if base64.urlsafe_b64encode(sealed) != text:  # only the exact encoding we wrote, nothing appended
                raise BadParameter(_INVALID)
            doc = orjson.loads(self._sealer.unseal(sealed, context=self._aad(prefix)))
        except (CryptoError, ValueError, binascii.Error):
            raise BadParameter(_INVALID) from None
        if not isinstance(doc, dict):
            raise BadParameter(_INVALID)
        return doc

    def _aad(self, prefix: str) -> bytes:
        return f"{prefix.rstrip('.')}/{self._tenant_id}".encode()


class ObjectBackup:
    """BackupKey/RestoreKey, BackupSecret/RestoreSecret: the same envelope for every kind.

    ``legacy`` may open older blob formats of the kind (returning the current document shape),
    so backups made by an earlier kluis still restore.
    """

    def __init__(
        self,
        lifecycle: Lifecycle,
        store: Store,
        envelope: BackupEnvelope,
        *,
        legacy: Callable[[bytes], dict[str, Any] | None] | None = None,
    ) -> None:
        self._life = lifecycle
        self._store = store
        self._envelope = envelope
        self._prefix = f"kluis-{lifecycle.kind.kind}-backup-v2."
        self._legacy = legacy

    def backup(self, vault: VaultRecord, name: str) -> bytes:
        """Every version with its attributes, tags and properties, and the object's policy."""
        kind = self._life.kind
        with self._store.read() as tx:
            obj = self._life.live(tx, vault, name)
            if tx.count_versions(vault.vault_id, kind.kind, name) > MAX_BACKUP_VERSIONS:
                raise BadParameter(
                    f"A {kind.title.lower()} with more than {MAX_BACKUP_VERSIONS} versions cannot be backed up."
                )
            versions = tx.list_versions(vault.vault_id, kind.kind, name, after_seq=None, limit=MAX_BACKUP_VERSIONS)
        doc = {
            "name": obj.name,
            "created": obj.created,
            "latest": obj.latest_version,
            "policy": obj.policy,
            "versions": [
                {
                    "version": v.version,
                    "material": base64.b64encode(self._life.unseal(v)).decode(),
                    "enabled": v.enabled,
                    "nbf": v.nbf,
                    "exp": v.exp,
                    "created": v.created,
                    "updated": v.updated,
                    "tags": v.tags,
                    "props": v.props,
                }
                for v in versions
            ],
        }
        return self._envelope.seal(self._prefix, doc)

    def restore(self, vault: VaultRecord, blob: bytes) -> ObjectView:
        """Every version under its old identifier; Conflict if the name is in use (live or deleted)."""
        doc = self._open(blob)
        kind = self._life.kind
        try:
            name = str(doc["name"])
            rows = [
                VersionRecord(
                    vault_id=vault.vault_id,
                    kind=kind.kind,
                    name=name,
                    version=str(item["version"]),
                    sealed=self._life.seal(
                        vault.vault_id, name, str(item["version"]), base64.b64decode(item["material"])
                    ),
                    enabled=bool(item["enabled"]),
                    nbf=item["nbf"],
                    exp=item["exp"],
                    created=int(item["created"]),
                    updated=int(item["updated"]),
                    tags=dict(item["tags"]),
                    props=dict(item["props"]),
                )
                for item in doc["versions"]
            ]
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise BadParameter(_INVALID) from None
        latest = next((r for r in rows if r.version == doc.get("latest")), None)
        if latest is None:
            raise BadParameter("The backup blob has no current version.")
        with self._store.write() as tx:
            if tx.get_object(vault.vault_id, kind.kind, name) is not None:
                raise Conflict(
                    f"{kind.title} {name} already exists in this vault (or is deleted and recoverable); "
                    "a backup can only be restored under a name that is not in use."
                )
            for row in rows:
                tx.add_version(row)
            obj = ObjectRecord(
                vault_id=vault.vault_id,
                kind=kind.kind,
                name=name,
                latest_version=latest.version,
                created=int(doc["created"]),
                updated=latest.updated,
                policy=doc.get("policy"),
            )
            obj.due_at = self._life.due(obj, latest)
            tx.put_object(obj)
        return self._life.view(vault, obj, latest)

    def _open(self, blob: bytes) -> dict[str, Any]:
        if self._legacy is not None and not blob.startswith(self._prefix.encode()):
            doc = self._legacy(blob)
            if doc is not None:
                return doc
        return self._envelope.open(self._prefix, blob)

"""BackupKey / RestoreKey: an opaque, authenticated, encrypted blob with every version.

The blob is AES-256-GCM under a key derived from the server's key-encryption key, with the
tenant id as associated data: it restores into any vault of the same tenant (and server KEK),
and a tampered blob or one from another tenant is refused. Azure's blobs are opaque too; SDKs
never look inside.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from kluis.crypto import CryptoError, KeyMaterial, KeyType, Sealer
from kluis.crypto.algorithms import Curve
from kluis.domain.errors import BadParameter, Conflict
from kluis.domain.keys.rotation import RotationPolicy
from kluis.domain.keys.service import MAX_BACKUP_VERSIONS, KeyService
from kluis.domain.permissions import Caller, require
from kluis.domain.views import KeyView
from kluis.store import KeyRecord, KeyVersionRecord, Store, VaultRecord

__all__ = ["KeyBackup"]

PREFIX = b"kluis-key-backup-v1."
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")


class KeyBackup:
    def __init__(self, store: Store, keys: KeyService, backup_sealer: Sealer, tenant_id: str) -> None:
        self._store = store
        self._keys = keys
        self._sealer = backup_sealer
        self._aad = f"kluis-key-backup-v1/{tenant_id}".encode()

    def backup(self, vault: VaultRecord, caller: Caller, name: str) -> bytes:
        """BackupKey (keys/backup): all versions, their attributes and tags, and the rotation policy."""
        with self._store.read() as tx:
            require(tx.get_policy(vault.vault_id, caller.object_id), vault, caller, "keys", "backup")
            key = self._keys.live_key(tx, vault, name)
            if tx.count_versions(vault.vault_id, name) > MAX_BACKUP_VERSIONS:
                raise BadParameter(f"A key with more than {MAX_BACKUP_VERSIONS} versions cannot be backed up.")
            versions = tx.list_versions(vault.vault_id, name, after_seq=None, limit=MAX_BACKUP_VERSIONS + 1)
        doc: dict[str, Any] = {
            "name": key.name,
            "created": key.created,
            "latest": key.latest_version,
            "rotation_policy": key.rotation_policy,
            "versions": [
                {
                    "version": v.version,
                    "kty": v.kty,
                    "public_jwk": v.public_jwk,
                    "private": base64.b64encode(self._keys.material(vault.vault_id, v).to_bytes()).decode(),
                    "key_ops": v.key_ops,
                    "enabled": v.enabled,
                    "nbf": v.nbf,
                    "exp": v.exp,
                    "created": v.created,
                    "updated": v.updated,
                    "tags": v.tags,
                    "exportable": v.exportable,
                    "release_policy": v.release_policy,
                }
                for v in versions
            ],
        }
        sealed = self._sealer.seal(json.dumps(doc).encode(), context=self._aad)
        return PREFIX + base64.urlsafe_b64encode(sealed)

    def restore(self, vault: VaultRecord, caller: Caller, blob: bytes) -> KeyView:
        """RestoreKey (keys/restore): every version with its identifier; refused if the name is taken."""
        with self._store.read() as tx:
            require(tx.get_policy(vault.vault_id, caller.object_id), vault, caller, "keys", "restore")
        doc = self._open(blob)
        name = doc["name"]
        with self._store.write() as tx:
            if tx.get_key(vault.vault_id, name) is not None:
                raise Conflict(
                    f"Key {name} already exists in this vault (or is deleted and recoverable); "
                    "a backup can only be restored under a name that is not in use."
                )
            latest: KeyVersionRecord | None = None
            for item in doc["versions"]:
                family = KeyType(item["kty"]).family
                jwk = json.loads(item["public_jwk"])
                material = KeyMaterial.load(
                    family,
                    base64.b64decode(item["private"]),
                    curve=Curve(jwk["crv"]) if family == "EC" else None,
                )
                rec = KeyVersionRecord(
                    vault_id=vault.vault_id,
                    name=name,
                    version=item["version"],
                    kty=item["kty"],
                    public_jwk=item["public_jwk"],
                    sealed=self._keys.seal(vault.vault_id, name, item["version"], material),
                    key_ops=item["key_ops"],
                    enabled=item["enabled"],
                    nbf=item["nbf"],
                    exp=item["exp"],
                    created=item["created"],
                    updated=item["updated"],
                    tags=item["tags"],
                    exportable=item["exportable"],
                    release_policy=item["release_policy"],
                )
                tx.add_version(rec)
                if rec.version == doc["latest"]:
                    latest = rec
            if latest is None:
                raise BadParameter("The backup blob has no current version.")
            policy = RotationPolicy.from_json(doc["rotation_policy"]) if doc["rotation_policy"] else None
            key = KeyRecord(
                vault_id=vault.vault_id,
                name=name,
                latest_version=latest.version,
                created=doc["created"],
                updated=latest.updated,
                rotation_policy=doc["rotation_policy"],
                rotate_at=policy.next_rotation(created=latest.created, exp=latest.exp) if policy else None,
            )
            tx.put_key(key)
            return self._keys.view(vault, key, latest)

    def _open(self, blob: bytes) -> dict[str, Any]:
        bad = BadParameter("The backup blob is invalid: it is corrupt, was modified, or belongs to another tenant.")
        if not blob.startswith(PREFIX):
            raise bad
        text = blob[len(PREFIX) :]
        try:
            sealed = base64.b64decode(text.translate(_URLSAFE_TO_STD), validate=True)
            if base64.urlsafe_b64encode(sealed) != text:  # only the exact encoding we wrote, nothing appended
                raise bad
            doc: dict[str, Any] = json.loads(self._sealer.unseal(sealed, context=self._aad))
        except (CryptoError, ValueError):
            raise bad from None
        return doc

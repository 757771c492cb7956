"""Key backups: the shared backup envelope (``kluis.domain.backup``), plus the format of the first
kluis release (``kluis-key-backup-v1.``), which still restores.

A v1 blob is AES-256-GCM under a key derived from the KEK with the tenant id as associated data;
its versions carry the key's columns of that release (public JWK, key_ops and tags as JSON text).
"""

from __future__ import annotations

import json
from typing import Any

from kluis.domain.backup import BackupEnvelope

__all__ = ["LEGACY_PREFIX", "open_legacy_key_backup"]

LEGACY_PREFIX = "kluis-key-backup-v1."


def open_legacy_key_backup(envelope: BackupEnvelope, blob: bytes) -> dict[str, Any] | None:
    """A v1 key backup as a current backup document; None if ``blob`` is not a v1 blob.

    Raises BadParameter (from the envelope) for a v1 blob that is corrupt or from another tenant.
    """
    if not blob.startswith(LEGACY_PREFIX.encode()):
        return None
    doc = envelope.open(LEGACY_PREFIX, blob)
    return {
        "name": doc["name"],
        "created": doc["created"],
        "latest": doc["latest"],
        "policy": doc["rotation_policy"],
        "versions": [
            {
                "version": v["version"],
                "material": v["private"],
                "enabled": v["enabled"],
                "nbf": v["nbf"],
                "exp": v["exp"],
                "created": v["created"],
                "updated": v["updated"],
                "tags": json.loads(v["tags"]),
                "props": {
                    "kty": v["kty"],
                    "jwk": json.loads(v["public_jwk"]),
                    "key_ops": json.loads(v["key_ops"]),
                    "exportable": v["exportable"],
                    "release_policy": json.loads(v["release_policy"]) if v["release_policy"] else None,
                },
            }
            for v in doc["versions"]
        ],
    }

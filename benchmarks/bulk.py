"""Bulk-load keys straight into kluis's database, for the scaling run (1,000,000 keys in about a minute).

Rows are built as ``Lifecycle.add_version`` builds them: one EC P-256 key is generated once, its
public JWK is reused by every row, and its PKCS#8 bytes are sealed per row by the key lifecycle's
own ``seal`` (bound to vault, kind, name and version), so every loaded key is a valid kluis key
(get, sign, backup all work). Only names (``bulk-0000000`` ...) and versions differ. Rows go in
through the store's own ``add_version`` / ``put_object`` inside its own write transactions of
``_BATCH`` keys each (no HTTP, no schema knowledge here), then the WAL is checkpointed. SQLite only.

Run on a data dir whose server has bootstrapped; the server may keep running (SQLite WAL).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from kluis.api.runtime import DEFAULT_VAULT, Runtime
from kluis.config import DataDir, ServerSettings
from kluis.crypto import Curve, KeyType, generate
from kluis.domain.keys.service import DEFAULT_KEY_OPS
from kluis.store import ObjectRecord, VersionRecord

__all__ = ["NAME_WIDTH", "bulk_load", "bulk_name"]

NAME_WIDTH = 7
_BATCH = 20_000


def bulk_name(i: int) -> str:
    return f"bulk-{i:0{NAME_WIDTH}d}"


def bulk_load(data_dir: Path, start: int, count: int, *, vault_name: str = DEFAULT_VAULT) -> float:
    """Add keys ``bulk-<start>`` .. ``bulk-<start+count-1>`` (one version each); the seconds it took."""
    t0 = time.perf_counter()
    runtime = Runtime(DataDir(data_dir), ServerSettings(key_pool=0), bootstrap=False)
    try:
        vault = runtime.management.get_vault(vault_name)
        material = generate(KeyType.EC, curve=Curve.P_256)
        props = {
            "kty": "EC",
            "jwk": material.public_jwk(),
            "key_ops": list(DEFAULT_KEY_OPS["EC"]),
            "exportable": False,
            "release_policy": None,
        }
        private = material.to_bytes()
        lifecycle = runtime.keys.lifecycle
        kind = lifecycle.kind.kind
        now = runtime.clock.now()
        vid = vault.vault_id
        salt = f"{int(t0 * 1e6) & 0xFFFFFFFF:08x}"
        end = start + count
        for lo in range(start, end, _BATCH):
            with runtime.store.write() as tx:
                for i in range(lo, min(lo + _BATCH, end)):
                    name = bulk_name(i)
                    version = f"{salt}{i:024x}"
                    sealed = lifecycle.seal(vid, name, version, private)
                    row = VersionRecord(vid, kind, name, version, sealed, True, None, None, now, now, {}, props)
                    tx.add_version(row)
                    tx.put_object(ObjectRecord(vid, kind, name, version, now, now))
    finally:
        runtime.close()
    conn = sqlite3.connect(DataDir(data_dir).database)  # fold the WAL into the file: reads start from one file
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - t0

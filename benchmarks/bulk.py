"""Bulk-load keys straight into kluis's SQLite database, for the scaling run.

Rows are built like ``KeyService._new_version`` builds them: one EC P-256 key is generated once,
its public JWK is reused by every row, and its PKCS#8 bytes are sealed per row under that row's
own context (``kluis/key/<vault>/<name>/<version>``), so every loaded key is a valid kluis key
(get, sign, backup all work). Only names (``bulk-0000000`` ...) and versions differ. Inserts go
through the store's own connection inside its own write transaction, with ``executemany`` in
batches, which loads 1,000,000 keys in well under a minute.

Run on a data dir whose server has bootstrapped; the server may keep running (SQLite WAL).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

from kluis.api.runtime import DEFAULT_VAULT, Runtime
from kluis.config import DataDir, ServerSettings
from kluis.crypto import Curve, KeyType, generate
from kluis.domain.keys.service import DEFAULT_KEY_OPS

__all__ = ["NAME_WIDTH", "bulk_load", "bulk_name"]

NAME_WIDTH = 7
_BATCH = 50_000
_KEYS_SQL = (
    "INSERT INTO keys (vault_id, name_ci, name, latest_version, created, updated, deleted_at, "
    "scheduled_purge_at, rotation_policy, rotate_at) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)"
)
_VERSIONS_SQL = (
    "INSERT INTO key_versions (vault_id, name_ci, version, kty, public_jwk, sealed, key_ops, enabled, nbf, exp, "
    "created, updated, tags, exportable, release_policy) VALUES (?, ?, ?, ?, ?, ?, ?, 1, NULL, NULL, ?, ?, ?, 0, NULL)"
)


def bulk_name(i: int) -> str:
    return f"bulk-{i:0{NAME_WIDTH}d}"


def bulk_load(data_dir: Path, start: int, count: int, *, vault_name: str = DEFAULT_VAULT) -> float:
    """Add keys ``bulk-<start>`` .. ``bulk-<start+count-1>``; returns the seconds it took."""
    t0 = time.perf_counter()
    runtime = Runtime(DataDir(data_dir), ServerSettings(key_pool=0), bootstrap=False)
    try:
        vault = runtime.management.get_vault(vault_name)
        material = generate(KeyType.EC, curve=Curve.P_256)
        public_jwk = json.dumps(material.public_jwk(), separators=(",", ":"))
        private = material.to_bytes()
        key_ops = json.dumps(DEFAULT_KEY_OPS["EC"])
        now = runtime.clock.now()
        seal = runtime.sealer.seal
        vid = vault.vault_id
        context = f"kluis/key/{vid}/"
        salt = f"{int(t0 * 1e6) & 0xFFFFFFFF:08x}"

        def rows(lo: int, hi: int) -> Iterator[tuple[tuple[object, ...], tuple[object, ...]]]:
            for i in range(lo, hi):
                name = bulk_name(i)
                version = f"{salt}{i:024x}"
                sealed = seal(private, context=f"{context}{name}/{version}".encode())
                yield (
                    (vid, name, name, version, now, now),
                    (vid, name, version, "EC", public_jwk, sealed, key_ops, now, now, "{}"),
                )

        end = start + count
        for lo in range(start, end, _BATCH):
            batch = list(rows(lo, min(lo + _BATCH, end)))
            with runtime.store.write() as tx:
                conn = tx._c  # the store has no bulk API: its own connection, inside its own transaction
                conn.executemany(_KEYS_SQL, [k for k, _ in batch])
                conn.executemany(_VERSIONS_SQL, [v for _, v in batch])
        with runtime.store.read() as tx:
            tx._c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        runtime.close()
    return time.perf_counter() - t0

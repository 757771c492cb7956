"""benchmarks.bulk: bulk-loaded keys are real kluis keys (get, sign) and names continue across loads."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.bulk import bulk_load, bulk_name
from kluis.api.runtime import DEFAULT_VAULT, Runtime
from kluis.config import DataDir, ServerSettings


def test_bulk_loaded_keys_can_be_read_and_used(tmp_path: Path) -> None:
    where = tmp_path / "data"
    Runtime(DataDir(where), ServerSettings(key_pool=0), bootstrap=True).close()
    bulk_load(where, 0, 3)
    bulk_load(where, 3, 2)
    rt = Runtime(DataDir(where), ServerSettings(key_pool=0))
    try:
        vault = rt.vault(DEFAULT_VAULT)
        names = [v.name for v in rt.keys.list_keys(vault, maxresults=25, token=None).items]
        assert names == [bulk_name(i) for i in range(5)]
        view = rt.keys.get_key(vault, bulk_name(4))
        assert view.props["kty"] == "EC" and view.props["key_ops"] == ["sign", "verify"]
        digest = os.urandom(32)
        signed = rt.key_operations.sign(vault, bulk_name(4), None, "ES256", digest)  # unseals the sealed row
        # one material per load: key 3 (second load) verifies what key 4 signed
        assert rt.key_operations.verify(vault, bulk_name(3), None, "ES256", digest, signed.value)
    finally:
        rt.close()

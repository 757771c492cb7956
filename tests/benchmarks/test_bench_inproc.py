"""benchmarks.inproc: the request path in process answers 200 for the suite's operations and is timed."""

from __future__ import annotations

import warnings
from pathlib import Path

from benchmarks.inproc import _scenarios, measure
from kluis.api.app import KluisApp
from kluis.api.runtime import Runtime
from kluis.config import DataDir, ServerSettings


def test_operations_run_through_the_whole_dispatcher(tmp_path: Path) -> None:
    rt = Runtime(DataDir(tmp_path / "d"), ServerSettings(key_pool=0), bootstrap=True)
    try:
        app = KluisApp(rt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scenarios = _scenarios(app, rt, ["get_key", "sign_es256", "encrypt_a256gcm", "create_ec"], cold=0)
        for name, scenario in scenarios.items():
            result = measure(app, scenario, n=20, batches=3)  # raises unless every answer is 200
            assert 0 < result["min"] <= result["us"] <= result["max"], name
        created = rt.keys.list_keys(rt.vault("default"), maxresults=25, token=None).items
        assert sum(v.name.startswith("new-ec-") for v in created) >= 20  # creates really created keys
    finally:
        rt.close()

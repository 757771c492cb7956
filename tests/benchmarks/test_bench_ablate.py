"""benchmarks.ablate: steps replaced by stand-ins take effect, answers stay 200, and restore undoes them."""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.ablate import STEPS, apply, parse_steps
from benchmarks.inproc import _requests, _scenarios, measure
from kluis.api.app import KluisApp
from kluis.api.runtime import Runtime
from kluis.config import DataDir, ServerSettings


def test_steps_parse_by_name_or_all() -> None:
    assert parse_steps("all") == list(STEPS)
    assert parse_steps(" token, authz ") == ["token", "authz"]
    assert parse_steps("") == []
    with pytest.raises(ValueError, match=r"unknown ablation step.*tokens"):
        parse_steps("tokens")


def test_an_ablated_step_is_skipped_until_restored(tmp_path: Path) -> None:
    rt = Runtime(DataDir(tmp_path / "d"), ServerSettings(key_pool=0), bootstrap=True)
    try:
        app = KluisApp(rt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            get = _scenarios(app, rt, ["get_key"], cold=0)["get_key"]
        forged = replace(get, headers=[("Authorization", "Bearer not-a-token")])
        loop = asyncio.new_event_loop()

        def status(scenario: object) -> int:
            return loop.run_until_complete(app.serve(_requests(scenario)(0))).status_code  # type: ignore[arg-type]

        try:
            assert status(forged) == 401
            restore = apply(list(STEPS))
            try:
                assert status(get) == 200  # the stand-ins keep the first real answer: the caller
                assert status(forged) == 200  # so the token is no longer checked: measurement only
                assert measure(app, get, n=20, batches=2)["us"] > 0  # every answer 200
            finally:
                restore()
            assert status(forged) == 401 and status(get) == 200
        finally:
            loop.close()
    finally:
        rt.close()

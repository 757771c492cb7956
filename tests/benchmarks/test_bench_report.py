"""The benchmark's verdicts are computed from the run's own numbers: check the arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.report import evaluate_targets, format_table

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "performance.json"


def test_targets_of_the_reference_run() -> None:
    results = json.loads(REFERENCE.read_text())
    verdicts = {t.name: t.passed for t in evaluate_targets(results)}
    assert verdicts["get key throughput"] is True
    assert verdicts["EC P-256 sign / get key"] is False  # the documented miss
    assert verdicts["create RSA-2048 p50 (pool)"] is True
    table = format_table(results, evaluate_targets(results))
    assert "[MISS] EC P-256 sign / get key" in table and "get key (RSA-2048)" in table


def test_ratios_and_lower_is_better() -> None:
    results = json.loads(REFERENCE.read_text())
    results["operations"]["get_key"]["ops_s"] = 9_999.0
    results["operations"]["create_rsa"]["p50_ms"] = 5.0
    verdicts = {t.name: t.passed for t in evaluate_targets(results)}
    assert verdicts["get key throughput"] is False
    assert verdicts["create RSA-2048 p50 (pool)"] is False  # must be strictly below 5 ms
    del results["operations"]["sign_ps256"]
    missing = next(t for t in evaluate_targets(results) if t.name == "RSA-2048 sign PS256 / raw")
    assert missing.passed is None  # not measured: neither pass nor miss

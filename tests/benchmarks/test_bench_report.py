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


def test_a_share_of_get_key_is_the_per_round_ratio_when_get_key_ran_in_the_same_rounds() -> None:
    results = json.loads(REFERENCE.read_text())
    op = results["operations"]["sign_es256"]
    op["kluis_over_get_key"] = 0.61
    op.setdefault("spread", {})["kluis_over_get_key"] = [0.58, 0.66]
    es256 = next(t for t in evaluate_targets(results) if t.name == "EC P-256 sign / get key")
    assert es256.measured == 0.61 and es256.spread == [0.58, 0.66] and es256.passed is True
    results["operations"]["get_secret"].pop("kluis_over_get_key", None)  # as a run of the older suite has it
    secret = next(t for t in evaluate_targets(results) if t.name == "get secret / get key")
    get, ops = results["operations"]["get_key"]["ops_s"], results["operations"]["get_secret"]["ops_s"]
    assert secret.measured == ops / get  # not paired: the ratio of the medians


def test_cold_gets_over_the_largest_size_are_judged_against_hot_gets_and_on_their_p99() -> None:
    results = json.loads(REFERENCE.read_text())
    sizes = results["scaling"]["sizes"]
    top = sizes[max(sizes, key=int)]
    top["get_key"]["ops_s"], top["get_key_cold"]["ops_s"], top["get_key_cold"]["p99_ms"] = 10_000.0, 7_600.0, 9.9
    verdicts = {t.name.split(" at ")[0]: t.passed for t in evaluate_targets(results)}
    assert verdicts["cold / hot get"] is True and verdicts["cold get p99"] is True
    top["get_key_cold"]["ops_s"], top["get_key_cold"]["p99_ms"] = 7_400.0, 10.0
    verdicts = {t.name.split(" at ")[0]: t.passed for t in evaluate_targets(results)}
    assert verdicts["cold / hot get"] is False and verdicts["cold get p99"] is False

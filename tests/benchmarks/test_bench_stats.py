"""The arithmetic behind every reported figure: alternation order, median, spread, per-round ratios,
and verdicts judged on medians (no server is started here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.report import BASELINE_WITHIN, evaluate_targets, format_table, write_chart, write_json
from benchmarks.runner import CEILING_PAIRS
from benchmarks.stats import alternation, combine, median, spread


def test_alternation_takes_every_subject_once_per_round_reversing_the_order_every_other_round() -> None:
    order = alternation(["kluis", "raw", "bare"], 3)
    assert order == [
        (0, "kluis"), (0, "raw"), (0, "bare"),
        (1, "bare"), (1, "raw"), (1, "kluis"),
        (2, "kluis"), (2, "raw"), (2, "bare"),
    ]  # fmt: skip
    assert [s for _, s in alternation(["kluis", "baseline"], 4)] == ["kluis", "baseline", "baseline", "kluis"] * 2
    with pytest.raises(ValueError):
        alternation(["kluis"], 0)
    with pytest.raises(ValueError):
        alternation([], 3)


def test_median_and_spread() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5  # even count: mean of the middle two
    assert median([7.0]) == 7.0
    assert spread([3.0, 1.0, 2.0]) == [1.0, 3.0]
    assert spread([0.123456, 0.5], digits=2) == [0.12, 0.5]
    with pytest.raises(ValueError):
        median([])
    with pytest.raises(ValueError):
        spread([])


def _run(rnd: int, subject: str, ops: float, **extra: Any) -> dict[str, Any]:
    return {"round": rnd, "subject": subject, "ops_s": ops, **extra}


def test_combine_takes_ratios_per_round_then_their_median() -> None:
    runs = [
        _run(0, "kluis", 100.0, p50_ms=1.0, p99_ms=5.0, errors=1, cpu={"foreign_cores": 0.1}),
        _run(0, "raw", 200.0, cpu={"foreign_cores": 0.4}),
        _run(1, "kluis", 50.0, p50_ms=3.0, p99_ms=9.0, errors=0, cpu={"foreign_cores": None}),
        _run(1, "raw", 50.0),  # a noisy round slows both: its ratio is still 1.0
        _run(2, "kluis", 90.0, p50_ms=2.0, p99_ms=7.0, errors=2),
        _run(2, "raw", 300.0),
    ]
    out = combine(runs)
    assert out["ops_s"] == 90.0 and out["spread"]["ops_s"] == [50.0, 100.0]
    assert out["p50_ms"] == 2.0 and out["p99_ms"] == 7.0
    assert out["errors"] == 3 and out["rounds"] == 3
    assert out["raw_ops_s"] == 200.0 and out["spread"]["raw_ops_s"] == [50.0, 300.0]
    # per-round ratios 0.5, 1.0, 0.3 -> median 0.5; the ratio of the medians (90/200 = 0.45) is not used
    assert out["kluis_over_raw"] == 0.5
    assert out["spread"]["kluis_over_raw"] == [0.3, 1.0]
    assert out["foreign_cores_max"] == 0.4


def test_combine_other_subjects_and_missing_rounds() -> None:
    runs = [
        _run(0, "kluis", 100.0),
        _run(0, "baseline", 0.0),  # nothing measured: no ratio from this round
        _run(1, "kluis", 120.0),
        _run(1, "baseline", 100.0),
        _run(2, "kluis", 110.0),
        _run(2, "baseline", 110.0),
    ]
    out = combine(runs)
    assert out["baseline_ops_s"] == 100.0
    assert out["kluis_over_baseline"] == pytest.approx(1.1)  # median of 1.2 and 1.0
    assert "p50_ms" not in out and out["foreign_cores_max"] is None
    assert combine([_run(0, "kluis", 1.0), _run(0, "bare", 0.0)])["kluis_over_bare"] is None
    moto = combine([_run(n, "moto", v) for n, v in enumerate((3.0, 1.0, 2.0))], main="moto")
    assert moto["ops_s"] == 2.0
    with pytest.raises(ValueError):
        combine([_run(0, "raw", 1.0)])


def _results(**operations: list[dict[str, Any]]) -> dict[str, Any]:
    ops = {name: {"label": name.replace("_", " "), **combine(runs), "runs": runs} for name, runs in operations.items()}
    meta = {"workers": 2, "cpus": 2, "client": "wrk", "connections": 32, "duration": 1.0, "repeat": 3}
    return {"meta": meta, "operations": ops}


def _pairs(subject: str, kluis: list[float], other: list[float]) -> list[dict[str, Any]]:
    out = []
    for n, (k, o) in enumerate(zip(kluis, other, strict=True)):
        out += [_run(n, "kluis", k, p50_ms=1.0, p99_ms=2.0), _run(n, subject, o)]
    return out


def _verdicts(results: dict[str, Any]) -> dict[str, bool | None]:
    return {t.name: t.passed for t in evaluate_targets(results)}


def test_verdicts_are_judged_on_the_median() -> None:
    # get key / bare: rounds of 0.40, 0.55, 0.60 -> median 0.55 passes (>= 50%) though one round misses
    passing = _results(get_key=_pairs("bare", [12_000, 11_000, 12_000], [30_000, 20_000, 20_000]))
    assert _verdicts(passing)["get key / bare GET"] is True
    # one lucky round (0.9) does not make a pass: median 0.45
    missing = _results(get_key=_pairs("bare", [9_000, 18_000, 9_000], [20_000, 20_000, 20_000]))
    assert _verdicts(missing)["get key / bare GET"] is False
    assert _verdicts(missing)["get key throughput"] is False  # median 9,000 < 10,000 despite an 18,000 run
    target = next(t for t in evaluate_targets(missing) if t.name == "get key / bare GET")
    assert target.measured == 0.45 and target.spread == [0.45, 0.9]
    assert "45% [45-90%]" in target.describe()


def test_baseline_targets_only_when_a_baseline_was_measured() -> None:
    without = _results(sign_ps256=_pairs("raw", [3_000] * 3, [5_000] * 3))
    assert not any("baseline" in t.name for t in evaluate_targets(without))
    slower = _results(sign_ps256=_pairs("baseline", [940, 960, 1_000], [1_000, 1_000, 1_000]))
    target = next(t for t in evaluate_targets(slower) if "baseline" in t.name)
    assert target.threshold == BASELINE_WITHIN and target.measured == 0.96 and target.passed is True
    worse = _results(sign_ps256=_pairs("baseline", [940, 940, 1_000], [1_000, 1_000, 1_000]))
    assert next(t for t in evaluate_targets(worse) if "baseline" in t.name).passed is False


def test_table_prints_each_figure_with_its_range() -> None:
    runs = _pairs("bare", [12_000, 11_000, 12_500], [30_000, 20_000, 21_000])
    runs += [_run(n, "baseline", v) for n, v in enumerate((11_500, 11_000, 12_000))]
    results = _results(get_key=runs)
    results["meta"]["baseline"] = {"path": "/tmp/old", "commit": "abc"}
    table = format_table(results, evaluate_targets(results))
    assert "12,000 [11k-12.5k]" in table  # kluis ops/s: median [min-max]
    assert "21,000 [20k-30k]" in table  # bare ceiling
    assert "55% [40-60%]" in table  # kluis/bare per round: 0.40, 0.55, 0.595
    assert "kluis/baseline" in table and "104% [100-104%]" in table
    assert "median of 3 alternating rounds" in table


def _ceiling_rounds() -> list[dict[str, Any]]:
    """Three rounds of an operation with its raw, bare and bare crypto ceilings (alternating order)."""
    rates = (  # kluis, raw, bare, bare_crypto per round
        (3_000.0, 5_000.0, 30_000.0, 4_000.0),  # 0.8 of raw; kluis 0.75 of bare crypto
        (2_000.0, 4_000.0, 20_000.0, 2_400.0),  # a slow round: 0.6; 0.8333
        (3_300.0, 5_000.0, 30_000.0, 3_500.0),  # 0.7; 0.9429
    )
    runs = []
    for n, (k, r, b, c) in enumerate(rates):
        runs += [_run(n, "kluis", k, p50_ms=1.0, p99_ms=2.0), _run(n, "raw", r), _run(n, "bare", b),
                 _run(n, "bare_crypto", c)]  # fmt: skip
    return runs


def test_combine_takes_ratios_between_two_ceilings_per_round_too() -> None:
    out = combine(_ceiling_rounds(), pairs=[("bare_crypto", "raw"), ("bare_crypto", "baseline")])
    assert out["bare_crypto_ops_s"] == 3_500.0 and out["spread"]["bare_crypto_ops_s"] == [2_400.0, 4_000.0]
    # per round 0.8, 0.6, 0.7 -> 0.7; the ratio of the medians (3,500 / 5,000) happens to agree, so check the spread
    assert out["bare_crypto_over_raw"] == 0.7 and out["spread"]["bare_crypto_over_raw"] == [0.6, 0.8]
    assert out["kluis_over_bare_crypto"] == 0.8333 and out["spread"]["kluis_over_bare_crypto"] == [0.75, 0.9429]
    assert "bare_crypto_over_baseline" not in out  # no baseline ran: no ratio, not even None
    skewed = _ceiling_rounds()
    skewed[7]["ops_s"] = 6_000.0  # round 1's bare crypto: 1.5 of raw; the median of 0.8, 1.5, 0.7 is 0.8 (mean 1.0)
    assert combine(skewed, pairs=[("bare_crypto", "raw")])["bare_crypto_over_raw"] == 0.8
    zero = [_run(0, "kluis", 1.0), _run(0, "raw", 0.0), _run(0, "bare_crypto", 1.0)]
    assert combine(zero, pairs=[("bare_crypto", "raw")])["bare_crypto_over_raw"] is None
    assert "bare_crypto_over_raw" not in combine(_ceiling_rounds())  # only the pairs asked for


def test_table_and_json_carry_the_http_stacks_crypto_ceiling(tmp_path: Path) -> None:
    runs = _ceiling_rounds()
    ops = {"sign_ps256": {"label": "RSA-2048 sign PS256", **combine(runs, pairs=CEILING_PAIRS), "runs": runs},
           "get_key": {"label": "get key", **combine(_pairs("bare", [10_000] * 3, [20_000] * 3))}}  # fmt: skip
    meta = {"workers": 2, "cpus": 2, "client": "wrk", "connections": 32, "duration": 1.0, "repeat": 3}
    results = {"meta": meta, "operations": ops}
    table = format_table(results, evaluate_targets(results))
    header = next(line for line in table.splitlines() if "bare crypto/raw" in line)
    assert header.split() == ["operation", "raw", "ops/s", "bare", "crypto", "ops/s", "bare", "crypto/raw", "kluis",
                              "ops/s", "kluis/bare", "crypto"]  # fmt: skip
    lines = table.splitlines()
    section = lines[lines.index(header) + 2 : lines.index("", lines.index(header))]
    assert len(section) == 1  # get key has no raw primitive, so no bare crypto ceiling: no row
    row = section[0]
    assert row.startswith("RSA-2048 sign PS256") and "3,500 [2.4k-4k]" in row
    assert "70% [60-80%]" in row and "83% [75-94%]" in row  # bare crypto/raw, kluis/bare crypto
    assert "5,000 [4k-5k]" in row and "3,000 [2k-3.3k]" in row  # raw and kluis, beside them
    write_json(results, evaluate_targets(results), tmp_path / "r.json")
    saved = json.loads((tmp_path / "r.json").read_text())["operations"]["sign_ps256"]
    assert saved["bare_crypto_over_raw"] == 0.7 and saved["spread"]["kluis_over_bare_crypto"] == [0.75, 0.9429]
    write_chart(results, tmp_path / "r.png")  # the extra series draws
    assert (tmp_path / "r.png").stat().st_size > 0


def test_ranges_of_a_million_and_more_are_in_millions() -> None:
    from benchmarks.report import _span

    assert _span([859_000.0, 1_710_000.0], "n") == " [859k-1.71M]"
    assert _span([999_000.0, 999_600.0], "n") == " [999k-1M]"


def test_the_share_of_a_get_is_shown_for_kluis_and_the_bare_endpoint(tmp_path: Path) -> None:
    """ES256's target is a share of get key's rate; the bare endpoint's crypto route over its bare GET
    (same rounds) is that share without any per-request work, printed beside kluis's."""
    runs = []
    for n, (k, g, c, bg) in enumerate(((500.0, 1_000.0, 2_000.0, 4_000.0), (450.0, 1_000.0, 2_200.0, 4_000.0),
                                       (600.0, 1_000.0, 1_800.0, 4_000.0))):  # fmt: skip
        runs += [_run(n, "kluis", k, p50_ms=1.0, p99_ms=2.0), _run(n, "get_key", g), _run(n, "raw", 9_000.0),
                 _run(n, "bare", 3_000.0), _run(n, "bare_crypto", c), _run(n, "bare_get", bg)]  # fmt: skip
    entry = combine(runs, pairs=CEILING_PAIRS)
    assert entry["kluis_over_get_key"] == 0.5 and entry["spread"]["kluis_over_get_key"] == [0.45, 0.6]
    assert entry["bare_crypto_over_bare_get"] == 0.5 and entry["spread"]["bare_crypto_over_bare_get"] == [0.45, 0.55]
    meta = {"workers": 2, "cpus": 2, "client": "wrk", "connections": 32, "duration": 1.0, "repeat": 3}
    results = {"meta": meta, "operations": {"sign_es256": {"label": "EC P-256 sign ES256", **entry, "runs": runs}}}
    table = format_table(results, evaluate_targets(results))
    lines = table.splitlines()
    header = next(n for n, line in enumerate(lines) if "kluis: op/get key" in line)
    assert lines[header + 2].startswith("EC P-256 sign ES256")
    assert lines[header + 2].split()[-4:] == ["50%", "[45-60%]", "50%", "[45-55%]"]


def test_an_ablated_baseline_says_so() -> None:
    ops = {"get_key": {"label": "get key", **combine(_pairs("baseline", [500.0] * 3, [1_000.0] * 3))}}
    meta = {"workers": 2, "cpus": 2, "client": "wrk", "connections": 32, "duration": 1.0, "repeat": 3,
            "baseline": {"path": "/k", "commit": "abc", "ablated": "token,authz"}}  # fmt: skip
    results = {"meta": meta, "operations": ops}
    table = format_table(results, evaluate_targets(results))
    line = next(line for line in table.splitlines() if line.startswith("baseline:"))
    assert "with token,authz replaced by stand-ins" in line
    assert "50% [50-50%]" in table  # kluis / the ablated baseline

"""The arithmetic of repeated, alternating runs: order, median, spread and per-round ratios.

Every figure the suite reports is the median of ``repeat`` rounds. In each round every *subject*
of an operation (``kluis``, its ceilings ``raw``, ``bare`` and ``bare_crypto``, and ``baseline`` when a
baseline checkout is given) is measured once, the order reversed every other round, so the runs alternate
(kluis, raw, bare, bare, raw, kluis, ...) and a burst of foreign load hits one round of all of
them rather than all runs of one. A ratio such as ``kluis_over_raw`` is taken per round (two
measurements seconds apart) and its median reported; a target is judged on that median.

A *run* is a dict with at least ``round`` (0-based), ``subject`` and ``ops_s``; load runs also
carry ``p50_ms``, ``p99_ms`` and ``errors`` (see ``LoadResult.as_dict``).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["alternation", "combine", "median", "spread"]


def alternation(subjects: Sequence[str], repeat: int) -> list[tuple[int, str]]:
    """The order of runs: ``repeat`` rounds of every subject, in the given order in even rounds and
    reversed in odd ones (A B, B A, A B, ...), so a machine that speeds up or slows down over the
    rounds does not favour whichever subject always runs first (seen: the same server from 13k to 23k
    req/s over three rounds while the machine warmed up).

    ``alternation(["kluis", "raw"], 3)`` -> ``[(0, "kluis"), (0, "raw"), (1, "raw"), (1, "kluis"), (2, "kluis"),
    (2, "raw")]``. Raises ValueError when ``repeat`` < 1 or there is no subject.
    """
    if repeat < 1 or not subjects:
        raise ValueError(f"need at least one round and one subject (repeat={repeat}, subjects={list(subjects)})")
    return [(r, s) for r in range(repeat) for s in (subjects if r % 2 == 0 else list(reversed(subjects)))]


def median(values: Sequence[float]) -> float:
    """The median (the mean of the middle two for an even count); ValueError when empty."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def spread(values: Sequence[float], digits: int = 4) -> list[float]:
    """``[min, max]`` of the values, rounded to ``digits`` decimals; ValueError when empty."""
    if not values:
        raise ValueError("spread of no values")
    return [round(float(min(values)), digits), round(float(max(values)), digits)]


def combine(
    runs: Sequence[dict[str, Any]], main: str = "kluis", pairs: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    """Summarize one operation's runs: medians, ``[min, max]`` spreads and per-round ratios.

    Returns ``ops_s``, ``p50_ms``, ``p99_ms`` (medians over ``main``'s runs), ``errors`` (summed),
    ``rounds``, and for every other subject S (in order of first appearance) ``S_ops_s`` (its median)
    and ``<main>_over_S`` (the median over rounds of ``main``'s ops/s divided by S's in the same
    round; rounds where S measured 0 are left out, and the ratio is None if none is left).
    For each ``(A, B)`` of ``pairs`` where both subjects ran, ``A_over_B`` is the same per-round
    ratio between those two (e.g. ``bare_crypto_over_raw``: the ceiling the HTTP stack leaves).
    ``spread`` maps each of those keys to ``[min, max]``; ``foreign_cores_max`` is the most other
    processes took during any run (None when not measured). Raises ValueError when ``main`` has no run.
    """
    mine = {r["round"]: r for r in runs if r["subject"] == main}
    if not mine:
        raise ValueError(f"no {main} run to summarize")
    ops = [float(r["ops_s"]) for r in mine.values()]
    out: dict[str, Any] = {"ops_s": round(median(ops), 1), "spread": {"ops_s": spread(ops, 1)}}
    for key in ("p50_ms", "p99_ms"):
        values = [float(r[key]) for r in mine.values() if key in r]
        if values:
            out[key] = round(median(values), 3)
            out["spread"][key] = spread(values, 3)
    out["errors"] = sum(int(r.get("errors", 0)) for r in mine.values())
    out["rounds"] = len(mine)
    others = list(dict.fromkeys(r["subject"] for r in runs if r["subject"] != main))
    for subject in others:
        theirs = _rates(runs, subject)
        values = list(theirs.values())
        out[f"{subject}_ops_s"] = round(median(values), 1)
        out["spread"][f"{subject}_ops_s"] = spread(values, 1)
        _ratio(out, f"{main}_over_{subject}", {n: float(r["ops_s"]) for n, r in mine.items()}, theirs)
    for a, b in pairs:
        if a in others and b in others:
            _ratio(out, f"{a}_over_{b}", _rates(runs, a), _rates(runs, b))
    foreign = [f for r in runs if (f := (r.get("cpu") or {}).get("foreign_cores")) is not None]
    out["foreign_cores_max"] = max(foreign) if foreign else None
    return out


def _rates(runs: Sequence[dict[str, Any]], subject: str) -> dict[int, float]:
    """``subject``'s ops/s by round."""
    return {r["round"]: float(r["ops_s"]) for r in runs if r["subject"] == subject}


def _ratio(out: dict[str, Any], key: str, num: dict[int, float], den: dict[int, float]) -> None:
    """``out[key]``: the median over the rounds both ran (and ``den`` > 0) of ``num / den``, None when
    there is no such round; ``out["spread"][key]`` its [min, max]."""
    ratios = [num[n] / v for n, v in den.items() if n in num and v > 0]
    out[key] = round(median(ratios), 4) if ratios else None
    if ratios:
        out["spread"][key] = spread(ratios)

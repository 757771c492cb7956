"""Turn one run's measurements into target verdicts, a printed table, a JSON file and a PNG chart.

Figures are the medians :func:`benchmarks.stats.combine` computed, printed with their
``[min-max]`` over the rounds; a target is judged on the median. Results written before
``--repeat`` existed (no ``spread``) are read too, and printed without ranges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BASELINE_WITHIN", "Target", "evaluate_targets", "format_table", "write_chart", "write_json"]


BASELINE_WITHIN = 0.95  # current / baseline: "within 5% of before"


@dataclass
class Target:
    name: str
    measured: float | None
    threshold: float
    unit: str
    higher_is_better: bool = True
    spread: list[float] | None = None  # [min, max] over the rounds, for the reader; never judged

    @property
    def passed(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured >= self.threshold if self.higher_is_better else self.measured < self.threshold

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "n/a"}[self.passed]

    def describe(self) -> str:
        sign = ">=" if self.higher_is_better else "<"
        got = "-" if self.measured is None else _fmt(self.measured, self.unit) + _span(self.spread, self.unit)
        return f"{self.name}: {got} (target {sign} {_fmt(self.threshold, self.unit)})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": self.measured,
            "threshold": self.threshold,
            "unit": self.unit,
            "spread": self.spread,
            "comparison": ">=" if self.higher_is_better else "<",
            "result": self.verdict,
        }


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.0f}%"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:,.0f} {unit}"


def _ok(results: dict[str, Any]) -> dict[str, Any]:
    """The operations that were measured (a failed one has no numbers to judge)."""
    return {k: v for k, v in results["operations"].items() if not v.get("failed")}


def _ops(results: dict[str, Any], op: str) -> float | None:
    entry = _ok(results).get(op)
    return None if entry is None else float(entry["ops_s"])


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _figure(results: dict[str, Any], op: str, key: str) -> tuple[float | None, list[float] | None]:
    """The median ``key`` of operation ``op`` and its [min, max] (None, None when not measured)."""
    entry = _ok(results).get(op, {})
    return entry.get(key), entry.get("spread", {}).get(key)


def evaluate_targets(results: dict[str, Any]) -> list[Target]:
    """Every target, judged on the medians in ``results`` (None: not measured, neither PASS nor MISS).

    The comparison with a ``--baseline`` checkout is added only when one was measured.
    """
    get = _ops(results, "get_key")

    def of(name: str, op: str, key: str, threshold: float) -> Target:
        value, spread = _figure(results, op, key)
        return Target(name, value, threshold, "%", spread=spread)

    def share_of_get(name: str, op: str, threshold: float) -> Target:
        """Per-round ``op`` / get key when get key ran in ``op``'s rounds (the runner pairs them), else
        the ratio of the two medians (results of an older suite)."""
        if _figure(results, op, "kluis_over_get_key")[0] is not None:
            return of(name, op, "kluis_over_get_key", threshold)
        return Target(name, _ratio(_ops(results, op), get), threshold, "%")

    p50, p50_spread = _figure(results, "create_rsa", "p50_ms")
    targets = [
        Target("get key throughput", get, 10_000, "req/s", spread=_figure(results, "get_key", "ops_s")[1]),
        # the targets of "Performance, round two" (issue 13)
        of("get key / bare GET", "get_key", "kluis_over_bare", 0.55),
        of("RSA-2048 sign PS256 / raw", "sign_ps256", "kluis_over_raw", 0.60),
        of("RSA-2048 decrypt / raw", "decrypt_rsa_oaep256", "kluis_over_raw", 0.60),
        share_of_get("get secret / get key", "get_secret", 0.90),
        share_of_get("EC P-256 sign / get key", "sign_es256", 0.60),
        share_of_get("AES-256-GCM encrypt / get key", "encrypt_a256gcm", 0.60),
        Target("create RSA-2048 p50 (pool)", p50, 5.0, "ms", higher_is_better=False, spread=p50_spread),
    ]
    for op, entry in _ok(results).items():
        if entry.get("kluis_over_baseline") is not None:
            targets.append(of(f"{entry['label']} / baseline", op, "kluis_over_baseline", BASELINE_WITHIN))
    sizes = results.get("scaling", {}).get("sizes", {})
    if len(sizes) >= 2:
        keys = sorted(sizes, key=int)
        lo, hi = keys[0], keys[-1]
        for op, label in (("get_key", "get key"), ("sign_es256", "ES256 sign")):
            a, b = sizes[lo].get(op, {}).get("ops_s"), sizes[hi].get(op, {}).get("ops_s")
            targets.append(Target(f"scaling {label}: {int(hi):,} / {int(lo):,} keys", _ratio(b, a), 0.90, "%"))
        top = sizes[hi]  # cold gets spread over every stored key against hot gets, same rounds (issue 13)
        cold, hot = top.get("get_key_cold", {}), top.get("get_key", {})
        targets.append(Target(f"cold / hot get at {int(hi):,} keys", _ratio(cold.get("ops_s"), hot.get("ops_s")),
                              0.75, "%"))  # fmt: skip
        targets.append(Target(f"cold get p99 at {int(hi):,} keys", cold.get("p99_ms"), 10.0, "ms",
                              higher_is_better=False))  # fmt: skip
    return targets


def _cell(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "%":
        return f"{value * 100:.0f}%"
    if kind == "ms":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def _short(value: float, kind: str) -> str:
    if kind == "%":
        return f"{value * 100:.0f}"
    if kind == "ms":
        return f"{value:.2f}"
    if value >= 999_500:  # 1.71M, not 1.71e+03k (AES-GCM's raw rate)
        return f"{value / 1e6:.3g}M"
    return f"{value / 1000:.3g}k" if value >= 1000 else f"{value:.0f}"


def _span(spread: list[float] | None, kind: str) -> str:
    """``[min-max]`` compactly (``21.1k-22.3k``, ``49-53%``); empty when there is no spread."""
    if not spread:
        return ""
    return f" [{_short(spread[0], kind)}-{_short(spread[1], kind)}{'%' if kind == '%' else ''}]"


def _fig(entry: dict[str, Any], key: str, kind: str) -> str:
    """The median ``entry[key]`` with its range over the rounds beside it."""
    value = entry.get(key)
    return "-" if value is None else _cell(value, kind) + _span(entry.get("spread", {}).get(key), kind)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
    return "\n".join(out)


def _foreign(entry: dict[str, Any]) -> str:
    value = entry.get("foreign_cores_max", entry.get("cpu", {}).get("foreign_cores"))
    return "-" if value is None else f"{value:.2f}"


def format_table(results: dict[str, Any], targets: list[Target]) -> str:
    """The printed report: operations, the HTTP stack's crypto ceiling, baseline comparison, peer, scaling,
    noise and target verdicts."""
    meta = results["meta"]
    repeat = meta.get("repeat")
    parts = [
        f"python -m benchmarks: {meta['workers']} server workers, {meta['cpus']} CPUs, client {meta['client']} "
        f"({meta['connections']} connections, {meta['duration']} s per run)",
        f"every figure: median of {repeat} alternating rounds (kluis, ceilings, kluis, ...) [min-max over the rounds];"
        " a ratio is taken per round; p50/p99: medians"
        if repeat
        else "one run per figure",
        "",
    ]
    ops = results["operations"]
    rows = []
    for e in ops.values():
        if e.get("failed"):
            rows.append([e["label"], "FAILED", "-", "-", "-", "-", "-", "-", "-", "-"])
            continue
        rows.append([
            e["label"], _fig(e, "ops_s", "n"), _cell(e.get("p50_ms"), "ms"), _cell(e.get("p99_ms"), "ms"),
            _fig(e, "raw_ops_s", "n"), _fig(e, "kluis_over_raw", "%"),
            _fig(e, "bare_ops_s", "n"), _fig(e, "kluis_over_bare", "%"),
            str(e.get("errors", 0)), _foreign(e),
        ])  # fmt: skip
    headers = ["operation", "ops/s", "p50 ms", "p99 ms", "raw ops/s", "kluis/raw", "bare ops/s", "kluis/bare"]
    parts.append(_table([*headers, "errors", "other CPU"], rows))
    ceiled = [e for e in ops.values() if not e.get("failed") and e.get("bare_crypto_ops_s") is not None]
    if ceiled:
        parts += ["", "the HTTP stack's ceiling: the bare endpoint doing only each operation's crypto on the same "
                  "request (bare crypto: body, JSON, base64url, the raw call, JSON answer), same rounds"]  # fmt: skip
        crow = [
            [e["label"], _fig(e, "raw_ops_s", "n"), _fig(e, "bare_crypto_ops_s", "n"),
             _fig(e, "bare_crypto_over_raw", "%"), _fig(e, "ops_s", "n"), _fig(e, "kluis_over_bare_crypto", "%")]
            for e in ceiled
        ]  # fmt: skip
        heads = ["operation", "raw ops/s", "bare crypto ops/s", "bare crypto/raw", "kluis ops/s", "kluis/bare crypto"]
        parts.append(_table(heads, crow))
        shared = [e for e in ceiled if e.get("bare_crypto_over_bare_get") is not None]
        if shared:  # operations whose target is a share of get key's rate: that share on the bare endpoint
            note = ("the same share of a GET's rate: kluis's operation / kluis's get key, and the bare endpoint's "
                    "crypto route / its bare GET (no per-request work of its own), same rounds")  # fmt: skip
            parts += ["", note]
            srow = [
                [e["label"], _fig(e, "kluis_over_get_key", "%"), _fig(e, "bare_crypto_over_bare_get", "%")]
                for e in shared
            ]
            parts.append(_table(["operation", "kluis: op/get key", "bare: crypto/GET"], srow))
    compared = [e for e in ops.values() if not e.get("failed") and e.get("baseline_ops_s") is not None]
    if compared:
        base = meta.get("baseline", {})
        ablated = f", with {base['ablated']} replaced by stand-ins (benchmarks.ablate)" if base.get("ablated") else ""
        parts += ["", f"baseline: kluis of {base.get('path')} ({base.get('commit') or 'no commit'}){ablated} against "
                  f"this checkout ({meta.get('commit') or 'no commit'}), same rounds"]  # fmt: skip
        brow = [
            [e["label"], _fig(e, "ops_s", "n"), _fig(e, "baseline_ops_s", "n"), _fig(e, "kluis_over_baseline", "%")]
            for e in compared
        ]
        parts.append(_table(["operation", "kluis ops/s", "baseline ops/s", "kluis/baseline"], brow))
    peer = results.get("peer", {})
    if peer.get("skipped"):
        parts += ["", f"peer moto: skipped ({peer['skipped']})"]
    elif peer.get("operations"):
        parts += ["", "peer: moto KMS server (Werkzeug, HTTPS; it closes the connection after every response)"]
        prow = []
        for e in peer["operations"].values():
            ratio = f"{e['kluis_over_moto']:.1f}x" if e.get("kluis_over_moto") else "-"
            prow.append([
                e["label"], _fig(e, "ops_s", "n"), _cell(e.get("p50_ms"), "ms"), _cell(e.get("p99_ms"), "ms"),
                e["kluis_op"], _cell(e.get("kluis_ops_s"), "n"), ratio,
            ])  # fmt: skip
        parts.append(
            _table(["moto operation", "ops/s", "p50 ms", "p99 ms", "vs kluis", "kluis ops/s", "kluis/moto"], prow)
        )
    sizes = results.get("scaling", {}).get("sizes", {})
    if sizes:
        parts += [
            "",
            "scaling, by number of keys stored (bulk-loaded): the same load at every size (get over 10 keys,",
            "ES256 sign with one key), and 'cold get' spread over all stored keys (for information)",
        ]
        srow = []
        for n, e in sorted(sizes.items(), key=lambda kv: int(kv[0])):
            g, s, c = e.get("get_key", {}), e.get("sign_es256", {}), e.get("get_key_cold", {})
            srow.append([
                f"{int(n):,}", _fig(g, "ops_s", "n"), _cell(g.get("p50_ms"), "ms"), _cell(g.get("p99_ms"), "ms"),
                _fig(s, "ops_s", "n"), _cell(s.get("p50_ms"), "ms"), _cell(s.get("p99_ms"), "ms"),
                _fig(c, "ops_s", "n"), _cell(c.get("p99_ms"), "ms"), f"{e.get('load_seconds', 0):.1f}",
            ])  # fmt: skip
        parts.append(
            _table(
                ["keys", "get ops/s", "p50", "p99", "sign ops/s", "p50", "p99", "cold get ops/s", "p99", "load s"], srow
            )
        )
    noise = meta.get("foreign_cores_mean")
    if noise is not None:
        parts += [
            "",
            f"other processes on the machine used {noise:.2f} cores on average during the measurements "
            f"(max {meta.get('foreign_cores_max', 0):.2f})" + ("; the numbers are NOISY" if noise > 0.25 else ""),
        ]
    parts += ["", "targets (judged on the median)"]
    for t in targets:
        parts.append(f"  [{t.verdict}] {t.describe()}")
    return "\n".join(parts)


def write_json(results: dict[str, Any], targets: list[Target], path: Path) -> None:
    path.write_text(json.dumps({**results, "targets": [t.as_dict() for t in targets]}, indent=2))


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = results["operations"]
    names = list(ops)
    sizes = results.get("scaling", {}).get("sizes", {})
    fig, axes = plt.subplots(1, 2 if sizes else 1, figsize=(16 if sizes else 12, 6.5), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1]} if sizes else None)  # fmt: skip
    ax = axes[0][0]
    x = list(range(len(names)))

    def column(key: str) -> tuple[list[float], list[list[float]] | None]:
        """Medians of ``key`` per operation (0: none) and their distances to [min, max] (error bars)."""
        values = [ops[n].get(key) or 0.0 for n in names]
        spans = [ops[n].get("spread", {}).get(key) or [v, v] for n, v in zip(names, values, strict=True)]
        return values, [[v - lo for v, (lo, _) in zip(values, spans, strict=True)],
                        [hi - v for v, (_, hi) in zip(values, spans, strict=True)]]  # fmt: skip

    series = [
        ("kluis", *column("ops_s"), "#1f77b4"),
        ("raw cryptography (same processes)", *column("raw_ops_s"), "#ff7f0e"),
        ("bare endpoint (same HTTP stack)", *column("bare_ops_s"), "#2ca02c"),
    ]
    if any(ops[n].get("bare_crypto_ops_s") for n in names):
        series.append(("bare endpoint + the operation's crypto", *column("bare_crypto_ops_s"), "#8c564b"))
    if any(ops[n].get("baseline_ops_s") for n in names):
        series.insert(1, ("baseline checkout", *column("baseline_ops_s"), "#17becf"))
    peer_ops = results.get("peer", {}).get("operations", {})
    if peer_ops:
        by_kluis = {e["kluis_op"]: e["ops_s"] for e in peer_ops.values()}
        series.append(("moto KMS", [by_kluis.get(n, 0.0) for n in names], None, "#9467bd"))
    width = 0.8 / len(series)
    for i, (label, values, err, color) in enumerate(series):
        xs = [p + (i - (len(series) - 1) / 2) * width for p in x]
        ax.bar(xs, [v if v else float("nan") for v in values], width, yerr=err, capsize=2, label=label, color=color)
    for p, n in zip(x, names, strict=True):
        top = (ops[n].get("spread", {}).get("ops_s") or [0.0, ops[n]["ops_s"]])[1]  # above the error bar
        ax.annotate(f"{ops[n]['ops_s']:,.0f}", (p - (len(series) - 1) / 2 * width, top),
                    ha="center", va="bottom", fontsize=7, rotation=90)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([ops[n]["label"] for n in names], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("operations per second (log)")
    meta = results["meta"]
    ax.set_title(
        f"kluis vs its ceilings: {meta['workers']} workers, {meta['cpus']} CPUs, {meta['client']} "
        f"-c{meta['connections']}, median of {meta.get('repeat', 1)} runs of {meta['duration']} s [min-max]"
    )
    ax.legend(fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    if sizes:
        ax2 = axes[0][1]
        ns = sorted(sizes, key=int)
        lines = (
            ("get_key", "get key (same 10 keys)", "#1f77b4"),
            ("sign_es256", "ES256 sign (same key)", "#d62728"),
            ("get_key_cold", "get key, random over all stored (info)", "#7f7f7f"),
        )
        for op, label, color in lines:
            ax2.plot([int(n) for n in ns], [sizes[n].get(op, {}).get("ops_s", 0) for n in ns], "o-", label=label,
                     color=color)  # fmt: skip
        ax2.set_xscale("log")
        ax2.set_ylim(bottom=0)
        ax2.set_xlabel("keys stored")
        ax2.set_ylabel("operations per second")
        ax2.set_title("scaling with stored keys")
        ax2.legend(fontsize=8)
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

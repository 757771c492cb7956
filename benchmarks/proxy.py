"""What the CONNECT proxy costs per request: get key straight to kluis's listener against the same
request through the proxy (zero-change mode, as an SDK with ``HTTPS_PROXY`` makes it).

``python -m benchmarks.proxy [--repeat 5] [--duration 4] [--connections 32]`` starts one fresh
``kluis serve`` with its proxy, creates an RSA-2048 key, and measures in alternating rounds
(direct, proxied, direct, ...), both with the suite's Python load client (wrk cannot speak
CONNECT), so the two differ only by the tunnel. Every tunnel is opened once and kept alive, as the
SDKs' connection pools do, so this is the per-request cost of copying bytes through the proxy; the
CONNECT itself happens once per connection. Printed: medians with [min-max] of ops/s and p50, the
proxied/direct ratio per round, and the CPU the proxy took per request (the supervisor process,
where the proxy runs as a thread, measured from ``/proc``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.load import run_load
from benchmarks.noise import tree_cpu_seconds
from benchmarks.scenarios import OPERATIONS, prepare
from benchmarks.server import BENCH_THROTTLE_LIMIT, KluisProcess
from benchmarks.stats import alternation, median, spread

__all__ = ["main", "measure"]

_VAULT_AUTHORITY = "https://default.vault.azure.net:443"  # what a zero-change client asks the proxy for


def _own_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` alone (not its children): the supervisor, where the proxy runs."""
    return tree_cpu_seconds(pid, include_root=True) - tree_cpu_seconds(pid)


def measure(server: KluisProcess, *, repeat: int, duration: float, connections: int) -> dict[str, Any]:
    """Alternating direct / proxied get-key rounds on ``server`` (started with a proxy port); the
    runs and their medians as a dict (ops/s, p50 ms, ratio, proxy CPU µs per request)."""
    assert server.process is not None and server.proxy_port > 0
    scenario = OPERATIONS["get_key"].scenario(prepare(server, ["get_key"]))
    runs: list[dict[str, Any]] = []
    for rnd, subject in alternation(["direct", "proxied"], repeat):
        cpu0 = _own_cpu(server.process.pid)
        if subject == "direct":
            result = run_load(server.url, scenario, duration=duration, connections=connections, client="python")
        else:
            result = run_load(_VAULT_AUTHORITY, scenario, duration=duration, connections=connections,
                              client="python", proxy=("127.0.0.1", server.proxy_port))  # fmt: skip
        cpu = _own_cpu(server.process.pid) - cpu0
        ok = max(result.requests - result.errors, 1)
        runs.append({"round": rnd, "subject": subject, **result.as_dict(), "proxy_cpu_us": cpu / ok * 1e6})
    by = {s: [r for r in runs if r["subject"] == s] for s in ("direct", "proxied")}
    ratios = [p["ops_s"] / d["ops_s"] for d, p in zip(by["direct"], by["proxied"], strict=True) if d["ops_s"]]
    summary: dict[str, Any] = {
        s: {
            "ops_s": median([r["ops_s"] for r in rs]), "ops_s_spread": spread([r["ops_s"] for r in rs]),
            "p50_ms": median([r["p50_ms"] for r in rs]), "p50_ms_spread": spread([r["p50_ms"] for r in rs]),
            "errors": sum(r["errors"] for r in rs),
        }
        for s, rs in by.items()
    }  # fmt: skip
    summary["proxied_over_direct"] = {"median": median(ratios), "spread": spread(ratios)}
    # the supervisor's own CPU in direct runs is its baseline (scheduler thread, metrics): subtract it
    idle = median([r["proxy_cpu_us"] for r in by["direct"]])
    summary["proxy_cpu_us_per_request"] = median([r["proxy_cpu_us"] for r in by["proxied"]]) - idle
    return {"runs": runs, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.proxy", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="Alternating rounds (at least 3).")
    p.add_argument("--duration", type=float, default=4.0, help="Seconds per run.")
    p.add_argument("--connections", type=int, default=32, help="Keep-alive connections (tunnels).")
    p.add_argument("--workers", type=int, default=2, help="Server workers.")
    args = p.parse_args(argv)
    args.repeat = max(args.repeat, 3)
    with tempfile.TemporaryDirectory(prefix="kluis-proxy-bench-") as tmp:
        server = KluisProcess(Path(tmp) / "data", workers=args.workers, key_pool=0, proxy_port=-1,
                              throttle_limit=BENCH_THROTTLE_LIMIT).start()  # fmt: skip
        try:
            result = measure(server, repeat=args.repeat, duration=args.duration, connections=args.connections)
        finally:
            server.stop()
    s = result["summary"]
    for subject in ("direct", "proxied"):
        x = s[subject]
        lo, hi = x["ops_s_spread"][0], x["ops_s_spread"][-1]
        print(f"get key {subject:8} {x['ops_s']:9,.0f}/s [{lo:,.0f}-{hi:,.0f}]", end="  ")
        print(f"p50 {x['p50_ms']:.2f} ms  errors {x['errors']}")
    r = s["proxied_over_direct"]
    print(f"proxied / direct: {r['median']:.0%} [{r['spread'][0]:.0%}-{r['spread'][-1]:.0%}] per round; "
          f"proxy CPU {s['proxy_cpu_us_per_request']:.1f} µs per request")  # fmt: skip
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "proxy.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The whole suite, in order: kluis with its ceilings (and a baseline checkout), moto peer, scaling, report.

Every figure is the median of ``--repeat`` rounds in which each subject of an operation (kluis,
``baseline`` when ``--baseline`` is given, raw ``cryptography``, the bare endpoint, and the bare
endpoint doing the operation's own crypto, ``bare_crypto``) runs once, in turn; ratios are per
round (:mod:`benchmarks.stats`). Every run is kept in the JSON.
Entry point: :func:`main` (``python -m benchmarks [flags]``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks.ablate import parse_steps
from benchmarks.bare import CRYPTO, BareServer
from benchmarks.bulk import bulk_load
from benchmarks.load import Scenario, ensure_wrk, run_load
from benchmarks.moto_peer import MOTO_PAIRS, MotoServer, moto_available
from benchmarks.noise import CpuMeter, wait_idle, wait_quiet
from benchmarks.profile import Recording, format_breakdown, py_spy, response_frame
from benchmarks.raw import RawCeiling
from benchmarks.report import evaluate_targets, format_table, write_chart, write_json
from benchmarks.scenarios import BASELINE_OPS, OPERATIONS, Fixture, prepare, scaling_scenarios
from benchmarks.server import BENCH_THROTTLE_LIMIT, KluisProcess
from benchmarks.stats import alternation, combine

__all__ = ["main", "parse_args", "run"]

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
PROFILE_SECONDS = 6.0  # the profiled run of each operation (its own, not counted in any figure)
MIN_REPEAT = 3
BARE = {  # the bare ceiling of a GET and of a POST operation
    "GET": Scenario("bare GET", "GET", "/bare"),
    "POST": Scenario("bare POST", "POST", "/bare", '{"alg":"ES256","value":"x"}'),
}

# Per-round ratios between two ceilings of an operation (benchmarks.stats.combine's ``pairs``): the bare
# endpoint doing the operation's own crypto against the raw call, i.e. the share of raw cryptography
# the HTTP stack leaves (kluis_over_bare_crypto, how close kluis gets to that, comes with every subject).
# For an operation whose target is a share of get key's rate, the bare crypto endpoint against the bare
# GET in the same rounds: that share for an app with no per-request work of its own (the stack's ceiling
# of the target; kluis_over_get_key is what kluis reaches).
CEILING_PAIRS = (("bare_crypto", "raw"), ("bare_crypto", "bare_get"))
# Operations whose bare crypto endpoint --profile breaks down too (the HTTP stack's share of a signature).
PROFILED_BARE_CRYPTO = ("sign_ps256", "sign_es256")

# Operations whose target is a share of get key's rate (issue 13): get key runs in their own rounds too,
# so the ratio is taken per round (seconds apart) like every other, not between medians measured minutes
# apart (a drift of the machine between the two operations' rounds moved that ratio by ~10%).
PAIRED_WITH_GET_KEY = frozenset({"get_secret", "sign_es256", "encrypt_a256gcm"})

Run = dict[str, Any]  # one measurement (LoadResult.as_dict, or a raw rate), see benchmarks.stats


def _names(text: str, p: argparse.ArgumentParser, flag: str) -> list[str]:
    names = [o.strip() for o in text.split(",") if o.strip()]
    unknown = set(names) - set(OPERATIONS)
    if unknown:
        p.error(f"{flag}: unknown operation(s) {', '.join(sorted(unknown))} (known: {', '.join(OPERATIONS)})")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags -> namespace with defaults filled in (``ops``, ``baseline_ops``, ``sizes`` as lists); exits on misuse."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark a fresh kluis server against raw cryptography, a bare endpoint, an optional "
        "baseline checkout and moto; every figure is the median of alternating rounds.",
    )
    p.add_argument("--quick", action="store_true", help="~2 minutes: 1 s runs, smaller scaling run, still 3 rounds.")
    p.add_argument(
        "--repeat",
        type=int,
        default=MIN_REPEAT,
        help=f"Alternating rounds per figure (at least {MIN_REPEAT}); figures are their medians.",
    )
    p.add_argument("--duration", type=float, help="Seconds of each measured run (default 4; quick 1).")
    p.add_argument("--warmup", type=float, default=1.0, help="Unmeasured seconds before a subject's first round.")
    p.add_argument("--connections", type=int, default=32, help="Concurrent keep-alive connections.")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="Server workers and raw processes.")
    p.add_argument("--client", choices=["auto", "wrk", "python"], default="auto", help="Load generator.")
    p.add_argument("--load-processes", type=int, default=1, help="wrk threads / python client processes.")
    p.add_argument("--no-install", action="store_true", help="Do not apt-get install wrk when it is missing.")
    p.add_argument("--raw-seconds", type=float, help="Seconds of each raw-crypto run (default 2; quick 0.5).")
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="Before each run, wait up to this many seconds for other processes to go quiet (default 3; quick 0).",
    )
    p.add_argument("--create-rsa-rate", type=float, default=10.0, help="Paced create-RSA requests per second.")
    p.add_argument("--key-pool", type=int, default=16, help="Server's pre-generated RSA keys per worker.")
    p.add_argument("--scaling-sizes", help="Stored-key counts (default 10,10000,1000000; quick 10,100000).")
    p.add_argument("--no-scaling", action="store_true", help="Skip the scaling run.")
    p.add_argument("--no-peer", action="store_true", help="Skip the moto peer.")
    p.add_argument(
        "--database",
        default="sqlite",
        help="sqlite (default: the data dir's file), postgresql (a throw-away local PostgreSQL with its default, "
        "durable settings, started with initdb/pg_ctl and removed after), or a postgresql:// URL to use as it is.",
    )
    p.add_argument("--only", help=f"Comma-separated operations to run ({','.join(OPERATIONS)}).")
    p.add_argument(
        "--baseline",
        type=Path,
        help="Another kluis checkout (e.g. a git worktree of an older commit): serve its src too, from this venv, "
        "and alternate it with this checkout in every round of the --baseline-ops.",
    )
    p.add_argument("--audit", choices=("on", "off"), default="on",
                   help="This checkout's audit log (kluis serve --audit; default on, as kluis ships).")  # fmt: skip
    p.add_argument("--throttle-limit", type=int, default=BENCH_THROTTLE_LIMIT,
                   help="This checkout's per-vault throttle (kluis serve --throttle-limit; 0: off). The default "
                   "is so high it never answers 429 while its check still runs on every request (kluis's own "
                   "default, 100,000 per 10 s, is below what one vault now serves here). With --audit off and "
                   "0, measures what the later releases' per-request guarantees cost against a --baseline that "
                   "has neither.")  # fmt: skip
    p.add_argument("--baseline-audit", choices=("on", "off"), default="on",
                   help="The baseline's audit log: `--baseline . --baseline-audit off` measures what auditing "
                   "costs, in the same rounds (a checkout whose CLI has no --audit ignores it).")  # fmt: skip
    p.add_argument("--baseline-ablate", default="", metavar="STEPS",
                   help="Serve the baseline with these per-request steps replaced by constant stand-ins (a comma "
                   "list of benchmarks.ablate.STEPS, or all): `--baseline . --baseline-ablate all` measures what "
                   "kluis's guarantees (token, authorization, freshness check, event/audit, ...) cost, in the "
                   "same rounds. For measurement only: an ablated server skips checks.")  # fmt: skip
    p.add_argument("--baseline-ops", default=",".join(BASELINE_OPS),
                   help=f"Operations compared with --baseline (default {','.join(BASELINE_OPS)}).")  # fmt: skip
    p.add_argument(
        "--profile",
        action="store_true",
        help="After each operation's rounds, one more run under py-spy --native: CPU µs per request by category "
        "(TLS+HTTP, token, authorization, store, unsealing, crypto, JSON, ...) and the load generator's share.",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="Directory for the JSON and PNG results.")
    p.add_argument("--keep", action="store_true", help="Keep the temporary data dirs and server logs.")
    p.add_argument("--strict", action="store_true", help="Exit 1 when a target is missed.")
    args = p.parse_args(argv)
    if args.repeat < MIN_REPEAT:
        p.error(f"--repeat must be at least {MIN_REPEAT}: a median of fewer runs hides no outlier")
    args.duration = args.duration or (1.0 if args.quick else 4.0)
    args.raw_seconds = args.raw_seconds or (0.5 if args.quick else 2.0)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 3.0
    sizes = args.scaling_sizes or ("10,100000" if args.quick else "10,10000,1000000")
    args.sizes = sorted({int(s.replace("_", "")) for s in sizes.split(",") if s.strip()})
    args.ops = _names(args.only, p, "--only") if args.only else list(OPERATIONS)
    args.baseline_ops = [o for o in _names(args.baseline_ops, p, "--baseline-ops") if o in args.ops]
    if args.baseline is not None:
        args.baseline = args.baseline.expanduser().resolve()
        if not (args.baseline / "src" / "kluis" / "__init__.py").is_file():
            p.error(f"--baseline {args.baseline}: no src/kluis package there (give a kluis checkout)")
    if args.baseline_ablate:
        if args.baseline is None:
            p.error("--baseline-ablate needs --baseline (e.g. --baseline . for this checkout)")
        try:
            args.baseline_ablate = ",".join(parse_steps(args.baseline_ablate))
        except ValueError as e:
            p.error(f"--baseline-ablate: {e}")
    return args


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    client: str
    t0: float
    postgres: Any = None  # the throw-away PostgreSQL of --database postgresql (tests.pgserver.PostgresServer)

    def log(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    def rounds(self, subjects: dict[str, Callable[[int], Run]]) -> list[Run]:
        """``--repeat`` rounds of one run per subject, alternating; every run, in the order taken.

        Each subject is called with the round number (0-based) and returns one run; before each
        run, waits (up to ``--quiet-wait``) for other processes to calm down.
        """
        runs: list[Run] = []
        for rnd, subject in alternation(list(subjects), self.args.repeat):
            if self.args.quiet_wait > 0:
                waited, foreign = wait_quiet(self.args.quiet_wait)
                if waited > 1.0:
                    self.log(f"waited {waited:.1f} s for other processes to calm down (now {foreign} cores)")
            runs.append({"round": rnd, "subject": subject, **subjects[subject](rnd)})
        return runs

    def load(self, url: str, scenario: Scenario, who: str, *, warm: bool,
             hook: Callable[[], Any] | None = None, duration: float | None = None) -> Run:  # fmt: skip
        """One measured run of ``scenario`` (after ``--warmup`` s of unmeasured load when ``warm``); ``hook``
        is called just before it starts (a :class:`Recording` it returns is waited for after it)."""
        a = self.args
        if warm and a.warmup > 0:
            run_load(url, scenario, duration=a.warmup, connections=a.connections, client=self.client,
                     processes=a.load_processes)  # fmt: skip
        started = hook() if hook else None
        meter = CpuMeter().start()
        res = run_load(url, scenario, duration=duration or a.duration, connections=a.connections,
                       client=self.client, processes=a.load_processes)  # fmt: skip
        res.cpu = meter.stop()
        if isinstance(started, Recording):
            started.wait()
        self.log(
            f"{who:<8} {scenario.name:<20} {res.ops_s:>10,.0f} ops/s  p50 {res.p50_ms:7.2f} ms"
            f"  p99 {res.p99_ms:7.2f} ms  other CPU {res.cpu.get('foreign_cores')}"
            + (f"  errors {res.errors} {res.details}" if res.errors or res.details else "")
        )
        return res.as_dict()

    def raw(self, raw: RawCeiling, primitive: str) -> Run:
        """One run of the raw-cryptography ceiling of ``primitive``."""
        meter = CpuMeter().start()
        ops = raw.measure(primitive, self.args.raw_seconds)
        cpu = meter.stop()
        self.log(f"raw      {primitive:<20} {ops:>10,.0f} ops/s  other CPU {cpu.get('foreign_cores')}")
        return {"primitive": primitive, "ops_s": round(ops, 1), "cpu": cpu}

    def served(self, server: KluisProcess, scenario: Scenario, who: str, *, warm: bool,
               hook: Callable[[], Any] | None = None) -> Run:  # fmt: skip
        """A run against a kluis server; if it died under the load, say so (with its log), restart it
        once and run again (a second failure raises RuntimeError)."""
        try:
            return self.load(server.url, scenario, who, warm=warm, hook=hook)
        except RuntimeError as e:
            if server.process is not None and server.process.poll() is None:
                raise
            code = server.process.returncode if server.process is not None else None
            self.log(f"{who} {scenario.name}: kluis serve is gone (exit code {code}): {e}\n{server.log_tail()}")
            server.stop()
            server.start()
            assert server.process is not None
            wait_idle(server.process.pid)
            self.log(f"restarted {who} kluis serve on {server.url}; measuring {scenario.name} again")
            return self.load(server.url, scenario, who, warm=True, hook=hook)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("kluis", "cryptography", "granian", "starlette", "moto"):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = version(dist)
    return out


def _commit(checkout: Path) -> str | None:
    """``git describe`` of a checkout (commit, ``-dirty`` when changed), None when it is not a git tree."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "-C", str(checkout), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
        if out.returncode == 0:
            return out.stdout.strip()
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every phase; the results dict (``meta``, ``operations``, ``peer``, ``scaling``) that report.py reads."""
    t0 = time.monotonic()
    client = args.client
    if client in ("auto", "wrk"):
        why = ensure_wrk(install=not args.no_install)
        if why is not None:
            if client == "wrk":
                raise SystemExit(f"--client wrk: {why}")
            print(f"note: {why}; falling back to the Python client, which takes CPU from the server",
                  file=sys.stderr)  # fmt: skip
        client = "python" if why else "wrk"
    if args.profile:
        response_frame()  # the line of app.py the servers about to start load (see benchmarks.profile)
    work = Path(tempfile.mkdtemp(prefix="kluis-bench-"))
    b = Bench(args, work, client, t0)
    results: dict[str, Any] = {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python -m benchmarks", *sys.argv[1:]]) if sys.argv else "",
            "commit": _commit(ROOT),
            "cpus": os.cpu_count(),
            "workers": args.workers,
            "client": client,
            "connections": args.connections,
            "repeat": args.repeat,
            "duration": args.duration,
            "raw_seconds": args.raw_seconds,
            "warmup": args.warmup,
            "key_pool": args.key_pool,
            "create_rsa_rate": args.create_rsa_rate,
            "versions": _versions(),
        },
        "operations": {},
    }
    try:
        _run_phases(b, results)
    finally:
        if args.keep:
            b.log(f"kept data dirs and logs in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["meta"]["elapsed_s"] = round(time.monotonic() - t0, 1)
    foreign = [c for c in _cpu_records(results) if c is not None]
    if foreign:
        results["meta"]["foreign_cores_mean"] = round(sum(foreign) / len(foreign), 2)
        results["meta"]["foreign_cores_max"] = max(foreign)
    return results


def _cpu_records(node: Any) -> list[float | None]:
    """Every ``foreign_cores`` recorded anywhere in the results (one per run)."""
    if isinstance(node, dict):
        out = [node["foreign_cores"]] if "foreign_cores" in node else []
        return out + [x for v in node.values() for x in _cpu_records(v)]
    if isinstance(node, list):
        return [x for v in node for x in _cpu_records(v)]
    return []


def _run_phases(b: Bench, results: dict[str, Any]) -> None:
    args = b.args
    server = KluisProcess(b.work / "current" / "data", workers=args.workers, key_pool=args.key_pool,
                          database=_database_url(b, results), audit=args.audit,
                          throttle_limit=args.throttle_limit)  # fmt: skip
    baseline = None
    if args.baseline is not None and args.baseline_ops:
        baseline = KluisProcess(b.work / "baseline" / "data", workers=args.workers, key_pool=args.key_pool,
                                src=args.baseline / "src", audit=args.baseline_audit,
                                throttle_limit=args.throttle_limit, ablate=args.baseline_ablate)  # fmt: skip
    elif args.baseline is not None:
        b.log("--baseline: none of --baseline-ops is among the operations run; no baseline measured")
    try:
        server.start()
        b.log(f"kluis serve on {server.url} ({args.workers} workers, key pool {args.key_pool}, audit {args.audit})"
              f" from {server.src}")  # fmt: skip
        results["meta"]["audit"] = args.audit
        results["meta"]["throttle_limit"] = args.throttle_limit
        results["meta"]["kluis_file"] = server.kluis_file
        if baseline is not None:
            baseline.start()
            lacks = f" (its CLI lacks {', '.join(baseline.dropped)}: left out)" if baseline.dropped else ""
            b.log(f"baseline kluis serve on {baseline.url} from {baseline.src}{lacks}")
            results["meta"]["baseline"] = {
                "path": str(args.baseline),
                "commit": _commit(args.baseline),
                "kluis_file": baseline.kluis_file,
                "dropped_flags": baseline.dropped,
                "operations": args.baseline_ops,
                "audit": args.baseline_audit,
                "ablated": args.baseline_ablate,
            }
        with RawCeiling(args.workers) as raw:
            _kluis_phase(b, results, server, baseline, raw)
    finally:
        server.stop()
        if baseline is not None:
            baseline.stop()
        if b.postgres is not None:
            b.postgres.stop()
    _peer(b, results, server)
    if not args.no_scaling and args.sizes and server.database:
        b.log("scaling run skipped: it bulk-loads keys straight into the SQLite file (--database sqlite)")
    elif not args.no_scaling and args.sizes:
        _scaling(b, results)


def _database_url(b: Bench, results: dict[str, Any]) -> str:
    """The ``--database`` kluis serve gets: "" for SQLite; a started throw-away PostgreSQL's URL for
    "postgresql"; a given URL as it is. Recorded (without password) in the results' meta."""
    choice = b.args.database
    url = ""
    if choice == "postgresql":
        from tests.pgserver import PostgresServer

        b.postgres = PostgresServer(durable=True).start()
        url = b.postgres.new_database()
        b.log(f"PostgreSQL (durable defaults) on port {b.postgres.port} for kluis: {url}")
    elif choice != "sqlite":
        url = choice
    results["meta"]["database"] = "sqlite" if not url else url.split("@")[-1]
    return url


def _settle(b: Bench, server: KluisProcess, ops: list[str]) -> Fixture:
    """Run the setups of ``ops`` on ``server`` and wait until it is idle (its key pool filled); get key's
    too when an operation paired with it runs (its rounds include get key, e.g. ``--only sign_es256``)."""
    if PAIRED_WITH_GET_KEY.intersection(ops) and "get_key" not in ops:
        ops = [*ops, "get_key"]
    fixture = prepare(server, ops, paced_rate=b.args.create_rsa_rate)
    assert server.process is not None
    b.log(f"{server.url} settled (key pool filled) after {wait_idle(server.process.pid):.1f} s")
    return fixture


def _kluis_phase(
    b: Bench, results: dict[str, Any], server: KluisProcess, baseline: KluisProcess | None, raw: RawCeiling
) -> None:
    """Per operation, ``--repeat`` rounds of: kluis, the baseline (if any), the raw, bare and bare crypto ceilings."""
    args = b.args
    fixture = _settle(b, server, args.ops)
    base = (baseline, _settle(b, baseline, args.baseline_ops)) if baseline is not None else None
    bare = BareServer(server.server_cert, server.server_key, args.workers, server.data_dir.parent).start()
    if args.profile and not py_spy():
        b.log("--profile: py-spy is not installed (.venv/bin/pip install -e '.[bench]'); no profile taken")
    try:
        for op in args.ops:
            results["operations"][op] = _operation(b, op, server, fixture, base, raw, bare)
            if args.profile and py_spy() and not OPERATIONS[op].scenario(fixture).delay_ms:
                _profile(b, results, server.url, server.worker_pids, OPERATIONS[op].scenario(fixture), op,
                         OPERATIONS[op].label)  # fmt: skip
        if args.profile and py_spy():  # the HTTP stack's own share: the same breakdown of the bare endpoint
            methods = sorted({OPERATIONS[op].scenario(fixture).method for op in args.ops} & set(BARE))
            for method in methods:
                _profile(b, results, bare.url, bare.worker_pids, BARE[method], f"bare_{method.lower()}",
                         f"bare endpoint {method}")  # fmt: skip
            for op in (o for o in PROFILED_BARE_CRYPTO if o in args.ops and results["operations"][o].get("ops_s")):
                operation = OPERATIONS[op]
                assert operation.raw is not None
                _profile(b, results, bare.url, bare.worker_pids,
                         bare.crypto_scenario(operation.raw, operation.scenario(fixture)), f"bare_crypto_{op}",
                         f"bare crypto: {operation.label}")  # fmt: skip
    finally:
        bare.stop()


def _operation(
    b: Bench,
    op: str,
    server: KluisProcess,
    fixture: Fixture,
    base: tuple[KluisProcess, Fixture] | None,
    raw: RawCeiling,
    bare: BareServer,
) -> dict[str, Any]:
    """The rounds of one operation, summarized (:func:`benchmarks.stats.combine`) with every run kept."""
    operation = OPERATIONS[op]
    scenario = operation.scenario(fixture)
    paced = scenario.delay_ms > 0  # its rate is set, not measured: no ceiling means anything
    subjects: dict[str, Callable[[int], Run]] = {"kluis": lambda n: b.served(server, scenario, "kluis", warm=n == 0)}
    if base is not None and op in b.args.baseline_ops:
        subjects["baseline"] = _subject(b, base[0], operation.scenario(base[1]), "baseline")
    if not paced and operation.raw:
        primitive = operation.raw
        subjects["raw"] = lambda n: b.raw(raw, primitive)
    if not paced:
        subjects["bare"] = _subject(b, bare.url, BARE[scenario.method], "bare")
    if not paced and operation.raw in CRYPTO:  # the same request, answered by the same HTTP stack with only the crypto
        subjects["bare_crypto"] = _subject(b, bare.url, bare.crypto_scenario(operation.raw, scenario), "bare_cry")
    if op in PAIRED_WITH_GET_KEY:  # its target is a share of get key's rate: measured in the same rounds
        get_key = OPERATIONS["get_key"].scenario(fixture)
        subjects["get_key"] = lambda n: b.served(server, get_key, "get_key", warm=n == 0)
        if "bare_crypto" in subjects:  # and the same share on the bare endpoint (CEILING_PAIRS)
            subjects["bare_get"] = _subject(b, bare.url, BARE["GET"], "bare_get")
    entry: dict[str, Any] = {"label": operation.label}
    try:
        runs = b.rounds(subjects)
    except RuntimeError as e:
        b.log(f"{op}: failed: {e}")
        return {**entry, "ops_s": 0.0, "failed": str(e)}
    entry.update(combine(runs, pairs=CEILING_PAIRS))
    if paced:
        entry["paced_per_s"] = b.args.create_rsa_rate
    elif operation.raw:
        entry["raw_primitive"] = operation.raw
    entry["runs"] = runs
    return entry


def _profile(b: Bench, results: dict[str, Any], url: str, pids: Callable[[], list[int]], scenario: Scenario,
             key: str, label: str) -> None:  # fmt: skip
    """One extra run of ``scenario`` at ``url`` (a server whose worker processes ``pids`` lists) under
    :class:`benchmarks.profile.Recording`; its breakdown goes to ``results["profile"][key]`` (and is
    logged). A failure is logged, never fatal."""
    out = b.args.out
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / f"profile-{key}"
    for old in out.glob(f"profile-{key}-*.txt"):
        old.unlink()
    seconds = max(b.args.duration, PROFILE_SECONDS)
    recordings: list[Recording] = []

    def hook(spy: bool) -> Callable[[], Recording]:
        def start() -> Recording:
            recordings.append(Recording.start(pids(), max(int(seconds) - 1, 1), prefix, spy=spy))
            return recordings[-1]

        return start

    try:  # a clean run measures CPU per request and thread; the sampled one splits it
        run = b.load(url, scenario, "cpu", warm=False, hook=hook(False), duration=seconds)
        b.load(url, scenario, "profile", warm=False, hook=hook(True), duration=seconds)
        clean, sampled = recordings
        sampled.clean = clean
        requests = max(int(run["requests"]) - int(run["errors"]), 1)
        client_us = float(run["client_cores"]) * float(run["seconds"]) * 1e6 / requests
        entry = {"label": label, **sampled.result(requests, client_us, float(run["client_cores"]))}
    except (RuntimeError, OSError, ValueError) as e:
        b.log(f"profile {key}: failed: {e}")
        return
    results.setdefault("profile", {})[key] = entry
    b.log(format_breakdown({key: entry}, {key: label}))


def _peer(b: Bench, results: dict[str, Any], server: KluisProcess) -> None:
    """moto's KMS server, ``--repeat`` runs per operation (a peer, compared with kluis's medians)."""
    why = "--no-peer" if b.args.no_peer else moto_available()
    if why:
        results["peer"] = {"name": "moto", "skipped": why}
        b.log(f"peer moto: skipped ({why})")
        return
    moto = MotoServer(server.server_cert, server.server_key, server.ca, server.data_dir.parent)
    try:
        moto.start()
        b.log(f"moto_server on {moto.url}")
        peer_ops: dict[str, Any] = {}
        for name, scenario in moto.scenarios().items():
            runs = b.rounds({"moto": _subject(b, moto.url, scenario, "moto")})
            entry = {"label": name.removeprefix("moto_").replace("_", " "), **combine(runs, main="moto")}
            kluis_op = MOTO_PAIRS[name]
            kluis_ops = results["operations"].get(kluis_op, {}).get("ops_s")
            entry.update(kluis_op=kluis_op, kluis_ops_s=kluis_ops, runs=runs)
            entry["kluis_over_moto"] = round(kluis_ops / entry["ops_s"], 2) if kluis_ops and entry["ops_s"] else None
            peer_ops[name] = entry
        results["peer"] = {"name": "moto", "operations": peer_ops}
    except Exception as e:  # the peer is a comparison, never a reason to lose the run
        results["peer"] = {"name": "moto", "skipped": f"failed: {e}"}
        b.log(f"peer moto failed: {e}")
    finally:
        moto.stop()


def _subject(b: Bench, target: KluisProcess | str, scenario: Scenario, who: str) -> Callable[[int], Run]:
    """A subject of :meth:`Bench.rounds`: one run of ``scenario`` on a kluis server or at a URL, warm in round 0."""
    if isinstance(target, KluisProcess):
        return lambda n: b.served(target, scenario, who, warm=n == 0)
    return lambda n: b.load(target, scenario, who, warm=n == 0)


def _scaling(b: Bench, results: dict[str, Any]) -> None:
    """Per stored-key count, ``--repeat`` rounds of the scaling scenarios (alternating with each other)."""
    args = b.args
    server = KluisProcess(b.work / "scaling" / "data", workers=args.workers, key_pool=0,
                          throttle_limit=args.throttle_limit).start()  # fmt: skip
    sizes: dict[str, Any] = {}
    results["scaling"] = {"sizes": sizes}
    try:
        fixture = _settle(b, server, ["sign_es256"])  # the EC key the sign load uses
        stored = 0
        for n in args.sizes:
            seconds = bulk_load(server.data_dir, stored, n - stored)
            b.log(f"scaling: bulk-loaded {n - stored:,} keys in {seconds:.1f} s ({n:,} stored)")
            stored = n
            scenarios = scaling_scenarios(fixture, stored=n)
            runs = b.rounds({op: _subject(b, server, s, f"{n:,} keys") for op, s in scenarios.items()})
            entry: dict[str, Any] = {"load_seconds": round(seconds, 2)}
            for op in scenarios:
                mine = [r for r in runs if r["subject"] == op]
                entry[op] = {**combine(mine, main=op), "runs": mine}
            sizes[str(n)] = entry
            if args.profile and py_spy() and n == args.sizes[-1]:
                for op, label in (("get_key_cold", "cold get"), ("get_key", "hot get")):
                    _profile(b, results, server.url, server.worker_pids, scenarios[op], f"{op}@{n}",
                             f"{label} ({n:,} keys)")  # fmt: skip
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the suite and write ``results/bench-<time>.json`` and ``.png``; 0 unless --strict and a miss."""
    args = parse_args(argv)
    results = run(args)
    targets = evaluate_targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path, png_path = args.out / f"bench-{stamp}.json", args.out / f"bench-{stamp}.png"
    write_json(results, targets, json_path)
    write_chart(results, png_path)
    shutil.copyfile(json_path, args.out / "latest.json")
    shutil.copyfile(png_path, args.out / "latest.png")
    print(format_table(results, targets))
    if results.get("profile"):
        profiles = results["profile"]
        print("\n" + format_breakdown(profiles, {k: v["label"] for k, v in profiles.items()}))
    print(f"\nwrote {json_path} and {png_path} ({results['meta']['elapsed_s']} s)")
    return 1 if args.strict and any(t.passed is False for t in targets) else 0

"""The request path in process: CPU µs per request of kluis's own Python side, robust on a busy machine.

``python -m benchmarks.inproc [--only get_key,sign_es256] [--data-dir DIR --cold N] [--cprofile|--instructions]``

No server, no TLS, no HTTP parsing: the app (``KluisApp``, as ``kluis serve`` builds it) is handed
``Request`` objects like granian's RSGI entry builds them, with a bearer token the runtime issued,
and ``await app.serve(request)`` runs the whole dispatcher (request id, token verification,
api-version, vault, throttle, authorization, handler, event hook and audit) on one event loop.
CPU time of the process (``time.process_time``: every thread, so the audit writer is included) is
divided by the requests; other processes on the machine do not count, which makes this the tool
to measure a change to the request path (``benchmarks/README.md``). Each figure is the median of
``--batches`` batches, after a warm-up batch. Every answer must be 200, else the run stops.

``--instructions`` counts instead CPU instructions per request under valgrind's callgrind (the
process re-runs itself under ``valgrind --tool=callgrind``; collection is switched on only inside
the measured batch, which runs within ``functools.reduce`` for that purpose, and dumped after each
operation): the same count on a busy machine as on a quiet one, so the tool for a change's effect
of a few percent. The audit writer's thread is not in the count (its records are made in the
request, which is).

The same operations as the suite (``benchmarks.scenarios``, set up the same way over the API).
``--data-dir`` runs on an existing data dir (e.g. one with 1,000,000 bulk-loaded keys) and
``--cold N`` adds ``get_key_cold`` (gets spread over ``bulk-0000000`` .. N-1) and ``get_key_hot``
(the same over the first 10), as the scaling run does. ``--ablate STEPS`` replaces per-request
steps (token check, authorization, ...) with constant stand-ins (``benchmarks/ablate.py``), to
measure what each costs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import io
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

from benchmarks.ablate import STEPS, apply, parse_steps
from benchmarks.bulk import NAME_WIDTH
from benchmarks.load import Scenario
from benchmarks.scenarios import OPERATIONS, SCALING_HOT_KEYS, Api, Fixture
from kluis.api.app import KluisApp
from kluis.api.http import Request
from kluis.api.runtime import Runtime
from kluis.config import DataDir, ServerSettings
from kluis.identity.tokens import Principal

__all__ = ["main", "measure"]

AUTHORITY = "127.0.0.1:8443"
VAULT_AUDIENCE = "https://vault.azure.net"


def _token(rt: Runtime) -> str:
    oid = rt.admin_object_id()
    with rt.store.read() as tx:
        p = tx.get_principal(oid)
    assert p is not None
    return rt.issuer.issue(Principal(p.object_id, p.app_id, rt.tenant_id), audience=VAULT_AUDIENCE, lifetime=7200)[0]


def _requests(s: Scenario) -> Callable[[int], Request]:
    """A factory of fresh Requests for scenario ``s`` (the n-th request fills a ``{}`` as ``s.vary`` says)."""
    headers = {k.lower(): v for k, v in s.headers}
    headers["host"] = AUTHORITY
    body = s.body.encode() if s.body is not None else b""
    if s.body is not None:
        headers["content-type"] = s.content_type
        headers["content-length"] = str(len(body))
    path_query = s.path
    run = f"{random.getrandbits(24):06x}"

    async def chunks() -> AsyncIterator[bytes]:
        if body:
            yield body

    def make(n: int) -> Request:
        pq = path_query
        if "{}" in pq:
            fill = f"{random.randrange(s.rand_range):0{s.rand_width}d}" if s.vary == "rand" else f"{run}x{n}"
            pq = pq.replace("{}", fill)
        path, _, query = pq.partition("?")
        return Request(s.method, path, query, headers, lambda: chunks(), AUTHORITY, "127.0.0.1:50000")

    return make


async def _batch(app: KluisApp, make: Callable[[int], Request], start: int, n: int) -> float:
    """CPU seconds of the process for ``n`` requests; RuntimeError on any answer but 200."""
    t0 = time.process_time()
    for i in range(start, start + n):
        response = await app.serve(make(i))
        if response.status_code != 200:
            raise RuntimeError(f"answer {response.status_code}: {response.body[:300]!r}")
    return time.process_time() - t0


def measure(
    app: KluisApp, s: Scenario, *, n: int, batches: int, profile: bool = False, callgrind: bool = False
) -> dict[str, Any]:
    """Median (and min, max) CPU µs per request over ``batches`` batches of ``n`` requests of ``s``.
    ``callgrind``: one batch inside ``functools.reduce`` (what callgrind's collection is toggled on)."""
    make = _requests(s)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_batch(app, make, 0, max(n // 4, 10)))  # warm-up: caches, first unseal
        if callgrind:
            functools.reduce(lambda _, __: loop.run_until_complete(_batch(app, make, 10**7, n)), [0], 0.0)
            return {"us": 0.0, "min": 0.0, "max": 0.0}
        if profile:
            prof = cProfile.Profile()
            prof.enable()
            loop.run_until_complete(_batch(app, make, 10**6, n))
            prof.disable()
            text = io.StringIO()
            stats = pstats.Stats(prof, stream=text).sort_stats(os.environ.get("INPROC_SORT", "tottime"))
            stats.print_stats(int(os.environ.get("INPROC_TOP", "25")))
            print(text.getvalue())
        times = [loop.run_until_complete(_batch(app, make, (b + 1) * n, n)) * 1e6 / n for b in range(batches)]
    finally:
        loop.close()
    return {"us": round(statistics.median(times), 2), "min": round(min(times), 2), "max": round(max(times), 2)}


def _scenarios(app: KluisApp, rt: Runtime, ops: list[str], cold: int) -> dict[str, Scenario]:
    with warnings.catch_warnings():  # starlette's notice about its httpx transport: not ours to act on
        warnings.simplefilter("ignore", DeprecationWarning)
        from starlette.testclient import TestClient  # the dev extra: setup calls through the app itself

    token = _token(rt)
    values: dict[str, str] = {}
    setups = list(dict.fromkeys(s for op in ops for s in OPERATIONS[op].setup))
    client = TestClient(
        cast(Any, app), base_url=f"https://{AUTHORITY}"
    )  # no ``with``: its lifespan would close the runtime
    client.headers["authorization"] = f"Bearer {token}"
    client.params = {"api-version": "7.6"}
    for setup in setups:
        values.update(setup(Api(client)))
    fixture = Fixture(token, values)
    out = {op: OPERATIONS[op].scenario(fixture) for op in ops}
    if cold:
        bulk = "/keys/bulk-{}/"
        out["get_key_cold"] = fixture.get(bulk, vary="rand", rand_range=cold, rand_width=NAME_WIDTH)
        out["get_key_hot"] = fixture.get(bulk, vary="rand", rand_range=SCALING_HOT_KEYS, rand_width=NAME_WIDTH)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.inproc", description=__doc__.split("\n\n")[0])
    default = [op for op in OPERATIONS if op != "create_rsa"]
    p.add_argument("--only", help=f"Comma-separated operations (default: {','.join(default)}).")
    p.add_argument("-n", type=int, default=2000, help="Requests per batch.")
    p.add_argument("--batches", type=int, default=5, help="Batches per operation; the figure is their median.")
    p.add_argument("--data-dir", type=Path, help="An existing data dir (default: a fresh one).")
    p.add_argument("--cold", type=int, default=0, help="Bulk-loaded keys to spread cold gets over (see bulk.py).")
    p.add_argument("--audit", default=None, help="on|off: the server's audit setting (default: kluis's default).")
    p.add_argument("--cprofile", action="store_true", help="Print cProfile's top functions per operation.")
    p.add_argument("--instructions", action="store_true", help="Count instructions per request with callgrind.")
    p.add_argument("--ablate", default="", metavar="STEPS",
                   help="Replace these per-request steps with constant stand-ins (benchmarks.ablate: a comma list "
                   f"of {', '.join(STEPS)}, or all) to measure what they cost.")  # fmt: skip
    p.add_argument("--callgrind-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        steps = parse_steps(args.ablate)
    except ValueError as e:
        p.error(f"--ablate: {e}")
    ops = [o.strip() for o in args.only.split(",") if o.strip()] if args.only is not None else default
    if args.instructions:
        return _instructions(argv if argv is not None else sys.argv[1:], args.n)
    if steps:
        apply(steps)  # this process only: measurement, never a server anyone uses
    with tempfile.TemporaryDirectory(prefix="kluis-inproc-") as tmp:
        where = args.data_dir or Path(tmp) / "data"
        settings = DataDir(where).read_server() or ServerSettings()
        settings.key_pool = 0
        if args.audit is not None:
            settings.audit = args.audit == "on"
        rt = Runtime(DataDir(where), settings, bootstrap=True)
        try:
            app = KluisApp(rt)
            scenarios = _scenarios(app, rt, [o for o in ops if o in OPERATIONS], args.cold)
            app.__rsgi_init__(None)  # as a granian worker does once its loop runs
            for name, s in scenarios.items():
                r = measure(
                    app, s, n=args.n, batches=args.batches, profile=args.cprofile, callgrind=args.callgrind_child
                )
                if args.callgrind_child:
                    print(f"CALLGRIND-OP {name}", flush=True)
                else:
                    print(f"{name:<22} {r['us']:>9.1f} µs/request  [{r['min']:.1f}-{r['max']:.1f}]", flush=True)
        finally:
            rt.close()
    return 0


def _instructions(argv: list[str], n: int) -> int:
    """Re-run under callgrind; print instructions per request of each operation (from its dump)."""
    if shutil.which("valgrind") is None:
        print("--instructions needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    rest = [a for a in argv if a != "--instructions"]
    with tempfile.TemporaryDirectory(prefix="kluis-callgrind-") as tmp:
        out = Path(tmp) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", "--toggle-collect=functools_reduce", "--dump-after=functools_reduce",
               f"--callgrind-out-file={out}", sys.executable, "-W", "ignore", "-m", "benchmarks.inproc",
               "--callgrind-child", *rest]  # fmt: skip
        done = subprocess.run(
            cmd, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONHASHSEED": "0"}
        )
        names = [ln.split(" ", 1)[1] for ln in done.stdout.splitlines() if ln.startswith("CALLGRIND-OP ")]
        if done.returncode != 0 or not names:
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
            return 1
        for i, name in enumerate(names, start=1):
            summary = next(ln for ln in (Path(f"{out}.{i}")).read_text().splitlines() if ln.startswith("summary:"))
            per = int(summary.split()[1]) / n
            print(f"{name:<22} {per:>12,.0f} instructions/request", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

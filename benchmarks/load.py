"""Load generators: closed-loop HTTP/1.1 keep-alive over TLS, fixed duration and concurrency.

Two interchangeable backends, chosen by ``--client`` (default ``auto``: wrk, installed with apt-get
when missing and running as root, else the Python client):

* ``wrk`` (Debian package ``wrk``: C + LuaJIT, epoll, one thread by default). A generated Lua
  script sets the method, body and ``Authorization`` header, varies the path per request where a
  scenario needs it (unique names for creates, random names for the scaling run), paces with
  wrk's ``delay()`` hook, and prints its summary as JSON from ``done()``.
* ``python``: asyncio + ``ssl`` with pre-built raw HTTP/1.1 requests, N connections per process.

Both measured on the 2-core machine, 32 connections, 5 s, server with 2 workers:

  =====================  =================  ==================  ==========================
  target                 wrk (1 thread)     python (1 process)  python (2 processes)
  =====================  =================  ==================  ==========================
  bare GET (granian)     27,700 req/s       15,700 req/s        17,000 req/s
                         0.38 cores         0.52 cores          0.65 cores
  kluis get key          8,350 req/s        5,150 req/s
                         0.17 cores         0.27 cores
  =====================  =================  ==================  ==========================

The Python client costs ~2.5x more CPU per request (~33 us vs ~14 us) and, being one event loop
for all connections, adds its own queueing to every latency, so it caps fast operations at ~55-60%
of what wrk shows. wrk is the default; the Python client is the fallback where wrk cannot be
installed, and its results are marked with ``client: python``.

Latency percentiles are of service time per request (closed loop: no coordinated-omission
correction), as wrk reports them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import shutil
import ssl
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

__all__ = ["LoadResult", "Scenario", "available_clients", "ensure_wrk", "run_load"]

Vary = Literal["none", "seq", "rand"]


@dataclass(frozen=True)
class Scenario:
    """One request shape. ``path`` may contain one ``{}``: filled per request as ``vary`` says.

    ``seq``: ``<run><worker>x<counter>``, unique across runs (creates need fresh names); ``rand``: a random integer
    in ``[0, rand_range)``, zero-padded to ``rand_width`` (the scaling run's random key names).
    """

    name: str
    method: str
    path: str
    body: str | None = None
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    vary: Vary = "none"
    rand_range: int = 0
    rand_width: int = 0
    connections: int | None = None  # overrides the run's concurrency (e.g. paced creates)
    delay_ms: float = 0.0  # think time per connection after each response

    def split(self) -> tuple[str, str]:
        if "{}" not in self.path:
            return self.path, ""
        prefix, _, suffix = self.path.partition("{}")
        return prefix, suffix


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    client_cpu_s: float
    client: str
    details: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float | None] = field(default_factory=dict)  # set by the runner (benchmarks.noise)

    @property
    def ops_s(self) -> float:
        ok = max(self.requests - self.errors, 0)
        return ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def client_cores(self) -> float:
        """CPU the load generator itself used, in cores (taken from the server's budget)."""
        return self.client_cpu_s / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "ops_s": round(self.ops_s, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "errors": self.errors,
            "client": self.client,
            "client_cores": round(self.client_cores, 3),
            **({"error_details": self.details} if self.details else {}),
            **({"cpu": self.cpu} if self.cpu else {}),
        }


def ensure_wrk(*, install: bool) -> str | None:
    """None when wrk is there (installing it with apt-get when allowed and root), else why not."""
    if shutil.which("wrk"):
        return None
    if not install:
        return "wrk is not installed"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "wrk is not installed and apt-get needs root here: apt-get install wrk"
    for cmd in (
        ["apt-get", "install", "-y", "-q", "wrk"],
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "wrk"],
    ):
        subprocess.run(
            cmd, capture_output=True, check=False, timeout=600, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        )
        if cmd[1] == "install" and shutil.which("wrk"):
            return None
    return "apt-get install wrk failed"


def available_clients() -> list[str]:
    return (["wrk"] if shutil.which("wrk") else []) + ["python"]


def run_load(
    url: str,
    scenario: Scenario,
    *,
    duration: float,
    connections: int,
    client: str = "auto",
    processes: int = 1,
    proxy: tuple[str, int] | None = None,
) -> LoadResult:
    """Drive ``scenario`` against ``url`` (``https://host:port``) for ``duration`` seconds.

    With ``proxy`` (host, port of an HTTP CONNECT proxy, the Python client only), every connection
    is a tunnel to ``url``'s authority (e.g. ``https://default.vault.azure.net:443``) through it, as
    an SDK with ``HTTPS_PROXY`` set makes them."""
    conns = scenario.connections or connections
    if client == "auto":
        client = "python" if proxy is not None else available_clients()[0]
    run = os.urandom(3).hex()  # prefix of "seq" names: a fresh one per run
    if proxy is not None:
        if client != "python":
            raise ValueError("only the python load client goes through a CONNECT proxy")
        return _run_python(url, scenario, run, duration=duration, connections=conns, processes=min(processes, conns),
                           proxy=proxy)  # fmt: skip
    if client == "wrk":
        return _run_wrk(url, scenario, run, duration=duration, connections=conns, threads=min(processes, conns))
    if client == "python":
        return _run_python(url, scenario, run, duration=duration, connections=conns, processes=min(processes, conns))
    raise ValueError(f"unknown load client {client!r}")


# -- wrk ------------------------------------------------------------------------------------------
def _lua(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Lua string literal for ASCII text


def _wrk_script(s: Scenario, run: str) -> str:
    prefix, suffix = s.split()
    headers = "".join(f"wrk.headers[{_lua(k)}] = {_lua(v)}\n" for k, v in s.headers)
    if s.body is not None:
        headers += f'wrk.headers["Content-Type"] = {_lua(s.content_type)}\n'
    body = _lua(s.body) if s.body is not None else "nil"
    if s.vary == "seq":
        value = f"string.format({_lua(run + '%dx%d')}, id, counter)"
    elif s.vary == "rand":
        value = f'string.format("%0{s.rand_width}d", math.random(0, {s.rand_range - 1}))'
    else:
        value = None
    request = (
        f"request = function()\n  counter = counter + 1\n"
        f"  return wrk.format({_lua(s.method)}, {_lua(prefix)} .. {value} .. {_lua(suffix)}, nil, {body})\nend\n"
        if value
        else f"request = function() return wrk.format({_lua(s.method)}, {_lua(prefix)}, nil, {body}) end\n"
    )
    delay = f"delay = function() return {s.delay_ms} end\n" if s.delay_ms > 0 else ""
    return f"""
local threads, nthreads = {{}}, 0
counter, id = 0, 0
{headers}
setup = function(thread)
  nthreads = nthreads + 1
  thread:set("id", nthreads)
  table.insert(threads, thread)
end
init = function(args)
  math.randomseed(os.time() + id * 7919)
end
{request}{delay}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _run_wrk(url: str, s: Scenario, run: str, *, duration: float, connections: int, threads: int) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_wrk_script(s, run))
        script = f.name
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(round(duration), 1)}s",
             "--timeout", "10s", "-s", script, url],
            capture_output=True, text=True, timeout=duration + 60, check=False,
        )  # fmt: skip
    finally:
        os.unlink(script)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    d = json.loads(line[len("WRKJSON ") :])
    # Socket errors (connect/read/write/timeout) are usually counted per connection, not per request;
    # non-2xx/3xx answers are counted per request.
    details = {k: int(d[k]) for k in ("connect", "read", "write", "status", "timeout") if d[k]}
    return LoadResult(
        requests=int(d["requests"]),
        seconds=d["duration_us"] / 1e6,
        p50_ms=d["p50_us"] / 1e3,
        p99_ms=d["p99_us"] / 1e3,
        errors=int(d["status"]) + int(d["timeout"]),
        client_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        client="wrk",
        details=details,
    )


# -- python -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    host: str
    port: int
    scenario: Scenario
    duration: float
    connections: int
    worker: int
    run: str
    proxy: tuple[str, int] | None = None


def _run_python(
    url: str, s: Scenario, run: str, *, duration: float, connections: int, processes: int,
    proxy: tuple[str, int] | None = None,
) -> LoadResult:  # fmt: skip
    hostport = url.split("://", 1)[1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    per = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    jobs = [_Job(host, int(port), s, duration, n, i + 1, run, proxy) for i, n in enumerate(per) if n]
    with ProcessPoolExecutor(len(jobs), mp_context=get_context("spawn")) as pool:
        parts = list(pool.map(_python_worker, jobs))
    lat = sorted(x for p in parts for x in p[0])
    errors = sum(p[1] for p in parts)
    seconds = max(p[2] for p in parts)
    return LoadResult(
        requests=len(lat) + errors,
        seconds=seconds,
        p50_ms=_pct(lat, 50),
        p99_ms=_pct(lat, 99),
        errors=errors,
        client_cpu_s=sum(p[3] for p in parts),
        client="python",
    )


def _pct(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return 0.0
    return sorted_ms[min(int(len(sorted_ms) * p / 100), len(sorted_ms) - 1)]


def _python_worker(job: _Job) -> tuple[list[float], int, float, float]:
    cpu0 = time.process_time()
    lat, errors, seconds = asyncio.run(_python_main(job))
    return lat, errors, seconds, time.process_time() - cpu0


async def _python_main(job: _Job) -> tuple[list[float], int, float]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # like wrk: the load generator does not verify
    s = job.scenario
    prefix, suffix = s.split()
    head = f"Host: {job.host}:{job.port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in s.headers)
    body = s.body.encode() if s.body is not None else b""
    if s.body is not None:
        head += f"Content-Type: {s.content_type}\r\nContent-Length: {len(body)}\r\n"
    static = f"{s.method} {prefix}{suffix} HTTP/1.1\r\n{head}\r\n".encode() + body
    counter = 0
    rng = random.Random(os.getpid())
    lat: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + job.duration

    def request() -> bytes:
        nonlocal counter
        if s.vary == "none":
            return static
        counter += 1
        v = (
            f"{job.run}{job.worker}x{counter}"
            if s.vary == "seq"
            else str(rng.randrange(s.rand_range)).zfill(s.rand_width)
        )
        return f"{s.method} {prefix}{v}{suffix} HTTP/1.1\r\n{head}\r\n".encode() + body

    async def connection() -> None:
        nonlocal errors
        if job.proxy is None:
            reader, writer = await asyncio.open_connection(job.host, job.port, ssl=ctx)
        else:  # CONNECT, then TLS inside the tunnel (what an SDK does with HTTPS_PROXY)
            reader, writer = await asyncio.open_connection(*job.proxy)
            writer.write(f"CONNECT {job.host}:{job.port} HTTP/1.1\r\nHost: {job.host}:{job.port}\r\n\r\n".encode())
            answer = await reader.readuntil(b"\r\n\r\n")
            if answer[9:12] != b"200":
                raise RuntimeError(f"proxy refused CONNECT: {answer[:40]!r}")
            await writer.start_tls(ctx, server_hostname=job.host)
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                writer.write(request())
                status_line = await reader.readuntil(b"\r\n")
                headers = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in headers.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                if status_line[9:10] in (b"2", b"3"):
                    lat.append((time.perf_counter() - t0) * 1e3)
                else:
                    errors += 1
                if s.delay_ms:
                    await asyncio.sleep(s.delay_ms / 1e3)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(job.connections)))
    return lat, errors, time.perf_counter() - start


def _client_check(url: str, scenario: Scenario, seconds: float, connections: int) -> dict[str, dict[str, object]]:
    """Both clients on the same scenario (for the docstring's numbers): ``python -m benchmarks.load``."""
    return {
        c: run_load(url, scenario, duration=seconds, connections=connections, client=c).as_dict()
        for c in available_clients()
    }


if __name__ == "__main__":  # pragma: no cover - manual comparison of the two clients
    import sys

    target, path = sys.argv[1], sys.argv[2]
    token = Path(sys.argv[3]).read_text().strip() if len(sys.argv) > 3 else ""
    hdrs = (("Authorization", f"Bearer {token}"),) if token else ()
    print(json.dumps(_client_check(target, Scenario("check", "GET", path, headers=hdrs), 5, 32), indent=2))

"""``--profile``: where each operation's CPU goes, in µs per request, by category.

After an operation's measured rounds, one extra run of it (not counted in any figure) is recorded:

* ``py-spy record --native --threads`` samples every thread of every server worker: Python frames
  merged with native ones (granian's Rust side, uvloop, SQLite, OpenSSL, libc), each sample tagged
  with its OS thread id. Native unwinding pauses the worker for each sample, so the profiled run is
  slower than the measured ones; its CPU per request is what is kept, not its rate.
* The CPU each of those threads really used over the same window, from the kernel
  (``/proc/<pid>/task/<tid>/schedstat``, nanoseconds; ``stat`` ticks where schedstat is missing).
* The requests served in the window (the run's rate times the window) and the CPU the load
  generator itself used (its rusage), which share the machine's cores with the server.

Each sample is put in one category (:func:`classify`; samples of a thread waiting, e.g. in
``epoll_wait``, on a futex or for the GIL, are off CPU and dropped), and each thread's measured CPU
is split over its categories in proportion to its on-CPU samples. Sampling error is therefore only
in the split, never in the total, and a busy machine (other processes on the same cores) changes
neither, since both are per thread and per request. The categories, first match wins:

==========================  =================================================================
audit + events              the event hook, audit records (and the audit writer thread)
unsealing                   ``Sealer.unseal`` / loading key material on a cache miss
token verification          ``api/auth.py``, ``identity/tokens.py``
store                       ``kluis/store`` and SQLite (reads; creates also write)
authorization               ``domain/authorization.py``
crypto                      the operation's own cryptography (``kluis/crypto``, ``cryptography``)
JSON + response             response bodies and headers (wire, views, orjson, ``Response``)
response write (granian)    granian's ``response_bytes``, called from the request (hands the answer
                            to its I/O side: a write system call to wake it)
request body                reading and parsing the request body
dispatcher (rest)           every other kluis frame of the request (routing, ids, headers, ...)
event loop                  uvloop / asyncio / granian's Python glue outside a request
TLS + HTTP (granian)        granian's native side: TLS, HTTP/1 parsing, socket I/O, its threads
other                       anything else (interpreter internals without a Python frame)
==========================  =================================================================
"""

from __future__ import annotations

import functools
import inspect
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CATEGORIES",
    "Recording",
    "breakdown",
    "classify",
    "format_breakdown",
    "parse_raw",
    "py_spy",
    "response_frame",
    "thread_cpu",
]

CATEGORIES = (
    "TLS + HTTP (granian)",
    "event loop",
    "token verification",
    "authorization",
    "store",
    "unsealing",
    "crypto",
    "JSON + response",
    "response write (granian)",
    "request body",
    "audit + events",
    "dispatcher (rest)",
    "other",
)
# Short column heads for the printed table, in CATEGORIES order.
_HEADS = ("tls+http", "loop", "token", "authz", "store", "unseal", "crypto", "json", "resp.write", "body",
          "audit", "dispatch", "other")  # fmt: skip

# Where a thread waits rather than runs: the leaf-most named frame of an off-CPU sample.
_IDLE = frozenset(
    {
        "epoll_wait",
        "epoll_pwait",
        "epoll_pwait2",
        "poll",
        "ppoll",
        "select",
        "pselect",
        "pthread_cond_wait",
        "pthread_cond_timedwait",
        "pthread_cond_clockwait",
        "sem_wait",
        "sem_timedwait",
        "sem_clockwait",
        "nanosleep",
        "clock_nanosleep",
        "syscall",  # Rust's thread parking (futex) in granian's runtime threads
        "futex_wait",
        "__futex_abstimed_wait_common",
        "PyThread_acquire_lock_timed",
        "take_gil",
        "fdatasync",
        "fsync",
        "flock",
        "accept4",
    }
)

# (category, substrings of a frame: any frame of the request's stack containing one matches).
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("audit + events", ("kluis/domain/audit.py", "kluis/domain/events.py", "kluis/api/metrics.py")),
    ("unsealing", ("kluis/crypto/seal.py", "Lifecycle.unseal", "KeyService.material")),
    ("token verification", ("kluis/identity/tokens.py", "kluis/api/auth.py")),
    ("store", ("kluis/store/", "libsqlite3", "pysqlite", "_sqlite3")),
    ("authorization", ("kluis/domain/authorization.py",)),
    ("crypto", ("kluis/crypto/", "cryptography/", "_rust.abi3.so")),
    ("JSON + response", ("kluis/api/wire.py", "json_response", "error_response", "kluis/domain/views.py")),
    ("JSON + response", ("orjson", "Response.header_list", "Response.__init__")),
    ("request body", ("Request.body", "Request._read", "_rsgi_chunks", "RequestContext.body", "parse_body")),
)
_REQUEST_ROOT = "KluisApp.__rsgi__ ("
_BARE_ROOT = "BareApp.__rsgi__ ("  # benchmarks/bare.py: the HTTP stack's own share, profiled beside kluis


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


@functools.lru_cache(maxsize=1)
def response_frame() -> str:
    """The frame string py-spy prints while ``__rsgi__`` is inside granian's ``response_bytes`` call
    (its line number read from the source, so the rule follows edits of app.py). Remembered from the
    first call: the runner calls it before it starts a server, so it is the line the server loaded."""
    from kluis.api.app import KluisApp

    lines, first = inspect.getsourcelines(KluisApp.__rsgi__)
    for offset, text in enumerate(lines):
        if "protocol.response_bytes(" in text:
            return f"KluisApp.__rsgi__ (kluis/api/app.py:{first + offset})"
    return "KluisApp.__rsgi__ (kluis/api/app.py:response_bytes)"


@functools.lru_cache(maxsize=1)
def _bare_response_frame() -> str:
    """As :func:`response_frame`, for the bare endpoint's ``response_bytes`` call."""
    from benchmarks.bare import BareApp

    lines, first = inspect.getsourcelines(BareApp.__rsgi__)
    for offset, text in enumerate(lines):
        if "protocol.response_bytes(" in text:
            return f"BareApp.__rsgi__ (benchmarks/bare.py:{first + offset})"
    return "BareApp.__rsgi__ (benchmarks/bare.py:response_bytes)"


def _name(frame: str) -> str:
    return frame.split(" (", 1)[0]


def _idle(frames: list[str]) -> bool:
    for frame in reversed(frames):
        name = _name(frame)
        if name.startswith("0x"):  # an unnamed address (stripped library): look further up
            continue
        return name in _IDLE
    return False


def classify(thread: str, frames: list[str], response: str = "") -> str | None:
    """The category of one sample (``frames`` root first), or None when the thread was off CPU."""
    if not frames or _idle(frames):
        return None
    start = next((i for i, f in enumerate(frames) if f.startswith(_REQUEST_ROOT)), None)
    if start is not None:
        request = frames[start:]
        if response and request[0] == response:
            return "response write (granian)"
        for category, marks in _RULES:
            if any(m in f for f in request for m in marks):
                return category
        return "dispatcher (rest)"
    bare = next((i for i, f in enumerate(frames) if f.startswith(_BARE_ROOT)), None)
    if bare is not None:  # the bare endpoint: its response write, its crypto routes' call, else its own Python
        if frames[bare] == _bare_response_frame():
            return "response write (granian)"
        crypto = any(m in f for f in frames[bare:] for m in ("cryptography/", "_rust.abi3.so"))
        return "crypto" if crypto else "dispatcher (rest)"
    if thread.startswith("kluis-audit") or any("kluis/domain/audit.py" in f for f in frames):
        return "audit + events"
    if any("_granian" in f for f in frames):
        return "TLS + HTTP (granian)"
    if any(m in f for f in frames for m in ("loop.c", "uvloop", "asyncio", "granian/", "libuv", "core.c")):
        return "event loop"
    if thread.startswith("MainThread"):
        return "other"
    return "TLS + HTTP (granian)"  # granian's runtime threads hold no Python frame


@dataclass
class Samples:
    """Per thread id: its name and its samples by category (None: off CPU)."""

    names: dict[int, str] = field(default_factory=dict)
    counts: dict[int, Counter[str | None]] = field(default_factory=lambda: defaultdict(Counter))


def parse_raw(lines: Iterable[str], response: str = "", into: Samples | None = None) -> Samples:
    """py-spy's ``--format raw --threads`` output (``thread (TID): NAME;frame;...;frame COUNT``)."""
    out = into if into is not None else Samples()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        head = frames[0]
        if not head.startswith("thread ("):
            continue
        tid_text, _, name = head[len("thread (") :].partition(")")
        if not tid_text.isdigit():
            continue
        tid = int(tid_text)
        name = name.lstrip(": ").strip()
        out.names.setdefault(tid, name)
        out.counts[tid][classify(name, frames[1:], response)] += int(count)
    return out


def _default(name: str) -> str:
    if name.startswith("kluis-audit"):
        return "audit + events"
    return "event loop" if name.startswith("MainThread") else "TLS + HTTP (granian)"


def breakdown(samples: Samples, cpu_s: dict[int, float], requests: float) -> dict[str, float]:
    """µs of CPU per request by category: each thread's measured CPU seconds (``cpu_s``, by thread
    id) split over its on-CPU samples' categories, summed over threads, divided by ``requests``. A
    thread with CPU but no on-CPU sample goes to its default (main thread: event loop; audit writer:
    audit; granian's threads: TLS + HTTP)."""
    total: defaultdict[str, float] = defaultdict(float)
    for tid, seconds in cpu_s.items():
        counts = samples.counts.get(tid, Counter())
        busy = {c: n for c, n in counts.items() if c is not None}
        n_busy = sum(busy.values())
        if n_busy == 0:
            total[_default(samples.names.get(tid, ""))] += seconds
            continue
        for category, n in busy.items():
            total[category] += seconds * n / n_busy
    scale = 1e6 / requests if requests > 0 else 0.0
    return {c: round(total[c] * scale, 2) for c in CATEGORIES}


def thread_cpu(pids: list[int]) -> dict[int, tuple[str, float]]:
    """Every thread of ``pids``: (name, CPU seconds so far), from /proc (schedstat ns, else stat ticks)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                name = (task / "comm").read_text().strip()
                try:
                    seconds = int((task / "schedstat").read_text().split()[0]) / 1e9
                except (OSError, ValueError, IndexError):
                    f = (task / "stat").read_text().rsplit(")", 1)[1].split()
                    seconds = (int(f[11]) + int(f[12])) / tick
            except OSError:
                continue
            out[int(task.name)] = (name, seconds)
    return out


@dataclass
class Recording:
    """py-spy on every worker plus the threads' CPU over the same window; ``wait()`` then ``result()``."""

    pids: list[int]
    files: list[Path]
    processes: list[subprocess.Popen[bytes]]
    before: dict[int, tuple[str, float]]
    started: float
    after: dict[int, tuple[str, float]] = field(default_factory=dict)
    window: float = 0.0
    clean: Recording | None = None  # the unprofiled run whose CPU the samples split (see ``result``)

    @classmethod
    def start(cls, pids: list[int], seconds: int, prefix: Path, *, rate: int = 150, spy: bool = True) -> Recording:
        """Snapshot the threads' CPU and (``spy``) start py-spy on every worker for ``seconds``."""
        exe = py_spy()
        if exe is None and spy:
            raise RuntimeError("py-spy is not installed (.venv/bin/pip install -e '.[bench]')")
        files, procs = [], []
        for pid in pids if spy else []:
            assert exe is not None
            out = prefix.with_name(f"{prefix.name}-{pid}.txt")
            cmd = [exe, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(rate), "--native",
                   "--threads", "--format", "raw", "--output", str(out)]  # fmt: skip
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            files.append(out)
        return cls(pids, files, procs, thread_cpu(pids), time.monotonic())

    def wait(self) -> list[Path]:
        for p in self.processes:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        self.after = thread_cpu(self.pids)
        self.window = time.monotonic() - self.started
        return [f for f in self.files if f.exists()]

    def cpu(self) -> dict[int, float]:
        """CPU seconds of each thread between ``start`` and ``wait``."""
        return {tid: max(s - self.before.get(tid, (n, s))[1], 0.0) for tid, (n, s) in self.after.items()}

    def result(self, requests: int, client_us: float, client_cores: float) -> dict[str, Any]:
        """The breakdown: this recording's samples split the CPU that the threads used over the window
        from ``start`` to ``wait`` of a recording *without* py-spy (``spy=False``: native sampling pauses
        the workers, and each pause costs them kernel time, which would inflate the figures) that spans a
        whole unprofiled run of the same load, whose count of ``requests`` is given; µs per request by
        category, totals, the load generator."""
        response = response_frame()
        samples = Samples()
        for f in self.files:
            if f.exists():
                parse_raw(f.read_text().splitlines(), response, samples)
        cpu = (self.clean or self).cpu()
        window = (self.clean or self).window
        per = breakdown(samples, cpu, requests)
        n_samples = sum(sum(c.values()) for c in samples.counts.values())
        return {
            "us_per_request": per,
            "server_us": round(sum(per.values()), 1),
            "server_cores": round(sum(cpu.values()) / window, 2) if window else None,
            "client_us": round(client_us, 1),
            "client_cores": round(client_cores, 2),
            "requests": requests,
            "window_s": round(window, 2),
            "samples": n_samples,
        }


def format_breakdown(rows: dict[str, dict[str, Any]], labels: dict[str, str] | None = None) -> str:
    """The table: one row per operation, µs of server CPU per request by category, the total, and
    the load generator's µs per request and cores, and the on- and off-CPU samples the split rests on."""
    labels = labels or {}
    width = max([len(labels.get(op, op)) for op in rows] + [9])
    tail = f" {'server':>8} {'loadgen':>8} {'lg cores':>8} {'samples':>8}"
    head = f"{'operation':<{width}} " + " ".join(f"{h:>9}" for h in _HEADS) + tail
    lines = ["CPU µs per request by category (py-spy --native samples x per-thread CPU; profiled run):", head]
    for op, r in rows.items():
        per = r["us_per_request"]
        cells = " ".join(f"{per[c]:>9.1f}" for c in CATEGORIES)
        totals = f"{r['server_us']:>8.1f} {r['client_us']:>8.1f} {r['client_cores']:>8.2f} {r['samples']:>8}"
        lines.append(f"{labels.get(op, op):<{width}} {cells} {totals}")
    return "\n".join(lines)

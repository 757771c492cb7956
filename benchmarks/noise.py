"""How much CPU the benchmark used, and how much went to other processes on the machine (noise).

The machine is shared (2 cores for server, load generator and whatever else runs), so every
measurement records the CPU that processes *outside* this benchmark's process tree took while it
ran: ``foreign_cores``. A run with more than a few tenths of a core of foreign load is noisy.
Linux only (``/proc``); elsewhere the numbers are ``None``.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuMeter", "tree_cpu_seconds", "wait_idle", "wait_quiet"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_seconds() -> float | None:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    v = [int(x) for x in fields]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    busy = sum(v[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / _TICK


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(stat.parent.name))
    return tree


def tree_cpu_seconds(root: int, *, include_root: bool = False) -> float:
    """CPU seconds of the live processes under ``root`` (and of ``root`` itself if asked)."""
    tree = _children()
    total, todo = 0.0, [root] if include_root else list(tree.get(root, []))
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(f[11]) + int(f[12])) / _TICK  # utime, stime
    return total


def _ours() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    done = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped children: wrk, py-spy, raw processes
    return me.ru_utime + me.ru_stime + done.ru_utime + done.ru_stime + tree_cpu_seconds(os.getpid())


@dataclass
class CpuMeter:
    """``start()`` before and ``stop()`` after a measurement; cores used by us and by others."""

    t: float = 0.0
    busy: float | None = None
    ours: float = 0.0

    def start(self) -> CpuMeter:
        self.t, self.busy, self.ours = time.monotonic(), _busy_seconds(), _ours()
        return self

    def stop(self) -> dict[str, float | None]:
        seconds = max(time.monotonic() - self.t, 1e-9)
        busy = _busy_seconds()
        ours = (_ours() - self.ours) / seconds
        if busy is None or self.busy is None:
            return {"machine_cores": None, "bench_cores": round(ours, 2), "foreign_cores": None}
        total = (busy - self.busy) / seconds
        # Processes of ours that exited between the two samples without being reaped by us are not
        # counted in ``ours``; clamp so that noise never reads negative.
        return {
            "machine_cores": round(total, 2),
            "bench_cores": round(ours, 2),
            "foreign_cores": round(max(total - ours, 0.0), 2),
        }


def wait_idle(pid: int, *, below: float = 0.05, window: float = 0.5, timeout: float = 30.0) -> float:
    """Wait until the processes under ``pid`` use less than ``below`` cores (e.g. a key pool filled)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        a = tree_cpu_seconds(pid, include_root=True)
        time.sleep(window)
        if (tree_cpu_seconds(pid, include_root=True) - a) / window < below:
            break
    return time.monotonic() - start


def wait_quiet(max_wait: float, *, below: float = 0.15, window: float = 0.5) -> tuple[float, float | None]:
    """Wait up to ``max_wait`` s until other processes use less than ``below`` cores.

    Returns (seconds waited, foreign cores in the last window). A shared machine cannot be made
    quiet, only waited for: this keeps other sessions' bursts out of most measurements.
    """
    start = time.monotonic()
    foreign: float | None = None
    while True:
        sample = CpuMeter().start()
        time.sleep(window)
        foreign = sample.stop()["foreign_cores"]
        waited = time.monotonic() - start
        if foreign is None or foreign < below or waited >= max_wait:
            return waited, foreign

"""Linux /proc readers for tests that watch process trees: is a process alive, its children, who listens where."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["alive", "children", "listeners"]


def _stat(pid: int, task: int | None = None) -> list[str] | None:
    """Fields of /proc/PID[/task/TID]/stat after the command name (state first), or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}" + (f"/task/{task}" if task else "") + "/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    """Any of the process's threads still running. A zombie holds no sockets, but a multi-threaded process
    shows its main thread as a zombie while the others are still exiting and its sockets still open."""
    try:
        tasks = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return False
    return any((f := _stat(pid, t)) is not None and f[0] not in ("Z", "X") for t in tasks)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children(parent: int) -> set[int]:
    return {pid for pid in _pids() if (f := _stat(pid)) is not None and f[1] == str(parent) and alive(pid)}


def listeners(port: int) -> set[int]:
    """Live pids that hold a listening TCP socket on ``port`` (any address, IPv4 or IPv6)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{cols[9]}]")
    holders: set[int] = set()
    for pid in _pids():
        with contextlib.suppress(OSError):
            fd_dir = f"/proc/{pid}/fd"
            if any(os.readlink(f"{fd_dir}/{fd}") in inodes for fd in os.listdir(fd_dir)):
                holders.add(pid)
    return {pid for pid in holders if alive(pid)}

"""Optional sampling profile of the server workers under load (``--profile``), with py-spy.

``py-spy record --nonblocking --format raw`` runs on every worker for the measured window (it
does not pause the workers, so the load barely changes), writes collapsed stacks, and
:func:`summarize` turns them into the top functions by self and by inclusive share of samples.
Samples are of threads running Python code: idle time inside granian's Rust loop is not sampled.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Recording", "py_spy", "summarize"]

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


@dataclass
class Recording:
    files: list[Path]
    processes: list[subprocess.Popen[bytes]]

    @classmethod
    def start(cls, pids: list[int], seconds: int, prefix: Path, *, rate: int = 250) -> Recording:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
        files, procs = [], []
        for pid in pids:
            out = prefix.with_name(f"{prefix.name}-{pid}.txt")
            procs.append(
                subprocess.Popen(
                    [
                        exe,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(seconds),
                        "--rate",
                        str(rate),
                        "--nonblocking",
                        "--format",
                        "raw",
                        "--output",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            files.append(out)
        return cls(files, procs)

    def wait(self) -> list[Path]:
        for p in self.processes:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        return [f for f in self.files if f.exists()]


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


_FOCUS = ("kluis/api", "kluis/vault", "kluis/store", "kluis/crypto", "kluis/identity", "starlette/")


def summarize(files: list[Path], top: int = 15, focus: tuple[str, ...] = _FOCUS) -> dict[str, Any]:
    """Top functions by self and inclusive share of all samples, summed over the given recordings.

    The inclusive list only names frames whose file is under one of ``focus`` (the server's own
    code), so the always-on-stack frames of runpy, typer, granian's worker spawn and asyncio's
    ``run_forever`` do not crowd it out.
    """
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    total = 0
    for f in files:
        for line in f.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_short(fr) for fr in stack.split(";") if fr and not fr.startswith("process ")]
            frames = [fr for fr in frames if not fr.startswith("thread ")]
            if not frames:
                continue
            total += n
            self_c[frames[-1]] += n
            for fr in set(frames):
                if any(f"({m}" in fr for m in focus):
                    incl_c[fr] += n

    def share(c: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": k, "samples": v, "share": round(v / total, 4)} for k, v in c.most_common(top)]

    return {"samples": total, "self": share(self_c), "inclusive": share(incl_c)}


def format_summary(name: str, summary: dict[str, Any], top: int = 12) -> str:
    lines = [f"profile {name}: {summary['samples']} samples (Python frames, all workers)", "  self:"]
    lines += [f"    {e['share'] * 100:5.1f}%  {e['function']}" for e in summary["self"][:top]]
    lines.append("  inclusive:")
    lines += [f"    {e['share'] * 100:5.1f}%  {e['function']}" for e in summary["inclusive"][:top]]
    return "\n".join(lines)

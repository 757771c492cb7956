"""``kluis serve`` before and around granian: taken ports in one line, workers tied to their supervisor."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.procfs import alive


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port with a listener on it for the test's duration."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
    return subprocess.run(
        [sys.executable, "-m", "kluis", "serve", "--data-dir", str(data), *args],
        capture_output=True, text=True, timeout=60, env=env, start_new_session=True,
    )  # fmt: skip


def test_a_taken_https_port_is_one_line_naming_flag_and_variable(tmp_path: Path, taken_port: int) -> None:
    res = _serve(tmp_path / "data", "--port", str(taken_port), "--proxy-port", "0")
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"ERROR: port {taken_port} is already in use; choose another with --port or KLUIS_PORT"
    ]
    assert not (tmp_path / "data").exists()  # checked before anything is created


def test_a_taken_proxy_port_is_one_line_naming_flag_and_variable(tmp_path: Path, taken_port: int) -> None:
    res = _serve(tmp_path / "data", "--port", str(_free_port()), "--proxy-port", str(taken_port))
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"ERROR: port {taken_port} is already in use; choose another with --proxy-port or KLUIS_PROXY_PORT "
        "(0 turns the proxy off)"
    ]


# A parent that starts a child which ties itself to it, prints the child's pid, then waits to be killed.
_PARENT = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from kluis.cli.serve import tie_to_parent

    def child(parent, use_prctl):
        tie_to_parent(parent, poll_seconds=0.02, use_prctl=use_prctl)
        time.sleep(60)

    if __name__ == "__main__":
        p = multiprocessing.get_context("fork").Process(target=child, args=(os.getpid(), sys.argv[1] == "prctl"))
        p.start()
        print(p.pid, flush=True)
        time.sleep(60)
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("mechanism", ["prctl", "watchdog"])
def test_a_tied_child_dies_with_its_sigkilled_parent(mechanism: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, mechanism], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        time.sleep(0.2)  # let the child tie itself
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        deadline = time.monotonic() + 2
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not alive(child)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)  # this test's group: the child too, had it outlived its parent
        parent.wait(5)

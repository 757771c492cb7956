"""Start and stop a real ``kluis serve`` on free ports with a fresh data dir, and get it a token.

The same pattern as ``tests/e2e/server.py`` (nothing is imported from ``tests/``): a subprocess of
``python -m kluis serve``, polled on ``/_kluis/health`` until it answers, stopped with Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["KluisProcess", "free_port", "wait_http", "worker_pids"]

SCOPE = "https://vault.azure.net/.default"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, *, verify: ssl.SSLContext | bool, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url, verify=verify, timeout=1).status_code == 200:
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")


def launch(
    cmd: list[str],
    *,
    log_path: Path,
    ready_url: str,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    grace: float = 15.0,
) -> subprocess.Popen[bytes]:
    """Start a server process logging to ``log_path`` and wait until ``ready_url`` answers 200."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        wait_http(ready_url, verify=False, timeout=timeout, process=process)
    except RuntimeError:
        stop_process(process, grace=grace)
        raise
    return process


def worker_pids(parent: int) -> list[int]:
    """Direct children of ``parent`` (granian's worker processes), from /proc."""
    pids: list[int] = []
    for task in Path(f"/proc/{parent}/task").glob("*"):
        children = task / "children"
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
    return sorted(set(pids))


def stop_process(process: subprocess.Popen[bytes] | None, *, grace: float = 15.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(2)  # Ctrl-C, as a user would
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass
class KluisProcess:
    """One ``kluis serve`` (HTTPS only: the CONNECT proxy is off)."""

    data_dir: Path
    workers: int = 2
    key_pool: int = 16
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _token: str | None = None
    _workers: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.data_dir / "tls" / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.data_dir / "tls" / "server-key.pem"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"kluis-{self.port}.log"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def start(self, timeout: float = 60.0) -> KluisProcess:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives with the process
        cmd = [
            sys.executable, "-m", "kluis", "serve", "--data-dir", str(self.data_dir), "--port", str(self.port),
            "--proxy-port", "0", "--workers", str(self.workers), "--key-pool", str(self.key_pool),
            "--scheduler-interval", "3600",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "KLUIS_DATA_DIR": str(self.data_dir)}
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self.ca.exists():  # the CA appears during bootstrap, before the listener
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"kluis serve did not start; see {self.log_path}")
            time.sleep(0.05)
        try:
            wait_http(
                f"{self.url}/_kluis/health",
                verify=self.ssl_context(),
                timeout=max(deadline - time.monotonic(), 1),
                process=self.process,
            )
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"kluis serve did not become healthy; see {self.log_path}") from None
        self._workers = self.worker_pids()
        return self

    def stop(self) -> None:
        workers = sorted(set(self._workers) | set(self.worker_pids()))
        stop_process(self.process)
        # Workers outlive a main process that was killed outright (they are re-parented to init and
        # keep serving): end those of ours that are left, by pid, if they still run this data dir.
        for pid in workers:
            with contextlib.suppress(OSError):
                if str(self.data_dir) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    os.kill(pid, signal.SIGKILL)
        self.process = None
        self._token = None
        self._workers = []

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def worker_pids(self) -> list[int]:
        return worker_pids(self.process.pid) if self.process is not None else []

    def admin(self) -> dict[str, str]:
        return dict(json.loads((self.data_dir / "admin.json").read_text()))

    def token(self) -> str:
        """A client-credentials token of the administrator for the data plane (valid for an hour)."""
        if self._token is None:
            a = self.admin()
            r = httpx.post(
                f"{self.url}/adfs/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": a["appId"],
                    "client_secret": a["password"],
                    "scope": SCOPE,
                },
                verify=self.ssl_context(),
                timeout=30,
            )
            r.raise_for_status()
            self._token = str(r.json()["access_token"])
        return self._token

    def client(self) -> httpx.Client:
        """A keep-alive client for setup calls (not for load)."""
        return httpx.Client(
            base_url=self.url,
            verify=self.ssl_context(),
            headers={"Authorization": f"Bearer {self.token()}"},
            params={"api-version": "7.6"},
            timeout=60,
        )

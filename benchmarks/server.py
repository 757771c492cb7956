"""Start and stop a real ``kluis serve`` on free ports with a fresh data dir, and get it a token.

The same pattern as ``tests/e2e/server.py`` (nothing is imported from ``tests/``): a subprocess of
``python -m kluis serve``, polled on ``/_kluis/health`` until it answers, stopped with Ctrl-C.
Any checkout can be served (``--baseline``): its ``src`` goes first on ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "BENCH_THROTTLE_LIMIT",
    "KluisProcess",
    "free_port",
    "probe",
    "serve_command",
    "wait_http",
    "with_pythonpath",
    "worker_pids",
]

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


SRC = Path(__file__).resolve().parent.parent / "src"  # this checkout's kluis

# ``kluis serve`` flags and the environment variables that stand in for them (kluis reads both):
# a checkout whose CLI lacks a flag still gets the setting through its variable, if it reads one.
_ENV = {
    "--data-dir": "KLUIS_DATA_DIR",
    "--port": "KLUIS_PORT",
    "--proxy-port": "KLUIS_PROXY_PORT",
    "--workers": "KLUIS_WORKERS",
    "--scheduler-interval": "KLUIS_SCHEDULER_INTERVAL",
    "--database": "KLUIS_DATABASE",
    "--audit": "KLUIS_AUDIT",
}
# The benchmarks' kluis per-vault throttle (requests per 10 s): never answers 429, while its check still
# runs on every request (kluis's default, 100,000 per 10 s, is below what one vault serves on 2 cores).
BENCH_THROTTLE_LIMIT = 1_000_000_000
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def serve_command(options: dict[str, str], known: set[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """``kluis serve`` with those of ``options`` (flag -> value) that its CLI ``known``s.

    Returns (argv, environment variables for every option that has one, flags left out).
    """
    argv = [sys.executable, "-m", "kluis", "serve"]
    dropped: list[str] = []
    for flag, value in options.items():
        if flag in known:
            argv += [flag, value]
        else:
            dropped.append(flag)
    env = {_ENV[f]: v for f, v in options.items() if f in _ENV}
    return argv, env, dropped


def probe(src: Path) -> tuple[str, set[str]]:
    """Which kluis ``PYTHONPATH=src`` imports (its ``__file__``) and the flags its ``serve --help`` lists.

    RuntimeError when kluis is imported from elsewhere (e.g. ``src`` has no ``kluis`` package) or
    ``serve --help`` fails.
    """
    env = with_pythonpath(src, {"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"})
    where = subprocess.run([sys.executable, "-c", "import kluis; print(kluis.__file__)"], env=env,
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    file = where.stdout.strip()
    if where.returncode != 0 or not Path(file).resolve().is_relative_to(src.resolve()):
        raise RuntimeError(f"PYTHONPATH={src} does not import kluis from there: {file or where.stderr.strip()}")
    helped = subprocess.run([sys.executable, "-m", "kluis", "serve", "--help"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    if helped.returncode != 0:
        raise RuntimeError(f"kluis serve --help from {src} failed: {helped.stderr.strip() or helped.stdout.strip()}")
    return file, set(_FLAG.findall(helped.stdout))


def with_pythonpath(first: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus ``extra``, with ``first`` at the front of ``PYTHONPATH``."""
    path = os.pathsep.join(p for p in (str(first), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, **(extra or {}), "PYTHONPATH": path}


@dataclass
class KluisProcess:
    """One ``kluis serve`` of the checkout whose ``src`` is given (HTTPS; the CONNECT proxy only with ``proxy_port``).

    The same interpreter and venv run it, with ``PYTHONPATH=src`` so that checkout's kluis is the
    one imported (checked by :func:`probe`); flags its CLI does not list are left out (``dropped``).
    """

    data_dir: Path
    workers: int = 2
    key_pool: int = 16
    src: Path = SRC
    database: str = ""  # "" (SQLite in the data dir) or a postgresql:// URL
    audit: str = "on"  # kluis serve --audit (left out for a checkout that has no such flag)
    throttle_limit: int | None = None  # kluis serve --throttle-limit (None: kluis's default)
    ablate: str = ""  # benchmarks.ablate steps its workers replace (comma list or "all"; "": none)
    proxy_port: int = 0  # the CONNECT proxy's port (0: off); -1: a free one, chosen at start
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    kluis_file: str = ""
    dropped: list[str] = field(default_factory=list)
    _flags: set[str] | None = None
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
        """Start and wait until healthy; RuntimeError (naming the log) when it does not get there."""
        if self._flags is None:
            self.kluis_file, self._flags = probe(self.src)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        options = {
            "--data-dir": str(self.data_dir), "--port": str(self.port),
            "--proxy-port": str(free_port() if self.proxy_port < 0 else self.proxy_port),
            "--workers": str(self.workers), "--key-pool": str(self.key_pool), "--scheduler-interval": "3600",
        }  # fmt: skip
        if self.database:
            options["--database"] = self.database
        if self.audit != "on":
            options["--audit"] = self.audit
        if self.throttle_limit is not None:
            options["--throttle-limit"] = str(self.throttle_limit)
        self.proxy_port = int(options["--proxy-port"])
        argv, env, self.dropped = serve_command(options, self._flags)
        full_env = with_pythonpath(self.src, env)
        if self.ablate:  # benchmarks/ablation/sitecustomize.py applies it in every process of this server only
            from benchmarks.ablate import ENV, SITE_DIR, parse_steps

            full_env[ENV] = ",".join(parse_steps(self.ablate))
            parts = (str(self.src), str(SITE_DIR), str(SRC.parent), full_env["PYTHONPATH"])
            full_env["PYTHONPATH"] = os.pathsep.join(parts)
        try:
            self.process = launch(argv, log_path=self.log_path, ready_url=f"{self.url}/_kluis/health",
                                  timeout=timeout, env=full_env)  # fmt: skip
        except RuntimeError as e:
            raise RuntimeError(f"kluis serve ({self.src}) did not become healthy: {e}; see {self.log_path}") from None
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

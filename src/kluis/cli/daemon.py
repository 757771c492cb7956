"""``kluis serve --detach``, ``kluis stop`` and ``kluis status``: one server per data directory, run in the background.

A detached server is an ordinary ``kluis serve`` child started in a new session (so it has no controlling
terminal and its own process group: the supervisor and its workers), with standard input from
``/dev/null`` and standard output and error appended to ``DATA_DIR/kluis.log``. Its pid is written to
``DATA_DIR/kluis.pid``; the command returns once ``/_kluis/health`` answers (or fails with the log's
last lines if the server exits first). ``kluis stop`` sends SIGINT to that process group, as Ctrl-C in
a terminal does, waits for the supervisor to exit (SIGKILL to the group after the timeout) and removes
the pid file. ``kluis status`` says whether it runs and answers.

This module imports nothing of the server itself, so ``kluis stop``/``status`` start fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from kluis.cli.client import CliError, load_settings
from kluis.config import DataDir, ServerSettings

__all__ = [
    "SECRET_SETTINGS",
    "DetachedServer",
    "Status",
    "detach",
    "health",
    "log_path",
    "pid_path",
    "read_pid",
    "serve_args",
    "serve_env",
    "status",
    "stop",
    "wait_healthy",
]

LOG_TAIL_LINES = 20  # lines of the log shown when a detached server fails to start
_START_MARK = "--- kluis serve --detach"  # heads each detached start's part of the log


def pid_path(data_dir: DataDir) -> Path:
    """``DATA_DIR/kluis.pid``: the detached supervisor's pid (also its process group id), one line."""
    return data_dir.path / "kluis.pid"


def log_path(data_dir: DataDir) -> Path:
    """``DATA_DIR/kluis.log``: a detached server's standard output and error, appended across starts."""
    return data_dir.path / "kluis.log"


# Settings ``kluis serve`` has no option for (their defaults apply to a detached server as to any).
_NOT_OPTIONS = frozenset({"region", "audit_batch", "db_threads"})
# Settings that may hold a secret (a database password, an ``env:`` or ``pkcs11:`` source): handed to
# the detached server in its environment, which only its user can read, not on its command line,
# which ``ps`` shows everyone.
SECRET_SETTINGS = {"database": "KLUIS_DATABASE", "kek": "KLUIS_KEK_SOURCE"}
_REPEATED = {"hostnames": "--hostname", "domains": "--domain"}


def serve_args(data_dir: DataDir, settings: ServerSettings) -> list[str]:
    """The ``kluis serve`` arguments (after ``serve``) that start a server with exactly ``settings``,
    together with :func:`serve_env`: every setting that is an option, by its option's name (a setting
    added later is passed on without a change here; ``--detach`` once lost ``--database``, ``--kek``,
    the audit, metrics and log options)."""
    args = ["--data-dir", str(data_dir.path)]
    for f in fields(ServerSettings):
        name, value = f.name, getattr(settings, f.name)
        if name in _NOT_OPTIONS or name in SECRET_SETTINGS:
            continue
        flag = "--" + name.replace("_", "-")
        if name in _REPEATED:
            args += [part for item in value for part in (_REPEATED[name], item)]
        elif name == "audit":
            args += [flag, "on" if value else "off"]
        elif isinstance(value, bool):  # a flag without a --no- form: given when on
            if value:
                args.append(flag)
        else:
            args += [flag, repr(value) if isinstance(value, float) else str(value)]
    return args


def serve_env(settings: ServerSettings) -> dict[str, str]:
    """The variables that carry :data:`SECRET_SETTINGS` to a detached ``kluis serve``."""
    return {variable: getattr(settings, name) for name, variable in SECRET_SETTINGS.items()}


def alive(pid: int) -> bool:
    """True while a process with this pid exists (and is not a zombie we could see)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        raw = stat.read_text()
        return raw[raw.rindex(")") + 2] not in "ZX"
    return True


def _is_kluis(pid: int) -> bool:
    """The pid is alive and, where /proc tells, runs ``kluis serve`` (a recycled pid is not ours to signal)."""
    if not alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no /proc (macOS): trust the pid file
        return True
    try:
        words = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return b"serve" in words and any(b"kluis" in w for w in words)


def read_pid(data_dir: DataDir) -> int | None:
    """The pid in the pid file if that process still runs kluis; None when there is no such server."""
    try:
        pid = int(pid_path(data_dir).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _is_kluis(pid) else None


def health(settings: ServerSettings, ca_file: Path, timeout: float = 2.0) -> dict[str, Any] | None:
    """The answer of ``GET /_kluis/health`` (``{"status": "ok", "tenant": ...}``), or None if none came."""
    import httpx

    if not ca_file.exists():
        return None
    try:
        r = httpx.get(
            f"{settings.url}/_kluis/health",
            verify=ssl.create_default_context(cafile=str(ca_file)),
            timeout=timeout,
            trust_env=False,  # kluis's own listener, never through HTTPS_PROXY (CI often sets a foreign one)
        )
        answer: dict[str, Any] = r.json()
    except (httpx.HTTPError, OSError, ValueError):
        return None
    return answer if r.status_code == 200 else None


def wait_healthy(
    data_dir: DataDir,
    settings: ServerSettings,
    exited: Callable[[], int | None],
    *,
    timeout: float = 60.0,
    poll: float = 0.02,
) -> dict[str, Any]:
    """Poll ``/_kluis/health`` until it answers; returns the answer.

    ``exited()`` returns the server's exit code once it has exited (else None); an exit or ``timeout``
    seconds without an answer raise :class:`CliError` naming the log and quoting its last lines.
    """
    import httpx

    ca_file = data_dir.tls / "ca.pem"
    deadline = time.monotonic() + timeout
    client: httpx.Client | None = None
    try:
        while True:
            code = exited()
            if code is not None:
                raise CliError(f"kluis serve exited with code {code} before it answered.{_log_tail(data_dir)}")
            if client is None and ca_file.exists():
                # trust_env=False: straight to kluis's own listener; a foreign HTTPS_PROXY (corporate CI, or
                # `kluis exec`'s own) made every poll fail and --detach give up after 60 s
                client = httpx.Client(
                    verify=ssl.create_default_context(cafile=str(ca_file)), timeout=2.0, trust_env=False
                )
            if client is not None:
                with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
                    r = client.get(f"{settings.url}/_kluis/health")
                    if r.status_code == 200:
                        answer: dict[str, Any] = r.json()
                        return answer
            if time.monotonic() > deadline:
                raise CliError(f"kluis serve did not answer within {timeout:g} s.{_log_tail(data_dir)}")
            time.sleep(poll)
    finally:
        if client is not None:
            client.close()


def _log_tail(data_dir: DataDir) -> str:
    """The log of the start that just failed (from the last ``--- kluis serve --detach`` line on: the
    file keeps earlier starts, whose errors once headed the message), its ``ERROR:`` lines first."""
    path = log_path(data_dir)
    try:
        every = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    starts = [n for n, line in enumerate(every) if line.startswith(_START_MARK)]
    if starts:
        every = every[starts[-1] + 1 :]
    # kluis's own one-line errors first (a busy port, a wrong kek.key), then the end of the log
    errors = [line for line in every if line.startswith("ERROR:")]
    lines = errors + [line for line in every[-LOG_TAIL_LINES:] if line not in errors]
    return f" Log {path}:\n" + "\n".join(lines) if lines else f" Log {path} is empty."


@dataclass(frozen=True)
class DetachedServer:
    """Where a detached server listens and how to find it again."""

    pid: int
    url: str
    proxy_url: str | None
    data_dir: Path
    pid_file: Path
    log_file: Path
    tenant: str

    def lines(self) -> list[str]:
        """What ``kluis serve --detach`` prints, one fact a line."""
        out = [f"kluis listening on {self.url} (pid {self.pid})"]
        if self.proxy_url:
            out.append(f"CONNECT proxy on {self.proxy_url}")
        out += [f"data dir:  {self.data_dir}", f"pid file:  {self.pid_file}", f"log file:  {self.log_file}"]
        out.append("stop it with:  kluis stop" + ("" if _is_default(self.data_dir) else f" --data-dir {self.data_dir}"))
        return out


def _is_default(path: Path) -> bool:
    from kluis.config import default_data_dir

    return path == default_data_dir()


def detach(
    data_dir: DataDir,
    settings: ServerSettings,
    *,
    timeout: float = 60.0,
    command: Sequence[str] | None = None,
) -> DetachedServer:
    """Start ``kluis serve`` with ``settings`` in the background and return once it answers.

    ``command`` is the program to run before ``serve`` (default: this Python with ``-m kluis``).
    Raises :class:`CliError` when a server already runs from ``data_dir`` or the new one exits or
    does not answer within ``timeout`` seconds (then it is stopped, and the message quotes its log).
    """
    running = read_pid(data_dir)
    if running is not None:
        raise CliError(f"kluis is already running from {data_dir.path} (pid {running}); `kluis stop` stops it.")
    data_dir.ensure()
    argv = [*(command or [sys.executable, "-m", "kluis"]), "serve", *serve_args(data_dir, settings)]
    env = {k: v for k, v in os.environ.items() if k not in ("KLUIS_SUPERVISOR_PID",)} | serve_env(settings)
    with open(log_path(data_dir), "ab") as log, open(os.devnull, "rb") as devnull:
        log.write(f"{_START_MARK} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
        log.flush()
        process = subprocess.Popen(
            argv, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, close_fds=True
        )
    pid_path(data_dir).write_text(f"{process.pid}\n")
    try:
        answer = wait_healthy(data_dir, settings, process.poll, timeout=timeout)
    except CliError:
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(10)
        with contextlib.suppress(OSError):
            pid_path(data_dir).unlink()
        raise
    # The child outlives this command: it is in its own session, and init adopts it when we exit.
    return DetachedServer(
        pid=process.pid,
        url=settings.url,
        proxy_url=settings.proxy_url if settings.proxy_port else None,
        data_dir=data_dir.path,
        pid_file=pid_path(data_dir),
        log_file=log_path(data_dir),
        tenant=str(answer.get("tenant", "")),
    )


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop(data_dir: DataDir, *, timeout: float = 15.0) -> int:
    """Stop the detached server of ``data_dir``; returns its pid.

    SIGINT to its process group (the supervisor shuts its workers down), then SIGKILL to the group if
    the supervisor is still there after ``timeout`` seconds. Raises :class:`CliError` when no server
    runs from ``data_dir`` (a stale pid file is removed).
    """
    pid = read_pid(data_dir)
    if pid is None:
        stale = pid_path(data_dir).exists()
        with contextlib.suppress(OSError):
            pid_path(data_dir).unlink()
        raise CliError(
            f"kluis is not running from {data_dir.path}" + (" (removed a stale pid file)." if stale else ".")
        )
    _signal_group(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        _signal_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    with contextlib.suppress(OSError):
        pid_path(data_dir).unlink()
    return pid


@dataclass(frozen=True)
class Status:
    """What ``kluis status`` reports; ``running`` is True only when the server also answers."""

    running: bool
    pid: int | None
    url: str | None
    proxy_url: str | None
    data_dir: Path
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "running": self.running, "pid": self.pid, "url": self.url, "proxyUrl": self.proxy_url,
            "dataDir": str(self.data_dir), "detail": self.detail,
        }  # fmt: skip


def status(data_dir: DataDir) -> Status:
    """Whether the server of ``data_dir`` runs (detached, per its pid file) and answers its health check.

    A server started in the foreground has no pid file; it counts as running when it answers.
    """
    pid = read_pid(data_dir)
    try:
        settings = load_settings(data_dir)
    except CliError:
        return Status(False, pid, None, None, data_dir.path, "no kluis server configured in this data dir")
    proxy = settings.proxy_url if settings.proxy_port else None
    answer = health(settings, data_dir.tls / "ca.pem")
    if answer is not None:
        how = f"pid {pid}" if pid is not None else "no pid file: started in the foreground"
        return Status(True, pid, settings.url, proxy, data_dir.path, f"answers ({how})")
    if pid is not None:
        return Status(False, pid, settings.url, proxy, data_dir.path, f"pid {pid} runs but does not answer")
    return Status(False, None, settings.url, proxy, data_dir.path, "not running")

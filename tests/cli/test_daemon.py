"""``kluis serve --detach`` / ``kluis stop`` / ``kluis status``: a background server, found through its data dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kluis.cli.client import CliError
from kluis.cli.daemon import DetachedServer, pid_path, read_pid, serve_args, status, stop
from kluis.config import DataDir, ServerSettings
from kluis.testing import KluisServer, free_port
from tests.cli.procfs import alive, children

# Every setting a user can give `kluis serve`, each away from its default (a dropped one shows).
_EVERY_OPTION = dict(
    host="0.0.0.0", port=1, proxy_port=0, hostnames=["a.example"], domains=["kms.example", "x.example"],
    workers=3, proxy_passthrough=True, scheduler_interval=2.5, key_pool=4, throttle_limit=9, audit=False,
    audit_retention_days=7, audit_retention_count=11, audit_flush_ms=50, metrics_port=9100,
    metrics_host="0.0.0.0", log_format="json", access_log=True,
    database="postgresql://kluis:s3cret@db.internal:5432/kluis", kek="env:MY_KEK",
)  # fmt: skip


def test_serve_args_and_env_start_a_server_with_exactly_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``--detach`` hands its child, parsed by the real ``kluis serve``, gives back every setting
    (it once lost --database, --kek and the audit, metrics and log options); secrets are not in argv."""
    import kluis.cli.serve
    from kluis.cli.daemon import SECRET_SETTINGS, serve_env
    from kluis.cli.main import app

    settings = ServerSettings(**_EVERY_OPTION)  # type: ignore[arg-type]
    defaults = ServerSettings()
    unset = {f.name for f in fields(ServerSettings)} - set(_EVERY_OPTION)
    assert unset == {"region", "audit_batch", "db_threads"}  # no option: a new option belongs in _EVERY_OPTION
    assert all(getattr(settings, k) != getattr(defaults, k) for k in _EVERY_OPTION)
    args, env = serve_args(DataDir(tmp_path), settings), serve_env(settings)
    assert not any("s3cret" in a or "MY_KEK" in a for a in args)  # ps shows argv to every user
    assert env == {SECRET_SETTINGS["database"]: settings.database, SECRET_SETTINGS["kek"]: settings.kek}
    started: list[ServerSettings] = []
    monkeypatch.setattr(kluis.cli.serve, "serve", lambda data_dir, s, console: started.append(s))
    for name in [k for k in os.environ if k.startswith("KLUIS_")]:
        monkeypatch.delenv(name)
    res = CliRunner().invoke(app, ["serve", *args], env=env)
    assert res.exit_code == 0, res.output
    assert started == [settings]


@pytest.mark.parametrize("content", ["", "garbage", "999999999", f"{os.getpid()}"])
def test_a_pid_file_that_names_no_kluis_is_no_server(tmp_path: Path, content: str) -> None:
    """Empty, unreadable, a dead pid, or a live process that is not kluis serve (this pytest): not running."""
    data_dir = DataDir(tmp_path)
    pid_path(data_dir).write_text(content)
    assert read_pid(data_dir) is None
    with pytest.raises(CliError, match=r"not running .*removed a stale pid file"):
        stop(data_dir)
    assert not pid_path(data_dir).exists()


def test_status_without_a_server(tmp_path: Path) -> None:
    found = status(DataDir(tmp_path))
    assert not found.running and found.as_dict()["detail"] == "no kluis server configured in this data dir"


def test_detached_server_lines(tmp_path: Path) -> None:
    info = DetachedServer(7, "https://localhost:1", "http://127.0.0.1:2", tmp_path, tmp_path / "p", tmp_path / "l", "t")
    assert info.lines() == [
        "kluis listening on https://localhost:1 (pid 7)",
        "CONNECT proxy on http://127.0.0.1:2",
        f"data dir:  {tmp_path}",
        f"pid file:  {tmp_path / 'p'}",
        f"log file:  {tmp_path / 'l'}",
        f"stop it with:  kluis stop --data-dir {tmp_path}",
    ]


def _kluis(
    data: Path, *args: str, timeout: float = 90, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in (os.environ if env is None else env).items() if not k.startswith("KLUIS_")}
    return subprocess.run(
        [sys.executable, "-m", "kluis", *args, "--data-dir", str(data)],
        capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_detach_status_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port, proxy_port = free_port(), free_port()
    while proxy_port == port:  # two free_port() calls may name the same port
        proxy_port = free_port()
    began = time.monotonic()
    res = _kluis(data, "serve", "--detach", "--port", str(port), "--proxy-port", str(proxy_port), "--workers", "1")
    took = time.monotonic() - began
    pid = read_pid(DataDir(data))
    try:
        assert res.returncode == 0, res.stderr
        assert pid is not None
        lines = res.stdout.splitlines()
        assert lines[0] == f"kluis listening on https://localhost:{port} (pid {pid})"
        assert f"pid file:  {data / 'kluis.pid'}" in lines and f"log file:  {data / 'kluis.log'}" in lines
        assert os.getsid(pid) == pid and os.getpgid(pid) == pid  # its own session and process group
        assert len(children(pid)) == 1  # the worker
        print(f"kluis serve --detach returned after {took:.2f} s")

        st = _kluis(data, "status")
        assert st.returncode == 0
        reported = json.loads(st.stdout)
        assert reported["running"] and reported["pid"] == pid and reported["url"] == f"https://localhost:{port}"

        again = _kluis(data, "serve", "--detach", "--port", str(free_port()), "--proxy-port", "0")
        assert again.returncode == 1 and f"already running from {data} (pid {pid})" in again.stderr

        workers = children(pid)
        stopped = _kluis(data, "stop")
        assert stopped.returncode == 0 and stopped.stdout.strip() == f"kluis stopped (pid {pid})"
        assert not alive(pid) and not any(alive(w) for w in workers)
        assert not (data / "kluis.pid").exists()
        assert "kluis stopped; data kept in" in (data / "kluis.log").read_text()  # a clean shutdown

        st = _kluis(data, "status")
        assert st.returncode == 3 and json.loads(st.stdout)["detail"] == "not running"
        gone = _kluis(data, "stop")
        assert gone.returncode == 1 and gone.stderr.startswith("ERROR: kluis is not running")
    finally:
        if pid is not None and alive(pid):
            os.killpg(pid, signal.SIGKILL)


def _has_ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_a_detached_server_on_the_ipv6_loopback_is_usable(tmp_path: Path) -> None:
    """--host ::1 alone: kluis's own tools reach it at https://[::1]:PORT (localhost may name 127.0.0.1
    only, where nothing listens), over TLS checked against the certificate's ::1 IP SAN."""
    data = tmp_path / "data"
    port = free_port()
    res = _kluis(data, "serve", "--detach", "--host", "::1", "--port", str(port), "--proxy-port", "0", "--workers", "1")
    pid = read_pid(DataDir(data))
    try:
        assert res.returncode == 0, res.stderr
        assert pid is not None
        assert res.stdout.splitlines()[0] == f"kluis listening on https://[::1]:{port} (pid {pid})"
        st = _kluis(data, "status")
        assert st.returncode == 0, st.stdout + st.stderr
        assert json.loads(st.stdout)["url"] == f"https://[::1]:{port}"
        vaults = _kluis(data, "keyvault", "list")
        assert vaults.returncode == 0, vaults.stderr
        assert "default" in vaults.stdout
        stopped = _kluis(data, "stop")
        assert stopped.returncode == 0 and stopped.stdout.strip() == f"kluis stopped (pid {pid})"
        assert not alive(pid)
    finally:
        if pid is not None and alive(pid):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_detached_server_keeps_every_option(tmp_path: Path) -> None:
    """The attacker's repro: --kek env:VAR, --audit off, --log-format json and --access-log were
    dropped by --detach (a random kek.key was written, server.json said audit on, text logs)."""
    import base64
    import secrets

    data = tmp_path / "data"
    port = free_port()
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {**os.environ, "DETACH_TEST_KEK": key}
    res = _kluis(data, "serve", "--detach", "--port", str(port), "--proxy-port", "0", "--workers", "1",
                 "--kek", "env:DETACH_TEST_KEK", "--audit", "off", "--log-format", "json", "--access-log",
                 "--audit-flush-ms", "75", env=env)  # fmt: skip
    pid = read_pid(DataDir(data))
    try:
        assert res.returncode == 0, res.stderr
        assert pid is not None
        recorded = json.loads((data / "server.json").read_text())
        assert recorded["kek"] == "env:DETACH_TEST_KEK" and recorded["audit"] is False
        assert recorded["log_format"] == "json" and recorded["access_log"] is True
        assert recorded["audit_flush_ms"] == 75
        assert not (data / "kek.key").exists()  # the key came from the variable
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"--kek" not in argv and key.encode() not in b" ".join(argv)  # secrets stay out of ps
        assert _kluis(data, "stop").returncode == 0
    finally:
        if pid is not None and alive(pid):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_foreign_https_proxy_does_not_stop_the_cli_reaching_kluis(tmp_path: Path) -> None:
    """Corporate CI sets HTTPS_PROXY (and `kluis exec` sets its own): --detach waited 60 s and gave up,
    and `status` and every verb said kluis did not answer. The CLI talks to kluis's listener directly."""
    data = tmp_path / "data"
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:1", "https_proxy": "http://127.0.0.1:1",
           "ALL_PROXY": "http://127.0.0.1:1"}  # fmt: skip
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    began = time.monotonic()
    res = _kluis(data, "serve", "--detach", "--port", str(free_port()), "--proxy-port", "0", "--workers", "1",
                 env=env, timeout=60)  # fmt: skip
    pid = read_pid(DataDir(data))
    try:
        assert res.returncode == 0, res.stderr
        assert time.monotonic() - began < 30
        assert _kluis(data, "status", env=env).returncode == 0
        listed = _kluis(data, "keyvault", "list", "-o", "json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert "default" in {v["name"] for v in json.loads(listed.stdout)}
        assert _kluis(data, "stop", env=env).returncode == 0
    finally:
        if pid is not None and alive(pid):
            os.killpg(pid, signal.SIGKILL)


def test_a_failed_start_quotes_only_its_own_part_of_the_log(tmp_path: Path) -> None:
    """The log keeps every detached start; an earlier start's ERROR line once headed the message."""
    from kluis.cli.daemon import _log_tail, log_path

    data_dir = DataDir(tmp_path)
    log_path(data_dir).write_text(
        "--- kluis serve --detach at 2026-11-30T10:00:00+0000\nERROR: kek.key is missing\nold line\n"
        "--- kluis serve --detach at 2026-11-30T10:05:00+0000\nstarting\n"
        "ERROR: kek.key is not the key of the database\n"
    )
    tail = _log_tail(data_dir)
    assert "is not the key of the database" in tail and "is missing" not in tail and "old line" not in tail
    assert tail.splitlines()[1] == "ERROR: kek.key is not the key of the database"  # its errors first


@pytest.mark.slow
def test_a_detached_server_that_fails_reports_its_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with __import__("socket").socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = _kluis(data, "serve", "--detach", "--port", str(port), "--proxy-port", "0")
    assert res.returncode == 1
    assert res.stderr.startswith("ERROR: kluis serve exited with code 1 before it answered.")
    assert f"port {port} is already in use" in res.stderr and not (data / "kluis.pid").exists()


@pytest.mark.slow
def test_status_of_a_server_started_in_the_foreground(kluis_server: KluisServer) -> None:
    """No pid file, but it answers: running, and status says how it was started."""
    found = status(DataDir(kluis_server.data_dir))
    assert found.running and found.pid is None and found.url == kluis_server.url
    assert found.detail == "answers (no pid file: started in the foreground)"

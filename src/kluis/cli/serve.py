"""``kluis serve``: first-start setup, then the HTTPS server, the CONNECT proxy and the scheduler.

The main process (the supervisor) bootstraps (so worker processes never race to create the tenant
or the CA), runs the proxy and the housekeeping scheduler in daemon threads, and hands the TLS
listener to granian, whose worker processes each build the app from the same data directory.

Workers never outlive the supervisor: each one asks the kernel for SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)`` on Linux; elsewhere a watchdog thread polls the parent pid), so a
supervisor killed outright (the OOM killer, ``kill -9``) leaves no process holding the ports. On any
other exit the supervisor reaps its workers itself. The proxy and scheduler are threads of the
supervisor and end with it.

A worker that dies on its own (the OOM killer picked it, a crash) is replaced: granian's
``respawn_failed_workers`` starts a new one in its slot at once, while the others keep serving. A
worker that dies again within granian's crash-loop window (5.5 s after its respawn) stops the whole
server instead, so a worker that cannot start does not spin.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import multiprocessing
import os
import shlex
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from kluis.api.logs import logging_config
from kluis.api.metrics import prepare_directory, scheduler_run, serve_metrics
from kluis.api.proxy import ProxyConfig, run_proxy_in_thread
from kluis.api.runtime import Runtime
from kluis.api.tunnels import tunnel_table_path
from kluis.cli.client import CliError
from kluis.config import DataDir, ServerSettings, default_data_dir, granian_limits, raise_open_files_limit
from kluis.identity.pki import TlsFiles, ca_fingerprint, default_server_names, ensure_tls, write_ca_bundle

__all__ = ["check_port", "prepare", "serve", "tie_to_parent"]

log = logging.getLogger("kluis.serve")

SUPERVISOR_PID_VAR = "KLUIS_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def tie_to_parent(parent_pid: int, *, poll_seconds: float = 0.5, use_prctl: bool = True) -> str:
    """Make this process die (SIGKILL) as soon as ``parent_pid``, its parent, is gone.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, then a check that the parent did not die before the
    request was made. Elsewhere (or with ``use_prctl=False``): a daemon thread that compares
    ``os.getppid()`` with ``parent_pid`` every ``poll_seconds`` seconds. Returns the mechanism used,
    ``"prctl"`` or ``"watchdog"``. Never raises: a process that cannot be tied still serves.
    """
    mechanism = "watchdog"
    if use_prctl and sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                mechanism = "prctl"
        except (OSError, AttributeError):  # no libc / no prctl symbol: fall back to the watchdog
            pass
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
    if mechanism == "watchdog":

        def watch() -> None:
            while os.getppid() == parent_pid:
                threading.Event().wait(poll_seconds)
            os._exit(1)

        threading.Thread(target=watch, name="kluis-parent-watchdog", daemon=True).start()
    return mechanism


def _worker_app() -> Any:
    """granian's target loader, run in each worker before it builds the app (see the module doc)."""
    parent = os.environ.get(SUPERVISOR_PID_VAR)
    if parent:
        tie_to_parent(int(parent))
    from kluis.api.app import create_app

    return create_app()


def _reap_workers() -> None:
    """Kill and wait for any worker granian left behind (its own shutdown normally stops them)."""
    for child in multiprocessing.active_children():
        child.kill()
        child.join(5)


def _in_use(port: int, flag: str, env: str, extra: str = "") -> CliError:
    return CliError(f"port {port} is already in use; choose another with {flag} or {env}{extra}")


def check_port(host: str, port: int, flag: str, env: str, extra: str = "") -> None:
    """Fail with one readable line if nothing can listen on ``host:port`` now.

    The probe binds with SO_REUSEADDR (as the real listeners do), so a port that only has
    connections in TIME_WAIT counts as free; any listener, including an orphaned worker's, does not.
    Raises :class:`CliError` naming the port, the flag and the environment variable that change it.
    """
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(addr)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise _in_use(port, flag, env, extra) from None
        reason = e.strerror or str(e)
        raise CliError(f"cannot listen on {host}:{port} ({reason}); choose another with {flag} or {env}") from None


def prepare(data_dir: DataDir, settings: ServerSettings) -> tuple[Runtime, TlsFiles]:
    """Everything a first start creates; safe to call on every start."""
    data_dir.ensure()
    runtime = Runtime(data_dir, settings, bootstrap=True)
    names = default_server_names(settings.hostnames, settings.domains)
    if settings.host not in ("127.0.0.1", "0.0.0.0", "::", "::1", "localhost") and settings.host not in names:
        names.append(settings.host)
    runtime.share_ca(data_dir.tls)  # a shared database's CA, if it keeps one, before any is made here
    tls = ensure_tls(data_dir.tls, names)
    if runtime.share_ca(data_dir.tls):  # another node published its CA first: serve a certificate from that one
        tls = ensure_tls(data_dir.tls, names)
    write_ca_bundle(tls.ca_cert, data_dir.ca_bundle)
    data_dir.write_server(settings)
    return runtime, tls


def _scheduler(runtime: Runtime, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            tick = runtime.housekeeping()
            purged, rotated = tick.purged, tick.acted
            if purged or rotated:
                log.info("housekeeping: purged %d, rotated %d key(s)", purged, rotated)
            pruned = runtime.prune_audit()
            if pruned:
                log.info("audit retention: %d record(s) deleted", pruned)
            scheduler_run(True, purged, rotated, tick.failed)
        except Exception:  # the scheduler must outlive one bad tick
            log.exception("housekeeping tick failed")
            scheduler_run(False)


_PROXY_HINT = " (0 turns the proxy off)"


def serve(data_dir: DataDir, settings: ServerSettings, console: Console) -> None:
    """Run until Ctrl-C/SIGTERM. Raises :class:`CliError` (one line) when a port is taken."""
    from granian.constants import Interfaces
    from granian.server import Server

    raise_open_files_limit()
    proxy_config = None
    if settings.proxy_port:
        proxy_config = ProxyConfig(
            listen_host="127.0.0.1" if settings.host in ("127.0.0.1", "localhost") else settings.host,
            listen_port=settings.proxy_port,
            upstream_host="127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host,
            upstream_port=settings.port,
            passthrough=settings.proxy_passthrough,
            domains=tuple(settings.domains),
            tunnels=tunnel_table_path(data_dir.path, settings.port),
        )
    check_port(settings.host, settings.port, "--port", "KLUIS_PORT")
    if proxy_config is not None:
        check_port(proxy_config.listen_host, settings.proxy_port, "--proxy-port", "KLUIS_PROXY_PORT", _PROXY_HINT)
    if settings.metrics_port:
        check_port(settings.metrics_host, settings.metrics_port, "--metrics-port", "KLUIS_METRICS_PORT")
    log_config = logging_config(settings.log_format, access_log=settings.access_log)
    data_dir.ensure()
    # Held (shared) for the supervisor's life: `kluis restore` refuses while any server holds it.
    serve_lock = open(data_dir.serve_lock, "a+")  # noqa: SIM115 - released when the process ends
    fcntl.flock(serve_lock, fcntl.LOCK_SH)
    runtime, tls = prepare(data_dir, settings)
    runtime.store.close()
    os.environ["KLUIS_DATA_DIR"] = str(data_dir.path)
    os.environ[SUPERVISOR_PID_VAR] = str(os.getpid())
    proxy = None
    metrics_server = None
    if settings.metrics_port:  # before the workers start: they inherit the directory's variable
        prepare_directory(data_dir.metrics)
        metrics_server = serve_metrics(settings.metrics_host, settings.metrics_port, data_dir.metrics)
    stop = threading.Event()
    scheduler = Runtime(data_dir, ServerSettings(**{**settings.__dict__, "key_pool": 0}))
    try:
        if proxy_config is not None:
            proxy = run_proxy_in_thread(proxy_config)
            try:
                proxy.wait_ready(10)
            except RuntimeError as e:  # lost a race for the port since check_port
                if isinstance(e.__cause__, OSError) and e.__cause__.errno == errno.EADDRINUSE:
                    raise _in_use(settings.proxy_port, "--proxy-port", "KLUIS_PROXY_PORT", _PROXY_HINT) from None
                raise
        threading.Thread(target=_scheduler, args=(scheduler, settings.scheduler_interval, stop), daemon=True).start()
        _banner(console, data_dir, settings, tls, runtime.tenant_id)
        server = Server(
            "kluis.api.app:create_app",
            address=settings.host,
            port=settings.port,
            interface=Interfaces.RSGI,
            workers=settings.workers,
            factory=True,
            ssl_cert=Path(tls.server_cert),
            ssl_key=Path(tls.server_key),
            log_access=False,
            log_dictconfig=log_config,
            websockets=False,
            respawn_failed_workers=True,  # one killed worker must not stop the server (module doc)
            **granian_limits(),  # type: ignore[arg-type]
        )
        try:
            server.serve(target_loader=_worker_app, wrap_loader=False)
        except RuntimeError as e:  # granian reports a taken port as "Address already in use (os error 98)"
            if f"os error {errno.EADDRINUSE}" in str(e):
                raise _in_use(settings.port, "--port", "KLUIS_PORT") from None
            raise
    finally:
        stop.set()
        _reap_workers()
        if proxy is not None:
            proxy.stop()
        if metrics_server is not None:
            metrics_server.shutdown()
        scheduler.close()
        serve_lock.close()
    console.print("kluis stopped; data kept in", str(data_dir.path))


def _banner(console: Console, data_dir: DataDir, settings: ServerSettings, tls: TlsFiles, tenant: str) -> None:
    console.print(f"[bold green]kluis[/] listening on [bold]{settings.url}[/] (default vault for bare host/IP)")
    if settings.proxy_port:
        console.print(
            f"CONNECT proxy on http://127.0.0.1:{settings.proxy_port} -> https://NAME.vault.azure.net works unchanged"
        )
    console.print(f"data dir:  {data_dir.path}")
    console.print(f"CA file:   {tls.ca_cert}  (SHA-256 {ca_fingerprint(tls.ca_cert)[:23]}...)")
    console.print(f"tenant:    {tenant}")
    if settings.metrics_port:
        console.print(f"metrics:   http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    where = "" if data_dir.path == default_data_dir() else f" --data-dir {shlex.quote(str(data_dir.path))}"
    console.print(
        f'Point an SDK at it:  eval "$(kluis env{where} --vault-name NAME)"   or   kluis exec{where} -- python app.py'
    )

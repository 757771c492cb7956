"""``kluis serve``: first-start setup, then the HTTPS server, the CONNECT proxy and the scheduler.

The main process bootstraps (so worker processes never race to create the tenant or the CA),
runs the proxy and the housekeeping scheduler in threads, and hands the TLS listener to
granian, whose worker processes each build the app from the same data directory.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from rich.console import Console

from kluis.api.proxy import ProxyConfig, run_proxy_in_thread
from kluis.api.runtime import Runtime
from kluis.config import DataDir, ServerSettings, granian_limits, raise_open_files_limit
from kluis.identity.pki import TlsFiles, ca_fingerprint, default_server_names, ensure_tls, write_ca_bundle

__all__ = ["prepare", "serve"]

log = logging.getLogger("kluis.serve")


def prepare(data_dir: DataDir, settings: ServerSettings) -> tuple[Runtime, TlsFiles]:
    """Everything a first start creates; safe to call on every start."""
    data_dir.ensure()
    runtime = Runtime(data_dir, settings, bootstrap=True)
    names = default_server_names(settings.hostnames, settings.domains)
    if settings.host not in ("127.0.0.1", "0.0.0.0", "::", "::1", "localhost") and settings.host not in names:
        names.append(settings.host)
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
        except Exception:  # the scheduler must outlive one bad tick
            log.exception("housekeeping tick failed")


def serve(data_dir: DataDir, settings: ServerSettings, console: Console) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    raise_open_files_limit()
    runtime, tls = prepare(data_dir, settings)
    runtime.store.close()
    os.environ["KLUIS_DATA_DIR"] = str(data_dir.path)
    proxy = None
    if settings.proxy_port:
        proxy = run_proxy_in_thread(
            ProxyConfig(
                listen_host="127.0.0.1" if settings.host in ("127.0.0.1", "localhost") else settings.host,
                listen_port=settings.proxy_port,
                upstream_host="127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host,
                upstream_port=settings.port,
                passthrough=settings.proxy_passthrough,
                domains=tuple(settings.domains),
            )
        )
        proxy.wait_ready(10)
    stop = threading.Event()
    scheduler = Runtime(data_dir, ServerSettings(**{**settings.__dict__, "key_pool": 0}))
    threading.Thread(target=_scheduler, args=(scheduler, settings.scheduler_interval, stop), daemon=True).start()
    _banner(console, data_dir, settings, tls, runtime.tenant_id)
    try:
        Server(
            "kluis.api.app:create_app",
            address=settings.host,
            port=settings.port,
            interface=Interfaces.RSGI,
            workers=settings.workers,
            factory=True,
            ssl_cert=Path(tls.server_cert),
            ssl_key=Path(tls.server_key),
            log_access=False,
            websockets=False,
            **granian_limits(),  # type: ignore[arg-type]
        ).serve()
    finally:
        stop.set()
        if proxy is not None:
            proxy.stop()
        scheduler.close()
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
    console.print('Point an SDK at it:  eval "$(kluis env --vault-name NAME)"   or   kluis exec -- python app.py')

"""Where kluis keeps its state and how it listens: one data directory, overridable by flags/env.

Every command (``serve``, the management verbs, ``env``) finds the server and the administrator
credential through the same data directory, so scripts need no extra setup.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import overload

from platformdirs import user_data_dir

__all__ = [
    "BACKLOG",
    "HEADER_TIMEOUT_MS",
    "REQUESTS_PER_WORKER",
    "DataDir",
    "ServerSettings",
    "StartupError",
    "default_data_dir",
    "granian_limits",
    "raise_open_files_limit",
]

# Connection handling (granian): how long a client may take to send its request headers, how many
# requests one worker runs at once, and the kernel's queue of not-yet-accepted connections.
HEADER_TIMEOUT_MS = 10_000
REQUESTS_PER_WORKER = 8192
BACKLOG = 4096


def default_data_dir() -> Path:
    env = os.environ.get("KLUIS_DATA_DIR")
    return Path(env).expanduser() if env else Path(user_data_dir("kluis", appauthor=False))


class StartupError(Exception):
    """kluis cannot start with the data directory as it is; the message says which file and why."""


# Binds that local clients reach by name (localhost / 127.0.0.1). ``::1`` is not one: ``localhost`` may
# resolve to 127.0.0.1 only, where nothing listens when kluis binds the IPv6 loopback alone.
_LOCAL_BINDS = frozenset({"127.0.0.1", "0.0.0.0", "::", "localhost"})


def _url_host(host: str) -> str:
    """``host`` as a URL's host part: IPv6 literals in brackets (``::1`` -> ``[::1]``)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass
class ServerSettings:
    """How ``kluis serve`` listens; written to ``server.json`` so other commands can find it."""

    host: str = "127.0.0.1"
    port: int = 8443
    proxy_port: int = 8080
    hostnames: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    workers: int = 1
    proxy_passthrough: bool = False
    scheduler_interval: float = 30.0
    key_pool: int = 16
    # x-ms-keyvault-region for answers given before a vault is known (the 401 challenge, unknown
    # hosts); a vault's own answers carry its location. "local" is kluis's default location.
    region: str = "local"
    throttle_limit: int = 100_000  # requests per 10 s per vault on one node (0: off); Azure's are 1,000-4,000
    # The audit log (kluis.domain.audit): on/off, retention by age (days, 0: none) and count (0: none),
    # and the per-worker batching of records that need not be written before the answer.
    audit: bool = True
    audit_retention_days: int = 90
    audit_retention_count: int = 0
    audit_batch: int = 500  # records
    audit_flush_ms: int = 200  # milliseconds
    # Prometheus metrics (kluis.api.metrics) on a separate plain-HTTP listener (0: off).
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    log_format: str = "text"  # "text" or "json" (one JSON object per line, with the request id)
    access_log: bool = False  # one kluis.access line per request
    # Where the state lives: "" is the SQLite file in the data dir; a postgresql:// URL shares one
    # PostgreSQL database between several kluis nodes (server.json is 0600: it may hold a password).
    database: str = ""
    # Threads per worker that run requests' database work off the event loop (None: the backend's
    # default, 0 for SQLite, which answers inline in microseconds, 4 for PostgreSQL).
    db_threads: int | None = None
    # The key-encryption key's source (kluis.crypto.kek): "" is kek.key in the data dir; "file:PATH",
    # "env:VAR" (base64 key in that variable) or a "pkcs11:" URI (an AES key on a PKCS#11 token).
    kek: str = ""

    @property
    def url(self) -> str:
        """Where local clients reach the HTTPS listener: ``localhost`` for 127.0.0.1 and the wildcard
        binds, else the bound address (``https://[::1]:PORT`` for ``--host ::1``)."""
        host = "localhost" if self.host in _LOCAL_BINDS else _url_host(self.host)
        return f"https://{host}:{self.port}"

    @property
    def proxy_url(self) -> str:
        """Where local clients reach the CONNECT proxy (it listens where the HTTPS listener does)."""
        host = "127.0.0.1" if self.host in _LOCAL_BINDS else _url_host(self.host)
        return f"http://{host}:{self.proxy_port}"


def raise_open_files_limit() -> int:
    """Raise this process's open-file limit (inherited by the workers) to the hard limit the OS
    allows, so connections, not file descriptors, are what the server's limits count. Returns the
    soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def granian_limits() -> dict[str, object]:
    """Keyword arguments for granian's ``Server``: header timeout, keep-alive, concurrency, backlog."""
    from granian.http import HTTP1Settings

    return {
        "backlog": BACKLOG,
        "backpressure": REQUESTS_PER_WORKER,
        "http1_settings": HTTP1Settings(header_read_timeout=HEADER_TIMEOUT_MS, keep_alive=True),
    }


class _Inside:
    """A fixed name inside the data directory, read as a :class:`Path` attribute of :class:`DataDir`."""

    def __init__(self, name: str, doc: str = "") -> None:
        self.name = name
        self.__doc__ = doc or f"``{name}`` in the data directory."

    @overload
    def __get__(self, data_dir: None, owner: type[DataDir]) -> _Inside: ...
    @overload
    def __get__(self, data_dir: DataDir, owner: type[DataDir] | None = None) -> Path: ...
    def __get__(self, data_dir: DataDir | None, owner: type[DataDir] | None = None) -> Path | _Inside:
        return self if data_dir is None else data_dir.path / self.name  # on the class: the descriptor itself


class DataDir:
    """Paths inside the data directory; creates it 0700 on first use."""

    database = _Inside("kluis.db")
    kek = _Inside("kek.key")
    tls = _Inside("tls")
    admin = _Inside("admin.json")
    server = _Inside("server.json")
    ca_bundle = _Inside("ca-bundle.pem")
    metrics = _Inside(
        "metrics", "Prometheus multiprocess files of the running server's processes (emptied on each start)."
    )
    serve_lock = _Inside(
        "serve.lock", "Held (shared flock) by every running ``kluis serve`` of this data dir; restore needs it free."
    )

    def __init__(self, path: Path | str) -> None:
        # Absolute (not symlink-resolved), so what kluis prints and records (server.json, `kluis env`)
        # still names the same directory from another working directory.
        self.path = Path(path).expanduser().absolute()

    def ensure(self) -> DataDir:
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        return self

    def write_server(self, settings: ServerSettings) -> None:
        _write_private(self.server, json.dumps(asdict(settings), indent=2))

    def read_server(self) -> ServerSettings | None:
        if not self.server.exists():
            return None
        data = json.loads(self.server.read_text())
        known = {k: v for k, v in data.items() if k in ServerSettings.__dataclass_fields__}
        return ServerSettings(**known)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (credentials, keys), atomically."""
    _write_private(path, text)

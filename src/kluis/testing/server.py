"""A real ``kluis serve`` for tests and scripts: ``with KluisServer() as server: vault = server.create_vault()``.

The server is a child process in its own process group (the supervisor and its worker), listening on
free loopback ports, with a fresh temporary data directory that is removed when it stops (kept, with
its log, when asked to or when the ``with`` block raised). Administration (vaults, principals, access
policies, the clock) goes through kluis's management API as the administrator, exactly as the
``kluis`` command does; nothing here opens the database.

Importing this module is cheap (standard library only): httpx, the CLI client and the Azure SDK are
imported when a server starts or a client is made, because the pytest plugin imports this package in
every project that has kluis installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from kluis.config import DataDir, ServerSettings

if TYPE_CHECKING:
    from kluis.cli.client import AdminClient
    from kluis.testing.vault import Vault

__all__ = ["DEFAULT_GROUP", "Clock", "KluisServer", "ServerError", "free_port"]

DEFAULT_GROUP = "kluis-tests"  # the resource group test vaults are made in
_START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it: retry with new ones


class ServerError(RuntimeError):
    """The server could not start, or a management call failed; the message says why (and where the log is)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KluisServer:
    """One ``kluis serve`` process; use as a context manager or call :meth:`start` / :meth:`stop`.

    ``data_dir``: where it keeps its state (default: a new temporary directory, removed by
    :meth:`stop`). ``workers``: server processes (every one uses a clock move from its next request).
    ``key_pool``: RSA-2048 keys each worker pre-generates (0: none;
    a few make ``create_rsa_key`` fast without spending the test run's CPU on a large pool).
    ``extra_args``: more ``kluis serve`` flags.
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        workers: int = 1,
        key_pool: int = 2,
        scheduler_interval: float = 3600.0,
        extra_args: Sequence[str] = (),
        start_timeout: float = 60.0,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="kluis-test-"))
        self.workers = workers
        self.key_pool = key_pool
        self.scheduler_interval = scheduler_interval
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.port = 0
        self.proxy_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None  # how long the last start took until it answered
        self._admin: AdminClient | None = None
        self._groups: set[str] = set()

    # -- where it is ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The HTTPS listener, ``https://localhost:PORT`` (the management API and the default vault)."""
        return self._listening.url

    @property
    def proxy_url(self) -> str:
        """The CONNECT proxy that makes ``https://NAME.vault.azure.net`` reach vault NAME."""
        return self._listening.proxy_url

    @property
    def _listening(self) -> ServerSettings:
        """Where it listens (loopback, its two ports), as kluis's own commands describe a server."""
        return ServerSettings(host="127.0.0.1", port=self.port, proxy_port=self.proxy_port)

    @property
    def ca_file(self) -> Path:
        """The kluis CA certificate (PEM) that every client must trust."""
        return self.data_dir / "tls" / "ca.pem"

    @property
    def log_path(self) -> Path:
        """The server's standard output and error."""
        return self.data_dir / "kluis.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- life -----------------------------------------------------------------------------------
    def start(self) -> KluisServer:
        """Start the server and return once ``/_kluis/health`` answers (sets :attr:`startup_seconds`).

        Raises :class:`ServerError` (quoting the log) when it exits or does not answer in time.
        """
        from kluis.cli.client import CliError

        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(_START_ATTEMPTS):
            began = time.perf_counter()
            self.port, self.proxy_port = free_port(), free_port()
            self._spawn()
            try:
                self._wait_healthy()
            except CliError as e:
                self._kill()
                if "already in use" in str(e) and attempt + 1 < _START_ATTEMPTS:
                    continue
                raise ServerError(str(e)) from None
            self.startup_seconds = time.perf_counter() - began
            return self
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _spawn(self) -> None:
        args = [
            sys.executable, "-m", "kluis", "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
            "--port", str(self.port), "--proxy-port", str(self.proxy_port), "--workers", str(self.workers),
            "--key-pool", str(self.key_pool), "--scheduler-interval", repr(self.scheduler_interval), *self.extra_args,
        ]  # fmt: skip
        # Settings come from the arguments alone: the caller's KLUIS_* variables must not change the server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
        with open(self.log_path, "ab") as log, open(os.devnull, "rb") as devnull:
            self.process = subprocess.Popen(
                args, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def _wait_healthy(self) -> None:
        from kluis.cli.daemon import wait_healthy

        assert self.process is not None
        # Its error quotes DATA_DIR/kluis.log, which is where this server logs.
        wait_healthy(DataDir(self.data_dir), self._listening, self.process.poll, timeout=self.start_timeout, poll=0.01)

    def stop(self, *, keep_files: bool = False) -> int | None:
        """Stop the server (SIGINT to its process group, as Ctrl-C; SIGKILL after 15 s); returns its exit code.

        A temporary data directory is removed unless ``keep_files`` (then it and the log stay where
        :attr:`log_path` says). A ``data_dir`` you passed in is never removed.
        """
        code: int | None = None
        if self._admin is not None:
            self._admin._http.close()
            self._admin = None
        if self.process is not None:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGINT)
                try:
                    code = self.process.wait(15)
                except subprocess.TimeoutExpired:
                    self._kill()
            else:
                code = self.process.returncode
            self.process = None
        if self._own_dir and not keep_files:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return code

    def _kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def __enter__(self) -> KluisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        keep = exc_type is not None
        self.stop(keep_files=keep)
        if keep and self._own_dir:
            print(f"kluis: the server's data and log are kept in {self.data_dir}", file=sys.stderr)

    # -- administration -------------------------------------------------------------------------
    def admin(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        """One management-API call (``/_kluis/v1`` + ``path``) as the administrator; the decoded answer.

        Raises :class:`ServerError` with kluis's ``(Code) message`` when the call fails.
        """
        from kluis.cli.client import AdminClient, CliError

        if self._admin is None:
            self._admin = AdminClient(DataDir(self.data_dir))
        try:
            return self._admin.call(method, path, body, **params)
        except CliError as e:
            raise ServerError(str(e)) from None

    def create_vault(
        self,
        name: str | None = None,
        *,
        key_permissions: Sequence[str] | None = None,
        secret_permissions: Sequence[str] | None = None,
        certificate_permissions: Sequence[str] | None = None,
        sku: str = "premium",
        retention_days: int = 90,
        purge_protection: bool = False,
        group: str = DEFAULT_GROUP,
        seed: Path | str | dict[str, Any] | None = None,
    ) -> Vault:
        """A new vault and a new service principal holding the permissions asked for on it.

        Permissions are Azure's names (``["get", "sign"]``, or ``["all"]``). When none of the three
        kinds is given the principal gets ``all`` of each; otherwise a kind not given gets none.
        ``sku`` ``premium`` (default) also allows the -HSM key types. ``seed``: a seed file (YAML or
        JSON) or its parsed content, applied as the administrator (see ``kluis seed``). Raises
        :class:`ServerError` for a refused name or permission.
        """
        from kluis.testing.vault import Vault

        name = name or f"t{uuid.uuid4().hex[:14]}"
        if group not in self._groups:
            self.admin("PUT", f"/groups/{group}", {"location": "local"})
            self._groups.add(group)
        self.admin(
            "PUT", f"/vaults/{name}",
            {"group": group, "sku": sku, "retentionDays": retention_days, "purgeProtection": purge_protection},
        )  # fmt: skip
        sp = self.admin("POST", "/principals", {"displayName": f"{name}-principal"})
        everything = key_permissions is None and secret_permissions is None and certificate_permissions is None
        policy = {
            "keys": ["all"] if everything else list(key_permissions or []),
            "secrets": ["all"] if everything else list(secret_permissions or []),
            "certificates": ["all"] if everything else list(certificate_permissions or []),
        }
        self.admin("PUT", f"/vaults/{name}/policies/{sp['appId']}", policy)
        vault = Vault(
            server=self, name=name, tenant_id=sp["tenant"], client_id=sp["appId"], client_secret=sp["password"],
            object_id=sp["objectId"],
        )  # fmt: skip
        if seed is not None:
            vault.seed(seed)
        return vault

    def delete_vault(self, vault: Vault | str, *, principal: bool = True) -> None:
        """Delete a vault (and its objects) and, for a :class:`Vault`, its service principal too."""
        from kluis.testing.vault import Vault

        name = vault.name if isinstance(vault, Vault) else vault
        self.admin("DELETE", f"/vaults/{name}")
        if principal and isinstance(vault, Vault):
            self.admin("DELETE", f"/principals/{vault.client_id}")

    @property
    def clock(self) -> Clock:
        """The server's clock of object lifecycles (expiry, retention, rotation)."""
        return Clock(self)

    def env(self, vault_name: str = "default") -> dict[str, str]:
        """The ``kluis env`` variables for ``vault_name`` as the administrator (proxy mode)."""
        from kluis.cli.environment import build_env

        return build_env(DataDir(self.data_dir), vault_name=vault_name)


class Clock:
    """Moves the server's clock of object lifecycles and runs housekeeping (rotation, purge) at once.

    Tokens stay on real time, so clients keep working across a move. The offset is the server's,
    shared by every test using the server: the pytest fixture ``kluis_clock`` resets it after each test.
    """

    def __init__(self, server: KluisServer) -> None:
        self._server = server

    @property
    def offset(self) -> int:
        """Seconds the server's clock is ahead of real time (negative: behind)."""
        return int(self._server.admin("GET", "/time")["offsetSeconds"])

    def now(self) -> int:
        """The server's time, Unix seconds."""
        return int(self._server.admin("GET", "/time")["now"])

    def set_offset(self, seconds: int) -> None:
        """Put the server's clock ``seconds`` ahead of real time (0: real time)."""
        self._server.admin("PUT", "/time", {"offsetSeconds": int(seconds)})

    def advance(self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> dict[str, int]:
        """Move the clock forward by the sum given (negative moves back), then run housekeeping once.

        Returns housekeeping's counts: ``{"purged": n, "rotated": n, "failed": n}``.
        """
        delta = round(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
        self.set_offset(self.offset + delta)
        return self.housekeeping()

    def housekeeping(self) -> dict[str, int]:
        """Run the scheduler's tick now: purge deleted objects past retention, rotate keys that are due."""
        answer: dict[str, int] = self._server.admin("POST", "/housekeeping")
        return answer

    def reset(self) -> None:
        """Back to real time."""
        self.set_offset(0)

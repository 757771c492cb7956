"""A real ``kluis serve`` process for end-to-end tests, on free ports with a fresh data dir."""

from __future__ import annotations

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
from typing import Any

import httpx

__all__ = ["KluisServer", "free_port", "join_node"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class KluisServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    proxy_port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        while self.proxy_port == self.port:  # two free_port() calls may name the same port
            self.proxy_port = free_port()

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def ca(self) -> str:
        return str(self.data_dir / "tls" / "ca.pem")

    @property
    def ca_bundle(self) -> str:
        return str(self.data_dir / "ca-bundle.pem")

    def start(self, timeout: float = 30.0) -> KluisServer:
        log = open(self.data_dir.parent / f"kluis-{self.port}.log", "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "kluis", "serve", "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--proxy-port", str(self.proxy_port), *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KLUIS_DATA_DIR": str(self.data_dir)},
            start_new_session=True,  # its own process group: tests signal exactly what they started
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kluis serve exited with {self.process.returncode}; see {log.name}")
            try:
                r = httpx.get(f"{self.url}/_kluis/health", verify=ssl.create_default_context(cafile=self.ca), timeout=1)
                if r.status_code == 200:
                    return self
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("kluis serve did not become healthy in time")

    def stop(self) -> int | None:
        """Ctrl-C, as a user would; returns the exit code (None if it had to be killed)."""
        code: int | None = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(2)
            try:
                code = self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # the group: the supervisor and its workers
                self.process.wait(5)
        self.process = None
        return code

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the ``kluis`` CLI against this server (through the data dir, as users do)."""
        return subprocess.run(
            [sys.executable, "-m", "kluis", *args],
            capture_output=True,
            text=True,
            check=check,
            env={**os.environ, "KLUIS_DATA_DIR": str(self.data_dir)},
            timeout=120,
        )

    def cli_json(self, *args: str) -> Any:
        res = self.cli(*args, "-o", "json")
        return json.loads(res.stdout) if res.stdout.strip() else None

    def admin(self) -> dict[str, str]:
        return dict(json.loads((self.data_dir / "admin.json").read_text()))


def join_node(first: KluisServer, data_dir: Path, extra_args: list[str]) -> KluisServer:
    """A second node on ``first``'s shared database, started: a new data dir (0700) holding only a
    copy of ``first``'s kek.key (0600), as README's "Several nodes on PostgreSQL" sets one up."""
    data_dir.mkdir(parents=True, mode=0o700)
    (data_dir / "kek.key").write_bytes((first.data_dir / "kek.key").read_bytes())
    (data_dir / "kek.key").chmod(0o600)
    return KluisServer(data_dir, extra_args=extra_args).start()


def admin_clients(server: KluisServer) -> tuple[Any, Any, Any]:
    """(KeyClient, SecretClient, ClientSecretCredential) of the official sync SDKs, signed in as the
    server's administrator, talking to its HTTPS listener directly."""
    from azure.identity import ClientSecretCredential
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.secrets import SecretClient

    admin = server.admin()
    cred = ClientSecretCredential(
        "adfs", admin["appId"], admin["password"], authority=server.url, connection_verify=server.ca
    )
    keys = KeyClient(server.url, cred, verify_challenge_resource=False, connection_verify=server.ca)
    secrets = SecretClient(server.url, cred, verify_challenge_resource=False, connection_verify=server.ca)
    return keys, secrets, cred

"""The bare-endpoint ceiling: a tiny app on granian, configured exactly like ``kluis serve``.

Same TLS certificate and key, same worker count, same interface (RSGI, as ``kluis serve`` uses),
no access log, no websockets, and no framework at all: the least any handler can do.
``GET /bare`` answers a small JSON object; ``POST /bare`` also reads and parses a JSON body first,
which is the least any POST operation has to do. What kluis reaches as a share of these is the
cost of kluis itself (auth, routing, store, serialisation) on top of the HTTP stack.

Run as ``python -m benchmarks.bare CERT KEY PORT WORKERS`` (the runner does this in a subprocess).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.server import free_port, launch, stop_process, with_pythonpath, worker_pids

__all__ = ["BareServer", "app"]

_ANSWER = {"kid": "https://127.0.0.1/keys/bare/0123456789abcdef0123456789abcdef", "value": "x" * 43}


class BareApp:
    """``GET /bare`` -> small JSON; ``POST /bare`` parses the JSON body first."""

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.method == "POST":
            body = json.loads(await protocol())
            payload = {**_ANSWER, "alg": body.get("alg")}
        else:
            payload = _ANSWER
        raw = json.dumps(payload, separators=(",", ":")).encode()
        protocol.response_bytes(
            200, [("content-type", "application/json; charset=utf-8"), ("content-length", str(len(raw)))], raw
        )


app = BareApp()


@dataclass
class BareServer:
    cert: Path
    key: Path
    workers: int
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> BareServer:
        root = Path(__file__).resolve().parent.parent
        self.process = launch(
            [sys.executable, "-m", "benchmarks.bare", str(self.cert), str(self.key), str(self.port), str(self.workers)],
            log_path=self.log_dir / f"bare-{self.port}.log",
            ready_url=f"{self.url}/bare",
            timeout=timeout,
            env=with_pythonpath(root),
            cwd=str(root),
        )
        return self

    def worker_pids(self) -> list[int]:
        """granian's worker processes (children of the server process), for ``--profile``."""
        return worker_pids(self.process.pid) if self.process is not None else []

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def _serve(cert: str, key: str, port: int, workers: int) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    Server(
        "benchmarks.bare:app",
        address="127.0.0.1",
        port=port,
        interface=Interfaces.RSGI,
        workers=workers,
        ssl_cert=Path(cert),
        ssl_key=Path(key),
        log_access=False,
        websockets=False,
    ).serve()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

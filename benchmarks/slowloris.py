"""Slow and idle clients against a real kluis: can other clients still get answers?

Opens N connections of each hostile kind and keeps them open, then measures a well-behaved
client's requests (a new TLS connection + ``GET /_kluis/health`` each, so the listener's accept
path is measured too) while they hang on:

- ``tls``: TCP connected, TLS handshake never started (nothing sent);
- ``headers``: TLS done, request headers trickled one byte every few seconds, never finished;
- ``body``: headers of a token request with ``Content-Length: 10000``, body trickled, never finished;
- ``idle``: one complete request on a keep-alive connection, then silence.

Loopback only, bounded in connections and time; it stops by itself. Run manually::

    python -m benchmarks.slowloris --connections 1500 --seconds 40

It prints a JSON summary (probe p50/p99 in ms, failures, how many hostile connections the server
had closed by the end). ``run`` is also what the CI test calls with a smaller load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import ssl
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.server import KluisProcess

__all__ = ["Result", "run", "run_against"]

KINDS = ("tls", "headers", "body", "idle")


@dataclass
class Result:
    connections_per_kind: int
    opened: dict[str, int] = field(default_factory=dict)
    closed_by_server: dict[str, int] = field(default_factory=dict)
    probes: int = 0
    probe_failures: int = 0
    probe_p50_ms: float = 0.0
    probe_p99_ms: float = 0.0
    probe_max_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class _Hostile:
    def __init__(self, host: str, port: int, ctx: ssl.SSLContext, kind: str, trickle: float) -> None:
        self.host, self.port, self.ctx, self.kind, self.trickle = host, port, ctx, kind, trickle
        self.opened = False
        self.closed_by_server = False

    async def hold(self, stop: asyncio.Event) -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            if self.kind == "tls":
                reader, writer = await asyncio.open_connection(self.host, self.port)
                self.opened = True
                await self._wait_closed(reader, stop)
                return
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ctx, server_hostname="localhost", ssl_handshake_timeout=30
            )
            self.opened = True
            if self.kind == "idle":
                writer.write(b"GET /_kluis/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                await writer.drain()
                await reader.readuntil(b"\r\n\r\n")
                await self._wait_closed(reader, stop)
                return
            if self.kind == "headers":
                head, rest = b"GET /_kluis/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ", b"a" * 100_000
            else:
                head = (
                    b"POST /adfs/oauth2/token HTTP/1.1\r\nHost: localhost\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n"
                )
                rest = b"a" * 9999
            writer.write(head)
            await writer.drain()
            for i in range(len(rest)):
                if stop.is_set():
                    return
                writer.write(rest[i : i + 1])
                await writer.drain()
                try:
                    await asyncio.wait_for(reader.read(1), self.trickle)
                except TimeoutError:
                    continue
                self.closed_by_server = True  # an answer (408/413) or EOF: the server let go of us
                return
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            if self.opened:
                self.closed_by_server = True
        finally:
            if writer is not None:
                writer.close()

    async def _wait_closed(self, reader: asyncio.StreamReader, stop: asyncio.Event) -> None:
        read = asyncio.ensure_future(reader.read(1))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if read.done():
            self.closed_by_server = True
        read.cancel()
        stopped.cancel()


async def _probe(host: str, port: int, ctx: ssl.SSLContext, timeout: float) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost"), timeout
        )
        writer.write(b"GET /_kluis/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        writer.close()
        status = line.split(b" ")[1].decode() if line.startswith(b"HTTP/") else "none"
    except (OSError, TimeoutError, ssl.SSLError, IndexError) as e:
        status = type(e).__name__
    return time.perf_counter() - start, status


async def run_against(
    host: str,
    port: int,
    ca: Path,
    *,
    connections: int,
    seconds: float,
    probes: int = 200,
    kinds: tuple[str, ...] = KINDS,
    trickle: float = 2.0,
) -> Result:
    """Hold ``connections`` of each kind for ``seconds`` (they ramp up first) while probing."""
    _raise_fd_limit()
    ctx = ssl.create_default_context(cafile=str(ca))
    stop = asyncio.Event()
    hostile = [_Hostile(host, port, ctx, kind, trickle) for kind in kinds for _ in range(connections)]
    tasks = []
    for i, h in enumerate(hostile):
        tasks.append(asyncio.ensure_future(h.hold(stop)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # ramp up: ~1,000 connections a second
    await asyncio.sleep(min(2.0, seconds / 4))
    result = Result(connections)
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    interval = seconds / max(probes, 1)
    while time.monotonic() < deadline and result.probes < probes:
        elapsed, status = await _probe(host, port, ctx, timeout=10)
        result.probes += 1
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status == "200":
            latencies.append(elapsed)
        else:
            result.probe_failures += 1
        await asyncio.sleep(max(0.0, interval - elapsed))
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    for kind in kinds:
        mine = [h for h in hostile if h.kind == kind]
        result.opened[kind] = sum(h.opened for h in mine)
        result.closed_by_server[kind] = sum(h.closed_by_server for h in mine)
    if latencies:
        ordered = sorted(latencies)
        result.probe_p50_ms = round(statistics.median(ordered) * 1000, 1)
        result.probe_p99_ms = round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1)
        result.probe_max_ms = round(ordered[-1] * 1000, 1)
    return result


def run(connections: int, seconds: float, workers: int = 2, probes: int = 200) -> Result:
    """Start a fresh kluis, run the load against it, stop it."""
    with tempfile.TemporaryDirectory() as tmp:
        server = KluisProcess(Path(tmp) / "data", workers=workers, key_pool=0).start()
        try:
            load = run_against(
                "127.0.0.1", server.port, server.ca, connections=connections, seconds=seconds, probes=probes
            )
            return asyncio.run(load)
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1500, help="hostile connections of each kind")
    parser.add_argument("--seconds", type=float, default=40.0, help="how long to probe while they hang on")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--probes", type=int, default=400)
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 5000 or not 1 <= args.seconds <= 300:
        parser.error("--connections 1..5000 and --seconds 1..300 keep the run bounded")
    result = run(args.connections, args.seconds, args.workers, args.probes)
    print(json.dumps(asdict(result), indent=2))
    return 0 if result.probe_failures == 0 and result.probe_p99_ms < 100 else 1


if __name__ == "__main__":
    sys.exit(main())

"""An HTTP CONNECT proxy that steers Azure host names to kluis (zero-change mode).

The Azure SDKs honour ``HTTPS_PROXY`` and, when a proxy is set, never resolve
the target host themselves: they send ``CONNECT myvault.vault.azure.net:443``
and start TLS inside the tunnel. So pointing ``HTTPS_PROXY`` at this proxy is
enough to make an unmodified program talk to kluis: the tunnel for an Azure
name is connected to kluis's own TLS listener, whose certificate covers those
names. TLS stays end to end between the client and kluis; the proxy only copies
bytes and never sees plaintext.

Hosts that are not kluis's are refused by default (a proxy that silently
tunnels everywhere is surprising), unless ``passthrough`` is enabled. kluis's
hosts are tunnelled only for port 443 (or kluis's own listening port): any
other port is refused with 403, passthrough or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kluis.addressing import KLUIS_HOSTS, vault_suffixes
from kluis.api.tunnels import TunnelTable

__all__ = [
    "ProxyConfig",
    "ProxyHandle",
    "run_proxy_in_thread",
    "serve_proxy",
    "should_intercept",
]

_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
_CHUNK = 64 * 1024
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$")


@dataclass
class ProxyConfig:
    """Where to listen, where kluis is, and which hosts belong to kluis."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    upstream_host: str = "127.0.0.1"
    upstream_port: int = 8443
    intercept_suffixes: tuple[str, ...] = vault_suffixes()
    intercept_hosts: tuple[str, ...] = KLUIS_HOSTS
    passthrough: bool = False
    # Where to tell the listener's workers the real client of each tunnel (api/tunnels.py); None: nowhere.
    tunnels: Path | None = None
    domains: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.domains:
            extra_hosts, extra_suffixes = _domain_entries(self.domains)
            self.intercept_hosts = _merge(self.intercept_hosts, extra_hosts)
            self.intercept_suffixes = _merge(self.intercept_suffixes, extra_suffixes)

    def with_domains(self, domains: Iterable[str]) -> ProxyConfig:
        """A copy that also intercepts each domain ``D`` and its subdomains ``*.D``."""
        return replace(self, domains=_merge(self.domains, tuple(domains)))


def should_intercept(config: ProxyConfig, host: str) -> bool:
    """Whether ``host`` (any port) is one of kluis's names."""
    name = _norm_host(host)
    if not name:
        return False
    if name in (_norm_host(h) for h in config.intercept_hosts):
        return True
    return any(name.endswith(s.lower().rstrip(".")) for s in config.intercept_suffixes if s.strip("."))


async def serve_proxy(config: ProxyConfig, *, ready: asyncio.Event | None = None) -> None:
    """Run the proxy until cancelled; ``ready`` is set once it is listening."""
    proxy = _Proxy(config)
    await proxy.start()
    try:
        if ready is not None:
            ready.set()
        await proxy.wait_stopped()
    finally:
        await proxy.aclose()


class ProxyHandle:
    """A proxy running on its own event loop in a daemon thread."""

    def __init__(self, config: ProxyConfig) -> None:
        self._config = config
        self._loop = _new_loop()
        self._proxy = _Proxy(config)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._port: int | None = None
        self._thread = threading.Thread(target=self._run, name="kluis-proxy", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def port(self) -> int:
        """The bound port (useful with ``listen_port=0``); valid once ready."""
        if self._port is None:
            raise RuntimeError("proxy is not listening yet")
        return self._port

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until listening; raise the startup error or ``TimeoutError``."""
        if not self._ready.wait(timeout):
            raise TimeoutError("proxy did not start in time")
        if self._error is not None:
            raise RuntimeError(f"proxy failed to start: {self._error}") from self._error

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and open tunnels, then end the loop and thread."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._proxy.request_stop)
            self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced through wait_ready
            self._error = exc
        finally:
            self._ready.set()
            try:
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                self._loop.close()

    async def _main(self) -> None:
        await self._proxy.start()
        self._port = self._proxy.port
        self._ready.set()
        try:
            await self._proxy.wait_stopped()
        finally:
            await self._proxy.aclose()


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (as granian's workers use): the proxy copies every byte of
    every tunnel, and with uvloop it took 45-47 µs of CPU per proxied get key against 56-64 µs with
    asyncio's own loop (``python -m benchmarks.proxy``, 2 runs each); asyncio's loop elsewhere."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_proxy_in_thread(config: ProxyConfig) -> ProxyHandle:
    """Start the proxy in a background thread; call ``wait_ready`` next."""
    handle = ProxyHandle(config)
    handle.start()
    return handle


# --- implementation ----------------------------------------------------------


class _BadRequest(Exception):
    pass


class _Proxy:
    """One listening socket plus the tasks of the connections it accepted."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._tunnels: TunnelTable | None = None

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        if self.config.tunnels is not None:
            self._tunnels = TunnelTable.create(self.config.tunnels)
        self._server = await asyncio.start_server(self._on_connection, self.config.listen_host, self.config.listen_port)
        log.info("kluis proxy listening on %s:%d", self.config.listen_host, self.port)

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._tunnels is not None:
            self._tunnels.close()
            self._tunnels = None

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        try:
            try:
                await self._handle(reader, writer)
            except ConnectionError as exc:
                log.debug("proxy connection from %s dropped: %r", peer, exc)
            except Exception:
                log.debug("proxy connection from %s failed", peer, exc_info=True)
            finally:
                await _close(writer)
        except asyncio.CancelledError:
            # Only our own shutdown cancels these tasks. Ending normally rather
            # than cancelled matters on 3.11, whose stream callback calls
            # task.exception() and logs a spurious error for cancelled tasks.
            writer.transport.abort()
            log.debug("proxy connection from %s closed at shutdown", peer)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head, rest = await asyncio.wait_for(_read_head(reader), HEAD_TIMEOUT)
            method, target = _parse_request_line(head)
            if method != "CONNECT":
                await _respond(
                    writer,
                    405,
                    "Method Not Allowed",
                    "kluis proxy: only CONNECT is supported (use https:// URLs)",
                    extra_headers=("Allow: CONNECT",),
                )
                return
            host, port = _parse_authority(target)
        except TimeoutError:
            await _respond(writer, 408, "Request Timeout", "kluis proxy: timed out reading the request")
            return
        except _BadRequest as exc:  # a malformed head, request line or authority
            await _respond(writer, 400, "Bad Request", f"kluis proxy: {exc}")
            return
        except (asyncio.IncompleteReadError, ConnectionError):
            return

        intercepted = should_intercept(self.config, host)
        if intercepted and port not in (443, self.config.upstream_port):
            # Key Vault, Entra ID and ARM hosts answer HTTPS on 443 only; a kluis host on another port
            # (``myvault.vault.azure.net:22``) is a mistake or a probe, never a tunnel to kluis's TLS.
            log.debug("refusing CONNECT to kluis host %s on port %d", host, port)
            await _respond(
                writer,
                403,
                "Forbidden",
                f"kluis proxy: {host} is a kluis host, served on port 443 (or {self.config.upstream_port}, "
                f"kluis's own) only, not {port}",
            )
            return
        if intercepted:
            dest_host, dest_port = self.config.upstream_host, self.config.upstream_port
        elif self.config.passthrough:
            dest_host, dest_port = host, port
        else:
            log.debug("refusing CONNECT to %s:%d", host, port)
            await _respond(
                writer,
                403,
                "Forbidden",
                f"kluis proxy: {host} is not a kluis host; start kluis serve with "
                "--proxy-passthrough to tunnel other hosts",
            )
            return

        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(dest_host, dest_port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            log.debug("CONNECT %s:%d -> %s:%d failed: %s", host, port, dest_host, dest_port, exc)
            await _respond(writer, 502, "Bad Gateway", f"kluis proxy: cannot reach {dest_host}:{dest_port}: {exc}")
            return
        log.debug("tunnel %s:%d -> %s:%d", host, port, dest_host, dest_port)
        tunnel = self._register(writer, up_writer) if intercepted else None
        try:
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            if rest:  # bytes the client sent right after the head (e.g. an eager ClientHello)
                up_writer.write(rest)
            await writer.drain()
            await up_writer.drain()
            await _pipe(reader, writer, up_reader, up_writer)
        finally:
            if tunnel is not None and self._tunnels is not None:
                self._tunnels.release(tunnel)  # before the close: the port may be reused after it
            await _close(up_writer)

    def _register(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> int | None:
        """Tell the listener's workers who the client of this tunnel is; the tunnel's local port
        (to release it) or None when there is no table or an address is unknown."""
        if self._tunnels is None:
            return None
        peer, local = client.get_extra_info("peername"), upstream.get_extra_info("sockname")
        if not peer or not local:
            return None
        if self._tunnels.register((str(local[0]), int(local[1])), (str(peer[0]), int(peer[1]))):
            return int(local[1])
        return None


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """Read up to the blank line; return (head, bytes that followed it)."""
    buf = bytearray()
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            if end > MAX_HEAD_BYTES:
                raise _BadRequest("request head too large")
            return bytes(buf[:end]), bytes(buf[end + 4 :])
        if len(buf) >= MAX_HEAD_BYTES + 4:
            raise _BadRequest("request head too large")
        chunk = await reader.read(MAX_HEAD_BYTES + 4 - len(buf))
        if not chunk:
            raise asyncio.IncompleteReadError(bytes(buf), None)
        buf += chunk


def _parse_request_line(head: bytes) -> tuple[str, str]:
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise _BadRequest("malformed request") from None
    line = text.split("\r\n", 1)[0]
    parts = line.split(" ")
    if len(parts) != 3:
        raise _BadRequest("malformed request line")
    method, target, version = parts
    if not _TOKEN.match(method) or not target or version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _BadRequest("malformed request line")
    return method, target


def _parse_authority(target: str) -> tuple[str, int]:
    """Split a CONNECT target ``host:port`` / ``[v6]:port``."""
    if target.startswith("["):
        close = target.find("]")
        host, sep, port_text = target[1:close], target[close + 1 : close + 2], target[close + 2 :]
        if close < 0 or sep != ":" or not _IPV6.match(host):
            raise _BadRequest("CONNECT target must be host:port")
    else:
        host, sep, port_text = target.rpartition(":")
        if not sep or not host or not _HOSTNAME.match(host):
            raise _BadRequest("CONNECT target must be host:port")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _BadRequest("CONNECT target has an invalid port")
    return host, int(port_text)


async def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    reason: str,
    body: str,
    *,
    extra_headers: tuple[str, ...] = (),
) -> None:
    payload = (body + "\n").encode("utf-8")
    headers = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(payload)}",
        "Connection: close",
        *extra_headers,
    ]
    writer.write(("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + payload)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def _quickack(sock: socket.socket | None) -> None:
    """ACK what we just read at once instead of after Linux's 40 ms delayed-ACK timer.

    urllib3 (so requests and the Azure Python SDK) opens tunnelled sockets without TCP_NODELAY
    and writes the request head and body separately: Nagle then holds the body until the head
    is ACKed, and a delayed ACK turns every POST into a 40 ms wait. Quick ACKs on the client
    side of the tunnel remove that stall. The flag is not sticky, so it is set after each read.
    """
    if sock is not None and _TCP_QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, ack: socket.socket | None = None) -> None:
    """Copy until EOF, then half-close ``dst`` so the peer sees the EOF too."""
    while True:
        data = await src.read(_CHUNK)
        if not data:
            break
        _quickack(ack)
        dst.write(data)
        await dst.drain()
    if dst.can_write_eof() and not dst.is_closing():
        with contextlib.suppress(OSError):
            dst.write_eof()


async def _pipe(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Copy both ways until both sides finished, or either side fails."""
    tasks = [
        asyncio.create_task(_copy(a_reader, b_writer, a_writer.get_extra_info("socket"))),
        asyncio.create_task(_copy(b_reader, a_writer)),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.debug("tunnel closed: %r", task.exception())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _close(writer: asyncio.StreamWriter) -> None:
    if not writer.is_closing():
        writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


def _norm_host(host: str) -> str:
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name[:-1] if name.endswith(".") else name


def _domain_entries(domains: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    hosts: list[str] = []
    suffixes: list[str] = []
    for domain in domains:
        d = domain.strip().strip(".").lower()
        if d:
            hosts.append(d)
            suffixes.append("." + d)
    return tuple(hosts), tuple(suffixes)


def _merge(base: tuple[str, ...], extra: tuple[str, ...]) -> tuple[str, ...]:
    return base + tuple(x for x in extra if x not in base)

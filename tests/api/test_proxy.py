from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kluis.api.proxy import (
    ProxyConfig,
    ProxyHandle,
    run_proxy_in_thread,
    serve_proxy,
    should_intercept,
)
from kluis.identity.pki import default_server_names, ensure_tls

# --- helpers -------------------------------------------------------------------


class EchoServer:
    """Echoes until the client half-closes, then closes (tests half-close)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@contextlib.contextmanager
def running(config: ProxyConfig) -> Iterator[ProxyHandle]:
    handle = run_proxy_in_thread(config)
    handle.wait_ready(10)
    try:
        yield handle
    finally:
        handle.stop()


def proxy_config(upstream_port: int, **kwargs: object) -> ProxyConfig:
    return ProxyConfig(listen_port=0, upstream_port=upstream_port, **kwargs)  # type: ignore[arg-type]


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read an HTTP response head; return (status, headers, bytes after head)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, rest


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        status, headers, rest = read_head(sock)
        body = rest + read_all(sock)
    return status, headers, body


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- unit ------------------------------------------------------------------------


def test_should_intercept() -> None:
    config = ProxyConfig()
    for host in (
        "myvault.vault.azure.net",
        "MyVault.Vault.Azure.Net.",
        "vault.azure.net",
        "login.microsoftonline.com",
        "management.azure.com",
        "localhost",
        "a.b.localhost",
    ):
        assert should_intercept(config, host), host
    for host in ("example.com", "evilvault.azure.net", "notlocalhost", "vault.azure.net.evil.com", ""):
        assert not should_intercept(config, host), host


def test_domains() -> None:
    config = ProxyConfig(domains=("kluis.example.org",))
    assert should_intercept(config, "kluis.example.org")
    assert should_intercept(config, "prod.kluis.example.org")
    assert not should_intercept(config, "example.org")
    more = config.with_domains([".corp.test.", "kluis.example.org"])
    assert should_intercept(more, "v.corp.test")
    assert should_intercept(more, "prod.kluis.example.org")
    assert more.intercept_hosts.count("kluis.example.org") == 1
    assert not should_intercept(ProxyConfig(), "v.corp.test")


# --- over loopback ----------------------------------------------------------------


def test_connect_pipes_both_ways(echo: EchoServer) -> None:
    with (
        running(proxy_config(echo.port)) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock,
    ):
        sock.sendall(b"CONNECT myvault.vault.azure.net:443 HTTP/1.1\r\nHost: myvault.vault.azure.net:443\r\n\r\n")
        status, _, rest = read_head(sock)
        assert status == 200
        assert rest == b""
        payload = bytes(range(256)) * 4096  # 1 MiB, forces back-pressure

        def send() -> None:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        received = read_all(sock)  # EOF arrives only after the half-close went through
        sender.join(10)
        assert received == payload


def test_eager_client_hello_forwarded(echo: EchoServer) -> None:
    with (
        running(proxy_config(echo.port)) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock,
    ):
        sock.sendall(b"CONNECT localhost:443 HTTP/1.1\r\n\r\nearly-bytes")
        sock.shutdown(socket.SHUT_WR)
        status, _, rest = read_head(sock)
        assert status == 200
        assert rest + read_all(sock) == b"early-bytes"


def test_other_host_forbidden(echo: EchoServer) -> None:
    with running(proxy_config(echo.port)) as proxy:
        status, headers, body = exchange(proxy.port, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
    assert status == 403
    assert b"example.com is not a kluis host" in body
    assert b"--proxy-passthrough" in body
    assert int(headers["content-length"]) == len(body)


@pytest.mark.parametrize("passthrough", [False, True])
@pytest.mark.parametrize("target", ["mykeyvault.vault.azure.net:22", "login.microsoftonline.com:80", "localhost:1"])
def test_a_kluis_host_on_another_port_is_forbidden(echo: EchoServer, target: str, passthrough: bool) -> None:
    """Key Vault hosts answer on 443 only: another port of a kluis host never reaches kluis (nor, with
    passthrough, the outside), and the answer says why."""
    host, port = target.rsplit(":", 1)
    with running(proxy_config(echo.port, passthrough=passthrough)) as proxy:
        status, headers, body = exchange(proxy.port, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
    assert status == 403
    assert body.decode() == (
        f"kluis proxy: {host} is a kluis host, served on port 443 (or {echo.port}, kluis's own) only, not {port}\n"
    )
    assert int(headers["content-length"]) == len(body)


@pytest.mark.parametrize("target", ["mykeyvault.vault.azure.net:443", "localhost:{upstream}"])
def test_a_kluis_host_on_443_or_kluis_port_is_tunnelled(echo: EchoServer, target: str) -> None:
    with (
        running(proxy_config(echo.port)) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock,
    ):
        sock.sendall(f"CONNECT {target.format(upstream=echo.port)} HTTP/1.1\r\n\r\n".encode())
        assert read_head(sock)[0] == 200
        sock.sendall(b"ping")
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == b"ping"


def test_passthrough(echo: EchoServer) -> None:
    with (
        running(proxy_config(closed_port(), passthrough=True)) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock,
    ):
        sock.sendall(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\n\r\n".encode())
        assert read_head(sock)[0] == 200
        sock.sendall(b"hello")
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == b"hello"


def test_get_is_405(echo: EchoServer) -> None:
    with running(proxy_config(echo.port)) as proxy:
        status, headers, body = exchange(proxy.port, b"GET http://myvault.vault.azure.net/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 405
    assert headers["allow"] == "CONNECT"
    assert body


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x16\x03\x01\x02\x00garbage\r\n\r\n",
        b"hello\r\n\r\n",
        b"CONNECT\r\n\r\n",
        b"CONNECT myvault.vault.azure.net HTTP/1.1\r\n\r\n",
        b"CONNECT myvault.vault.azure.net:99999 HTTP/1.1\r\n\r\n",
        b"CONNECT [::1 HTTP/1.1\r\n\r\n",
        b"CONNECT a b:1 HTTP/1.1\r\n\r\n",
        b"CONNECT host:443 SPDY/3\r\n\r\n",
        b"CONNECT host:443 HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n",
    ],
)
def test_malformed_is_400(echo: EchoServer, request_bytes: bytes) -> None:
    with running(proxy_config(echo.port)) as proxy:
        status, _, _ = exchange(proxy.port, request_bytes)
    assert status == 400


def test_upstream_down_is_502() -> None:
    with running(proxy_config(closed_port())) as proxy:
        status, _, body = exchange(proxy.port, b"CONNECT myvault.vault.azure.net:443 HTTP/1.1\r\n\r\n")
    assert status == 502
    assert b"cannot reach" in body


def test_bad_clients_do_not_kill_the_server(echo: EchoServer) -> None:
    with running(proxy_config(echo.port)) as proxy:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
                sock.sendall(b"CONN")  # then vanish mid-head
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.sendall(b"CONNECT localhost:1 HTTP/1.1\r\n\r\n")  # reset after the request
        status, _, _ = exchange(proxy.port, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
        assert status == 403


def test_stop_closes_open_tunnels(echo: EchoServer) -> None:
    proxy = run_proxy_in_thread(proxy_config(echo.port))
    proxy.wait_ready(10)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"CONNECT localhost:443 HTTP/1.1\r\n\r\n")
        assert read_head(sock)[0] == 200
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"
        proxy.stop()
        assert read_all(sock) == b""
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()


def test_start_failure_is_reported() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        config = ProxyConfig(listen_port=taken.getsockname()[1])
        proxy = run_proxy_in_thread(config)
        with pytest.raises(RuntimeError, match="failed to start"):
            proxy.wait_ready(10)
        proxy.stop()


def test_serve_proxy_coroutine(echo: EchoServer) -> None:
    async def main() -> bytes:
        # Find a free port first: serve_proxy itself does not report the port.
        config = proxy_config(echo.port)
        config.listen_port = closed_port()
        ready = asyncio.Event()
        task = asyncio.create_task(serve_proxy(config, ready=ready))
        await asyncio.wait_for(ready.wait(), 10)
        reader, writer = await asyncio.open_connection("127.0.0.1", config.listen_port)
        writer.write(b"CONNECT x.vault.azure.net:443 HTTP/1.1\r\n\r\nping")
        writer.write_eof()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        await writer.wait_closed()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return data

    assert asyncio.run(main()) == b"HTTP/1.1 200 Connection Established\r\n\r\nping"


# --- TLS end to end through the proxy -----------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"host": self.headers["Host"], "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_https_through_proxy(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path, default_server_names())
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.server_cert, files.server_key)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with running(proxy_config(httpd.server_address[1])) as proxy:
            client_ctx = ssl.create_default_context(cafile=str(files.ca_cert))
            # What requests/urllib3 do with HTTPS_PROXY: CONNECT, then TLS to the real name.
            conn = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=client_ctx, timeout=10)
            conn.set_tunnel("myvault.vault.azure.net", 443)
            try:
                for path in ("/keys?api-version=7.5", "/keys/k1"):
                    conn.request("GET", path)
                    response = conn.getresponse()
                    assert response.status == 200
                    assert json.loads(response.read()) == {"host": "myvault.vault.azure.net", "path": path}
            finally:
                conn.close()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_client_side_reads_are_acked_at_once(echo: EchoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib3 tunnels without TCP_NODELAY: the proxy must quick-ACK the client's socket after each read."""
    from kluis.api import proxy as proxy_module

    acked: list[tuple[str, int]] = []
    real = proxy_module._quickack

    def spy(sock: socket.socket | None) -> None:
        if sock is not None:
            acked.append(sock.getpeername())
        real(sock)

    monkeypatch.setattr(proxy_module, "_quickack", spy)
    with (
        running(proxy_config(echo.port)) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock,
    ):
        sock.sendall(b"CONNECT myvault.vault.azure.net:443 HTTP/1.1\r\nHost: myvault.vault.azure.net:443\r\n\r\n")
        assert read_head(sock)[0] == 200
        sock.sendall(b"head")
        assert sock.recv(16) == b"head"
        me = sock.getsockname()
    assert acked and all(peer == me for peer in acked)


def test_a_tunnel_tells_the_listener_its_real_client(tmp_path: Path) -> None:
    """The listener sees the proxy (127.0.0.1:P); the tunnel table maps P to the client (here bound to
    127.0.0.2, another loopback address) while the tunnel is open, and forgets it when it closes."""
    from kluis.api.tunnels import TunnelTable

    upstream = socket.create_server(("127.0.0.1", 0))
    peers: list[tuple[str, int]] = []
    accepted = threading.Event()

    def accept() -> None:
        conn, peer = upstream.accept()
        peers.append(peer)
        accepted.set()
        with conn:
            while conn.recv(65536):
                pass

    threading.Thread(target=accept, daemon=True).start()
    path = tmp_path / "tunnels.bin"
    with running(proxy_config(upstream.getsockname()[1], tunnels=path)) as proxy:
        table = TunnelTable(path)
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10, source_address=("127.0.0.2", 0))
        client.sendall(b"CONNECT myvault.vault.azure.net:443 HTTP/1.1\r\nHost: myvault.vault.azure.net:443\r\n\r\n")
        assert read_head(client)[0] == 200 and accepted.wait(10)
        tunnel_ip, tunnel_port = peers[0]
        assert tunnel_ip == "127.0.0.1"
        assert table.client_of(tunnel_ip, tunnel_port) == "127.0.0.2"
        client.close()
        for _ in range(100):  # the proxy releases the slot when the tunnel ends
            if table.client_of(tunnel_ip, tunnel_port) is None:
                break
            threading.Event().wait(0.05)
        assert table.client_of(tunnel_ip, tunnel_port) is None
    upstream.close()

"""The real client address of a connection that came through kluis's CONNECT proxy.

Zero-change clients reach kluis through the CONNECT proxy (``HTTPS_PROXY``): the proxy opens its own
connection to the TLS listener and copies bytes, so the listener sees every such client as the proxy,
``127.0.0.1``. TLS is end to end, so the proxy cannot add a header; the usual fix, the PROXY protocol
on the internal hop, needs the TLS server to parse it, and granian (kluis's HTTP server) has no
option for it (its ``Server`` takes no proxy-protocol setting as of 2.x). So the proxy passes the
address on beside the connection instead: a table every worker maps, indexed by the *local port* of
the proxy's connection to the listener.

Why a port identifies a tunnel: while the proxy's connection ``127.0.0.1:P -> listener`` is open, no
other connection to the listener can have that source (a TCP 4-tuple is unique), and the proxy
writes the slot before it forwards the first byte and clears it before it closes the connection. A
worker trusts a slot only for a peer whose address is the one the proxy connected from (loopback),
so a remote client can never be given another address. The proxy clears the whole table when it
starts (a crashed proxy's slots are never read: its tunnels died with it).

File: ``65,536`` slots (one per port) of ``_SLOT`` bytes, about 2.4 MiB, created sparse, mode 0600, in
the data directory beside the throttle tables. A slot is ``state`` (0 free, 1 in use), the address
family of the client (4 or 6), the client's IP (16 bytes, IPv4 in the first 4), the client's port and
the IP the tunnel came from. Writers fill the fields before setting ``state``; a reader sees a slot
only after the proxy has written it, because the proxy forwards nothing until then.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from pathlib import Path

from kluis.api.mapped import map_file

__all__ = ["TunnelTable", "split_peer", "tunnel_table_path"]

_SLOT = struct.Struct("<BB16sH16s")  # state, family, client ip, client port, tunnel source ip
_PORTS = 65536
_IN_USE = 1
_LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


def tunnel_table_path(data_dir: Path, port: int) -> Path:
    """The table of the listener on ``port`` (one per port, like the throttle tables)."""
    return data_dir / f"tunnels-{port}.bin"


def _packed(ip: str) -> tuple[int, bytes]:
    """(4 or 6, the address in 16 bytes) for an IP literal; ValueError for anything else."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack listener names IPv4 peers ::ffff:a.b.c.d
    return address.version, address.packed.ljust(16, b"\0")


def split_peer(peer: object) -> tuple[str, int]:
    """(ip, port) of RSGI's ``scope.client`` ("1.2.3.4:5", "[::1]:5") or ASGI's ``(host, port)``;
    ("", 0) when unknown. The port is 0 where the server gave none."""
    if not peer:
        return "", 0
    if isinstance(peer, str):
        if peer.startswith("["):  # "[v6]:port"
            host, _, port = peer[1:].partition("]")
            port = port.lstrip(":")
        elif peer.count(":") == 1:  # "v4:port"
            host, _, port = peer.partition(":")
        else:  # a bare address
            host, port = peer, ""
        return host, int(port) if port.isdigit() else 0
    if isinstance(peer, tuple | list) and peer:
        return str(peer[0]), peer[1] if len(peer) > 1 and isinstance(peer[1], int) else 0
    return "", 0


class TunnelTable:
    """The proxy's record of which client each of its connections to the listener carries.

    ``TunnelTable.create(path)`` (the proxy, once at start: clears the table) or
    ``TunnelTable(path)`` (a worker: maps what is there). Thread-safe for one writer (the proxy's
    event loop) and any number of readers."""

    __slots__ = ("_fd", "_map")

    def __init__(self, path: Path) -> None:
        self._fd, self._map = map_file(path, _SLOT.size * _PORTS)

    @classmethod
    def create(cls, path: Path) -> TunnelTable:
        """A cleared table at ``path`` (slots of an earlier process are forgotten)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, 0)  # drop every old slot; the next open re-extends it sparse, all zero
        finally:
            os.close(fd)
        return cls(path)

    def register(self, tunnel: tuple[str, int], client: tuple[str, int]) -> bool:
        """Record that the connection from ``tunnel`` (the proxy's local ip, port) carries ``client``
        (ip, port). False (nothing recorded) when either address is not an IP literal."""
        try:
            family, client_ip = _packed(client[0])
            _, source_ip = _packed(tunnel[0])
        except ValueError:
            return False
        offset = tunnel[1] * _SLOT.size
        _SLOT.pack_into(self._map, offset, 0, family, client_ip, client[1] & 0xFFFF, source_ip)
        self._map[offset] = _IN_USE  # last: a reader never sees a half-written slot in use
        return True

    def release(self, tunnel_port: int) -> None:
        """Forget the connection from ``tunnel_port`` (call before closing it)."""
        self._map[tunnel_port * _SLOT.size] = 0

    def client_of(self, ip: str, port: int) -> str | None:
        """The real client IP of a peer ``ip:port`` if it is one of the proxy's tunnels, else None.
        Only loopback peers are looked up: the proxy always connects from loopback."""
        if ip not in _LOOPBACK or not 0 < port < _PORTS:
            return None
        state, family, client_ip, _, source_ip = _SLOT.unpack_from(self._map, port * _SLOT.size)
        if state != _IN_USE:
            return None
        try:
            _, peer_ip = _packed(ip)
        except ValueError:
            return None
        if peer_ip != source_ip:
            return None
        raw = client_ip[:4] if family == 4 else client_ip
        return str(ipaddress.ip_address(raw))

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)

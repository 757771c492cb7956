from __future__ import annotations

from pathlib import Path

import pytest

from kluis.api.tunnels import TunnelTable, split_peer, tunnel_table_path


@pytest.fixture
def table(tmp_path: Path) -> TunnelTable:
    return TunnelTable.create(tunnel_table_path(tmp_path, 8443))


def test_a_registered_tunnel_names_its_client_until_released(table: TunnelTable) -> None:
    assert table.register(("127.0.0.1", 50123), ("203.0.113.9", 61000))
    assert table.client_of("127.0.0.1", 50123) == "203.0.113.9"
    assert table.client_of("127.0.0.1", 50124) is None  # another connection: not a tunnel
    table.release(50123)
    assert table.client_of("127.0.0.1", 50123) is None


def test_ipv6_clients_and_dual_stack_peers(table: TunnelTable) -> None:
    table.register(("127.0.0.1", 40000), ("2001:db8::7", 5))
    assert table.client_of("127.0.0.1", 40000) == "2001:db8::7"
    assert table.client_of("::ffff:127.0.0.1", 40000) == "2001:db8::7"  # a dual-stack listener's view


def test_only_the_loopback_address_the_tunnel_came_from_is_trusted(table: TunnelTable) -> None:
    table.register(("127.0.0.1", 40001), ("198.51.100.1", 5))
    assert table.client_of("10.0.0.5", 40001) is None  # a remote peer with the same port
    assert table.client_of("::1", 40001) is None  # loopback, but not the tunnel's source
    assert table.client_of("127.0.0.1", 0) is None and table.client_of("127.0.0.1", 70000) is None


def test_addresses_that_are_not_ip_literals_are_not_recorded(table: TunnelTable) -> None:
    assert not table.register(("127.0.0.1", 40002), ("example.org", 5))
    assert table.client_of("127.0.0.1", 40002) is None


def test_create_forgets_the_slots_of_an_earlier_proxy(tmp_path: Path) -> None:
    path = tunnel_table_path(tmp_path, 1)
    old = TunnelTable.create(path)
    old.register(("127.0.0.1", 40003), ("198.51.100.2", 5))
    old.close()
    assert TunnelTable(path).client_of("127.0.0.1", 40003) == "198.51.100.2"  # a worker maps what is there
    assert TunnelTable.create(path).client_of("127.0.0.1", 40003) is None
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("peer", "split"),
    [
        ("127.0.0.1:50123", ("127.0.0.1", 50123)),
        ("[::1]:50123", ("::1", 50123)),
        ("::1", ("::1", 0)),
        ("10.0.0.7", ("10.0.0.7", 0)),
        (("10.0.0.7", 443), ("10.0.0.7", 443)),
        (None, ("", 0)),
        ("", ("", 0)),
    ],
)
def test_split_peer(peer: object, split: tuple[str, int]) -> None:
    assert split_peer(peer) == split

"""Which host names are kluis's and which vault each addresses: NAME.<suffix> is vault NAME, nothing else is."""

from __future__ import annotations

import pytest

from kluis.addressing import is_ip, vault_label, vault_suffixes


def test_suffixes() -> None:
    assert vault_suffixes() == (".vault.azure.net", ".localhost")
    assert vault_suffixes(["KV.Example.COM.", ".", ""]) == (".vault.azure.net", ".localhost", ".kv.example.com")


@pytest.mark.parametrize(
    ("host", "domains", "label"),
    [
        ("myvault.vault.azure.net", (), ("myvault", "vault.azure.net")),
        ("MyVault.Vault.Azure.Net.", (), ("myvault", "vault.azure.net")),  # case and a trailing dot
        ("v2.localhost", (), ("v2", "localhost")),
        ("v3.kv.example.com", ("kv.example.com",), ("v3", "kv.example.com")),
        ("v3.kv.example.com", (), None),  # a domain only counts when configured
        ("a.b.vault.azure.net", (), None),  # one label only
        ("vault.azure.net", (), None),
        (".vault.azure.net", (), None),
        ("localhost", (), None),
        ("example.com", (), None),
        ("127.0.0.1", (), None),
        ("::1", (), None),
    ],
)
def test_vault_label(host: str, domains: tuple[str, ...], label: tuple[str, str] | None) -> None:
    assert vault_label(host, domains) == label


def test_is_ip() -> None:
    for ip in ("127.0.0.1", "10.1.2.3", "::1", "[::1]", "fe80::1"):
        assert is_ip(ip), ip
    for name in ("localhost", "1.2.3", "256.0.0.1", "", "v.localhost"):
        assert not is_ip(name), name

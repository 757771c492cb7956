from __future__ import annotations

import pytest

from kluis.api.hosts import AZURE_RESOURCE, HostResolver

R = HostResolver(["kms.example"], ["vault.corp.example", "Kv.Lan.", "myhost", "10.9.8.7", "kv9.kms.example"])


@pytest.mark.parametrize(
    ("host", "vault", "resource"),
    [
        ("myvault.vault.azure.net", "myvault", AZURE_RESOURCE),
        ("MyVault.vault.azure.net:443", "myvault", AZURE_RESOURCE),
        ("kv1.kms.example:8443", "kv1", "https://kms.example:8443"),
        ("kv1.localhost:8443", "kv1", "https://localhost:8443"),
        ("localhost:8443", "default", AZURE_RESOURCE),
        ("127.0.0.1:8443", "default", AZURE_RESOURCE),
        ("[::1]:8443", "default", AZURE_RESOURCE),
        ("10.1.2.3", "default", AZURE_RESOURCE),
        # --hostname names: the default vault; the parent domain (same port) is the resource
        ("vault.corp.example:8443", "default", "https://corp.example:8443"),
        # a trailing dot (fully qualified) is the same name; the resource keeps it for the SDK's check
        ("VAULT.corp.example.:8443", "default", "https://corp.example.:8443"),
        ("kv1.kms.example.:8443", "kv1", "https://kms.example.:8443"),
        ("myvault.vault.azure.net.", "myvault", "https://vault.azure.net."),
        ("localhost.:8443", "default", AZURE_RESOURCE),
        ("myhost.:8443", "default", AZURE_RESOURCE),
        ("vault.corp.example", "default", "https://corp.example"),
        ("vault.corp.example:443", "default", "https://corp.example"),
        ("kv.lan:9000", "default", "https://lan:9000"),
        ("myhost:8443", "default", AZURE_RESOURCE),  # one label: no parent, like localhost
        ("10.9.8.7:8443", "default", AZURE_RESOURCE),  # an IP address has no parent domain
        ("kv9.kms.example:8443", "kv9", "https://kms.example:8443"),  # under a --domain: that vault
        ("other.corp.example:8443", None, AZURE_RESOURCE),  # a sibling is not a --hostname
        ("corp.example:8443", None, AZURE_RESOURCE),  # nor is the parent itself
        # no other host is ever served by the default vault
        ("a.b.vault.azure.net", None, AZURE_RESOURCE),
        ("evil.example.com", None, AZURE_RESOURCE),
        ("login.microsoftonline.com", None, AZURE_RESOURCE),
        ("", None, AZURE_RESOURCE),
    ],
)
def test_resolution(host: str, vault: str | None, resource: str) -> None:
    info = R.resolve(host)
    assert (info.vault_name, info.resource) == (vault, resource)
    assert AZURE_RESOURCE in info.audiences and resource in info.audiences


def test_base_url_keeps_what_the_client_used() -> None:
    assert R.resolve("kv1.kms.example:8443").base_url == "https://kv1.kms.example:8443"
    assert R.resolve("myvault.vault.azure.net").base_url == "https://myvault.vault.azure.net"


def test_challenge_resource_passes_the_python_sdk_check() -> None:
    """The SDK's own rule: the vault netloc must end with '.' + the resource netloc."""
    from urllib.parse import urlparse

    hosts = ("myvault.vault.azure.net", "kv1.kms.example:8443", "kv1.localhost:8443", "vault.corp.example:8443",
             "vault.corp.example", "kv.lan:9000", "vault.corp.example.:8443", "kv1.kms.example.:8443",
             "myvault.vault.azure.net.")  # fmt: skip
    for host in hosts:
        resource = urlparse(R.resolve(host).resource).netloc
        assert host.endswith("." + resource)


def test_hostname_accepts_its_parent_and_azure_audiences_only() -> None:
    """A --hostname's challenge audience is accepted there, beside Azure's; not on other hosts."""
    assert R.resolve("vault.corp.example:8443").audiences == {AZURE_RESOURCE, "https://corp.example:8443"}
    assert R.resolve("myhost:8443").audiences == {AZURE_RESOURCE}
    assert R.resolve("localhost:8443").audiences == {AZURE_RESOURCE}
    assert "https://corp.example:8443" not in R.resolve("kv1.kms.example:8443").audiences


def test_a_trailing_dot_names_the_same_host() -> None:
    """DNS's fully qualified form addresses the same vault, and a token for either form of the
    parent is accepted there (the SDK asks for the resource the challenge gave: with the dot)."""
    dotted, plain = R.resolve("vault.corp.example.:8443"), R.resolve("vault.corp.example:8443")
    assert dotted.vault_name == plain.vault_name == "default"
    assert dotted.audiences == {AZURE_RESOURCE, "https://corp.example.:8443", "https://corp.example:8443"}
    assert dotted.base_url == "https://vault.corp.example.:8443"  # as the client wrote it
    assert R.resolve("kv.lan.:9000").vault_name == "default"  # --hostname given as "Kv.Lan."
    assert R.resolve("other.corp.example.:8443").vault_name is None


def test_no_hostnames_changes_nothing() -> None:
    plain = HostResolver(["kms.example"])
    assert plain.resolve("vault.corp.example:8443").vault_name is None
    assert plain.resolve("kv1.kms.example:8443") == R.resolve("kv1.kms.example:8443")
    assert plain.resolve("localhost:8443") == R.resolve("localhost:8443")

from __future__ import annotations

import pytest

from kluis.api.hosts import AZURE_RESOURCE, HostResolver

R = HostResolver(["kms.example"], ["vault.corp.example"])


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
        ("vault.corp.example:8443", "default", AZURE_RESOURCE),  # a --hostname name
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

    for host in ("myvault.vault.azure.net", "kv1.kms.example:8443", "kv1.localhost:8443"):
        resource = urlparse(R.resolve(host).resource).netloc
        assert host.endswith("." + resource)

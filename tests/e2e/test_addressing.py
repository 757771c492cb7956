"""Vault addressing: a configured domain passes the SDK's challenge check with verification on."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.keyvault.keys import KeyClient

from tests.e2e.conftest import Principal, proxied_credential, proxied_transport
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def domain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KluisServer]:
    server = KluisServer(tmp_path_factory.mktemp("dom") / "data", extra_args=["--domain", "kms.test", "--workers", "2"])
    server.start()
    yield server
    server.stop()


def test_custom_domain_with_challenge_verification_on(domain_server: KluisServer, tmp_path: Path) -> None:
    s = domain_server
    s.cli("group", "create", "-n", "rg")
    s.cli("keyvault", "create", "-n", "teamvault", "-g", "rg")
    a = s.admin()
    admin = Principal(a["appId"], a["password"], a["tenant"])
    url = f"https://teamvault.kms.test:{s.port}"
    client = KeyClient(url, proxied_credential(s, admin), transport=proxied_transport(s))
    key = client.create_ec_key("domain-key")
    assert key.id.startswith(f"{url}/keys/domain-key/")
    assert client.get_key("domain-key").id == key.id
    ids = [k.id for k in client.list_properties_of_keys()]
    assert f"{url}/keys/domain-key" in ids
    other = KeyClient(f"https://ghost.kms.test:{s.port}", proxied_credential(s, admin), transport=proxied_transport(s))
    with pytest.raises(HttpResponseError) as err:
        other.get_key("x")
    assert err.value.status_code == 404 and "VaultNotFound" in str(err.value)


def test_two_workers_share_state(domain_server: KluisServer) -> None:
    """Writes through one worker are visible through the other (no per-process state)."""
    s = domain_server
    a = s.admin()
    admin = Principal(a["appId"], a["password"], a["tenant"])
    client = KeyClient(
        f"https://teamvault.kms.test:{s.port}", proxied_credential(s, admin), transport=proxied_transport(s)
    )
    names = [f"shared{i}" for i in range(12)]
    for n in names:
        client.create_ec_key(n)
    for n in names:  # new connections land on either worker
        fresh = KeyClient(
            f"https://teamvault.kms.test:{s.port}", proxied_credential(s, admin), transport=proxied_transport(s)
        )
        assert fresh.get_key(n).name == n


# --hostname names, reached by those names (there is no DNS here: the test resolves them to loopback;
# the URL, the Host header, TLS's SNI and certificate check all use the name).
CORP_NAME = "vault.corp.test"  # has a parent domain: corp.test
BARE_NAME = "kluisbox"  # one label: no parent domain, like localhost


@pytest.fixture(scope="module")
def hostname_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KluisServer]:
    server = KluisServer(
        tmp_path_factory.mktemp("hn") / "data",
        extra_args=["--hostname", CORP_NAME, "--hostname", BARE_NAME, "--workers", "1"],
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def names_resolve_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """``getaddrinfo`` answers 127.0.0.1 for the --hostname names (what /etc/hosts would do)."""
    real = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        return real("127.0.0.1" if name in (CORP_NAME, BARE_NAME) else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def _by_name(s: KluisServer, name: str) -> tuple[str, ClientSecretCredential]:
    a = s.admin()
    url = f"https://{name}:{s.port}"
    # Direct mode, as `kluis env --direct` sets it up, with the authority reached by the same name.
    return url, ClientSecretCredential("adfs", a["appId"], a["password"], authority=url, connection_verify=s.ca)


@pytest.mark.usefixtures("names_resolve_to_loopback")
def test_hostname_with_parent_domain_passes_challenge_verification(hostname_server: KluisServer) -> None:
    """A new user's setup: ``KeyClient("https://vault.corp.test:PORT", credential)``, default settings."""
    s = hostname_server
    url, cred = _by_name(s, CORP_NAME)
    with KeyClient(url, cred, connection_verify=s.ca) as client:  # verify_challenge_resource left on
        key = client.create_ec_key("hostname-key")
        assert key.id.startswith(f"{url}/keys/hostname-key/")
        assert client.get_key("hostname-key").id == key.id
    # the same vault as localhost (the default vault)
    with KeyClient(s.url, cred, verify_challenge_resource=False, connection_verify=s.ca) as local:
        assert local.get_key("hostname-key").key.x == key.key.x
    # a token for Azure's standard audience is still accepted on that host
    token = cred.get_token("https://vault.azure.net/.default").token
    r = httpx.get(
        f"{url}/keys?api-version=7.5",
        headers={"Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=s.ca),
    )
    assert r.status_code == 200, r.text
    assert any(k["kid"] == f"{url}/keys/hostname-key" for k in r.json()["value"])


@pytest.mark.usefixtures("names_resolve_to_loopback")
def test_single_label_hostname_needs_verification_off(hostname_server: KluisServer) -> None:
    """One label has no parent domain to advertise: like bare localhost, the check must be turned off."""
    s = hostname_server
    url, cred = _by_name(s, BARE_NAME)
    with KeyClient(url, cred, connection_verify=s.ca) as client, pytest.raises(ValueError, match="challenge resource"):
        client.get_key("anything")
    with KeyClient(url, cred, verify_challenge_resource=False, connection_verify=s.ca) as client:
        key = client.create_ec_key("bare-key")
        assert key.id.startswith(f"{url}/keys/bare-key/")

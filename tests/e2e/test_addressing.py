"""Vault addressing: a configured domain passes the SDK's challenge check with verification on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
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

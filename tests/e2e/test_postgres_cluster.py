"""Two ``kluis serve`` nodes on one PostgreSQL database act as one vault, driven by the official SDK.

The second node starts from an empty data dir holding only the first node's ``kek.key``: it finds
the tenant, administrator, token-signing key and CA in the database (clients of node 1 trust it
unchanged). Both nodes are driven concurrently; a disable, delete or policy change made through
one node takes effect on the other within one second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm

from kluis.addressing import DEFAULT_VAULT
from tests.e2e.conftest import Principal, credential, unique
from tests.e2e.server import KluisServer, join_node
from tests.pgserver import PostgresServer

pytestmark = pytest.mark.slow

BOUND = 1.0  # seconds within which a change on one node holds on the other
DIGEST = b"\x01" * 32


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> Iterator[list[KluisServer]]:
    url = postgres_server.new_database()
    root = tmp_path_factory.mktemp("cluster")
    args = ["--database", url, "--workers", "2", "--key-pool", "0", "--scheduler-interval", "3600"]
    (root / "n1").mkdir()
    first = KluisServer(root / "n1" / "data", extra_args=args).start()
    nodes = [first]
    try:
        nodes.append(join_node(first, root / "n2" / "data", args))
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def _client(node: KluisServer, who: Principal, authority: KluisServer) -> KeyClient:
    """A client of ``node`` whose tokens come from ``authority`` and who trusts ``authority``'s CA."""
    return KeyClient(
        node.url, credential(authority, who), verify_challenge_resource=False, connection_verify=authority.ca
    )


def _within_bound(check: Callable[[], bool]) -> float:
    """Seconds until ``check()`` is true; fails the test past the bound."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < BOUND, "the change made on node 1 did not reach node 2 within 1 s"
        time.sleep(0.02)
    return time.monotonic() - start


def test_the_second_node_joins_the_first_nodes_tenant_administrator_and_ca(cluster: list[KluisServer]) -> None:
    first, second = cluster
    assert second.admin() == first.admin()
    assert Path(second.ca).read_bytes() == Path(first.ca).read_bytes()


def test_two_nodes_driven_concurrently_act_as_one_vault(cluster: list[KluisServer]) -> None:
    first, second = cluster
    a = first.admin()
    admin = Principal(a["appId"], a["password"], a["tenant"])
    # node 2's client gets its token from node 1 and trusts node 1's CA: one signing key, one CA
    clients = [_client(first, admin, first), _client(second, admin, first)]
    name = unique("shared")

    def create(i: int) -> str:
        return str(clients[i % 2].create_ec_key(name, curve="P-256").properties.version)

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(create, range(24)))
    assert len(set(made)) == 24
    for c in clients:
        listed = [p.version for p in c.list_properties_of_key_versions(name)]
        assert sorted(listed) == sorted(made)  # every version, once, seen alike from both nodes
        assert c.get_key(name).properties.version == listed[-1]  # the current one is the last made

    # disable on node 1: node 2 refuses to sign with it within the bound
    signer = CryptographyClient(clients[1].get_key(name), credential(first, admin), connection_verify=first.ca,
                                verify_challenge_resource=False)  # fmt: skip
    assert signer.sign(SignatureAlgorithm.es256, DIGEST).signature  # node 2's cache is warm

    def refused() -> bool:
        try:
            signer.sign(SignatureAlgorithm.es256, DIGEST)
        except HttpResponseError as e:
            assert e.status_code == 403
            return True
        return False

    clients[0].update_key_properties(name, enabled=False)
    _within_bound(refused)

    # delete on node 1: gone on node 2 within the bound
    assert clients[1].get_key(name).name == name
    clients[0].begin_delete_key(name).wait()

    def gone() -> bool:
        try:
            clients[1].get_key(name)
        except ResourceNotFoundError:
            return True
        return False

    _within_bound(gone)
    for c in clients:
        c.close()


def test_a_policy_removed_on_one_node_is_enforced_on_the_other(cluster: list[KluisServer]) -> None:
    first, second = cluster
    sp = first.cli_json("ad", "sp", "create-for-rbac", "-n", unique("app"))
    who = Principal(sp["appId"], sp["password"], sp["tenant"])
    a = first.admin()
    name = unique("k")
    _client(first, Principal(a["appId"], a["password"], a["tenant"]), first).create_ec_key(name, curve="P-256")
    first.cli("keyvault", "set-policy", "-n", DEFAULT_VAULT, "--spn", who.app_id, "--key-permissions", "get")
    reader = _client(second, who, second)
    assert reader.get_key(name).name == name  # allowed, and cached on node 2
    first.cli("keyvault", "delete-policy", "-n", DEFAULT_VAULT, "--spn", who.app_id)

    def forbidden() -> bool:
        try:
            reader.get_key(name)
        except HttpResponseError as e:
            assert e.status_code == 403
            return True
        return False

    _within_bound(forbidden)
    reader.close()

"""Requests through the CONNECT proxy carry the client's real address (not the proxy's 127.0.0.1) into
Key Vault's ``x-ms-keyvault-network-info`` header and the audit log, against a real ``kluis serve``.
The client binds 127.0.0.2, a second loopback address, so the two can be told apart on one host."""

from __future__ import annotations

import http.client
import json
import ssl

import httpx
import orjson
import pytest

from kluis.api.versions import LATEST_API_VERSION
from tests.e2e.conftest import Principal, unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow

CLIENT_IP = "127.0.0.2"


def _token(kluis: KluisServer, who: Principal) -> str:
    r = httpx.post(
        f"{kluis.url}/adfs/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": who.app_id, "client_secret": who.password,
              "scope": "https://vault.azure.net/.default"},
        verify=ssl.create_default_context(cafile=kluis.ca),
    )  # fmt: skip
    r.raise_for_status()
    return str(r.json()["access_token"])


def _through_proxy(
    kluis: KluisServer, method: str, path: str, token: str, body: object = None
) -> http.client.HTTPResponse:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", kluis.proxy_port, timeout=15, source_address=(CLIENT_IP, 0),
        context=ssl.create_default_context(cafile=kluis.ca),
    )  # fmt: skip
    conn.set_tunnel("default.vault.azure.net", 443)  # what an SDK does with HTTPS_PROXY set
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request(method, f"{path}?api-version={LATEST_API_VERSION}", orjson.dumps(body) if body else None, headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def _assert_audited_from_client(kluis: KluisServer, name: str) -> None:
    """Every CreateKey record of ``name`` (an SDK's unauthenticated first try answered 401, then the
    200) names the client's own address."""
    out = kluis.cli("audit", "list", "--operation", "CreateKey", "-o", "json").stdout
    records = [r for r in map(json.loads, out.splitlines()) if r["name"] == name]
    assert 200 in {r["status"] for r in records}
    assert {r["clientAddress"] for r in records} == {CLIENT_IP}


def test_the_proxy_passes_the_real_client_address_on(kluis: KluisServer, admin: Principal) -> None:
    token = _token(kluis, admin)
    name = unique("proxied")
    created = _through_proxy(kluis, "POST", f"/keys/{name}/create", token, {"kty": "EC", "crv": "P-256"})
    assert created.status == 200
    assert f"addr={CLIENT_IP};" in created.headers["x-ms-keyvault-network-info"]
    got = _through_proxy(kluis, "GET", f"/keys/{name}", token)
    assert got.status == 200 and f"addr={CLIENT_IP};" in got.headers["x-ms-keyvault-network-info"]
    # the same request straight to the listener from 127.0.0.1 is not taken for a tunnel
    direct = httpx.get(
        f"{kluis.url}/keys/{name}", params={"api-version": LATEST_API_VERSION},
        headers={"Authorization": f"Bearer {token}"}, verify=ssl.create_default_context(cafile=kluis.ca),
    )  # fmt: skip
    assert direct.status_code == 200 and "addr=127.0.0.1;" in direct.headers["x-ms-keyvault-network-info"]
    # the acknowledged write's audit record names the real client
    _assert_audited_from_client(kluis, name)


def test_the_sync_sdk_through_the_proxy_is_audited_with_its_own_address(kluis: KluisServer, admin: Principal) -> None:
    """Zero-change mode with the official sync SDK (requests) on a connection bound to 127.0.0.2."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from azure.identity import ClientSecretCredential
    from azure.keyvault.keys import KeyClient
    from requests.adapters import HTTPAdapter

    class FromClientAddress(HTTPAdapter):
        def init_poolmanager(self, *args: object, **kwargs: object) -> None:
            super().init_poolmanager(*args, **{**kwargs, "source_address": (CLIENT_IP, 0)})  # type: ignore[arg-type]

        def proxy_manager_for(self, proxy: str, **kwargs: object) -> object:
            return super().proxy_manager_for(proxy, **{**kwargs, "source_address": (CLIENT_IP, 0)})

    def transport() -> RequestsTransport:
        session = requests.Session()
        session.trust_env = False
        session.mount("https://", FromClientAddress())
        session.proxies = {"https": f"http://127.0.0.1:{kluis.proxy_port}"}
        return RequestsTransport(session=session, session_owner=True, connection_verify=kluis.ca)

    credential = ClientSecretCredential(admin.tenant, admin.app_id, admin.password, transport=transport())
    name = unique("syncproxied")
    with KeyClient("https://default.vault.azure.net", credential, transport=transport()) as client:
        assert client.create_ec_key(name, curve="P-256").name == name
    _assert_audited_from_client(kluis, name)


def test_the_async_sdk_through_the_proxy_is_audited_with_its_own_address(kluis: KluisServer, admin: Principal) -> None:
    """The same with the official async SDK (aiohttp), its connections bound to 127.0.0.2."""
    import asyncio

    import aiohttp
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.identity.aio import ClientSecretCredential
    from azure.keyvault.keys.aio import KeyClient

    name = unique("asyncproxied")
    proxies = {"https": f"http://127.0.0.1:{kluis.proxy_port}"}

    def transport() -> AioHttpTransport:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(CLIENT_IP, 0)))
        return AioHttpTransport(session=session, session_owner=True, connection_verify=kluis.ca)

    async def journey() -> None:
        credential = ClientSecretCredential(
            admin.tenant, admin.app_id, admin.password, proxies=proxies, transport=transport()
        )
        async with (
            credential,
            KeyClient("https://default.vault.azure.net", credential, proxies=proxies, transport=transport()) as client,
        ):
            assert (await client.create_ec_key(name, curve="P-256")).name == name

    asyncio.run(journey())
    _assert_audited_from_client(kluis, name)

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
    out = kluis.cli("audit", "list", "--operation", "CreateKey", "-o", "json").stdout
    (record,) = [r for r in map(json.loads, out.splitlines()) if r["name"] == name]
    assert record["clientAddress"] == CLIENT_IP

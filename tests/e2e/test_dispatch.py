"""The dispatcher's guarantees on a running server: request ids, routing by authority on HTTP/1.1
and HTTP/2, and no request ever served by a vault its authority does not name."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import Principal, unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow


def _token(kluis: KluisServer, who: Principal) -> str:
    r = httpx.post(
        f"{kluis.url}/adfs/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": who.app_id, "client_secret": who.password,
              "scope": "https://vault.azure.net/.default"},
        verify=_ca(kluis),
    )  # fmt: skip
    r.raise_for_status()
    return str(r.json()["access_token"])


def _ca(kluis: KluisServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=kluis.ca)


def test_every_answer_carries_a_fresh_request_id(kluis: KluisServer) -> None:
    with httpx.Client(verify=_ca(kluis)) as c:
        ids = set()
        for path in ("/keys?api-version=7.6", "/nothing", "/_kluis/health"):
            r = c.get(kluis.url + path, headers={"x-ms-client-request-id": "mine"})
            assert len(r.headers["x-ms-request-id"]) == 32 and r.headers["x-ms-client-request-id"] == "mine"
            ids.add(r.headers["x-ms-request-id"])
        assert len(ids) == 3


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_requests_are_routed_by_their_authority(
    kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal], http2: bool
) -> None:
    """A principal with rights on its own vault only: its vault answers 200 on both protocols; the
    default vault (bare localhost) answers 403; an unknown host addresses no vault at all."""
    vault = make_vault()
    who = make_principal(vault, "get", "list")
    token = {"authorization": f"Bearer {_token(kluis, who)}"}
    # kluis's certificate covers *.localhost names only through NAME.localhost routing; connect by IP
    # and set the authority explicitly so the test needs no DNS.
    transport = httpx.HTTPTransport(http2=http2, http1=not http2, verify=False)
    with httpx.Client(transport=transport) as c:

        def get(authority: str) -> httpx.Response:
            return c.get(
                f"https://127.0.0.1:{kluis.port}/keys?api-version=7.6",
                headers={**token, "host": authority},
                extensions={"sni_hostname": "localhost"},
            )

        own = get(f"{vault}.localhost:{kluis.port}")
        assert own.status_code == 200, own.text
        assert own.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        assert get(f"localhost:{kluis.port}").status_code == 403  # the default vault: no policy there
        ghost = get(f"evil.example.com:{kluis.port}")
        assert ghost.status_code == 404 and ghost.json()["error"]["code"] == "VaultNotFound"
        ids = get(f"{vault}.localhost:{kluis.port}").json()
        assert ids == {"value": [], "nextLink": None}


def test_openid_configuration_names_the_authority_over_http2(kluis: KluisServer) -> None:
    transport = httpx.HTTPTransport(http2=True, http1=False, verify=_ca(kluis))
    with httpx.Client(transport=transport) as c:
        r = c.get(f"https://localhost:{kluis.port}/adfs/.well-known/openid-configuration")
    assert r.http_version == "HTTP/2"
    assert r.json()["token_endpoint"].startswith(f"https://localhost:{kluis.port}/")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_over_http2(kluis: KluisServer, make_vault: Callable[..., str], admin: Principal) -> None:
    vault = make_vault()
    token = _token(kluis, admin)
    name = unique("c")
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", kluis.ca, "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
         "--resolve", f"{vault}.vault.azure.net:{kluis.port}:127.0.0.1",
         "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json",
         "-d", '{"kty": "EC", "crv": "P-256"}',
         f"https://{vault}.vault.azure.net:{kluis.port}/keys/{name}/create?api-version=7.6"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert out.stdout == "2 200", out.stdout + out.stderr


def test_crypto_operations_without_a_version_segment_use_the_latest(
    kluis: KluisServer, make_vault: Callable[..., str], admin: Principal
) -> None:
    """``POST /keys/NAME/sign`` (how the Go SDK asks for the latest version) signs with the latest."""
    import base64
    import hashlib

    vault = make_vault()
    h = {"authorization": f"Bearer {_token(kluis, admin)}", "host": f"{vault}.vault.azure.net:{kluis.port}"}
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"x").digest()).rstrip(b"=").decode()
    with httpx.Client(verify=False, base_url=f"https://127.0.0.1:{kluis.port}") as c:
        created = c.post("/keys/gokey/create?api-version=7.6", json={"kty": "EC", "crv": "P-256"}, headers=h).json()
        signed = c.post("/keys/gokey/sign?api-version=7.6", json={"alg": "ES256", "value": digest}, headers=h)
        assert signed.status_code == 200 and signed.json()["kid"] == created["key"]["kid"]
        body = {"alg": "ES256", "digest": digest, "value": signed.json()["value"]}
        assert c.post("/keys/gokey/verify?api-version=7.6", json=body, headers=h).json() == {"value": True}
        assert c.get("/keys/gokey/sign?api-version=7.6", headers=h).status_code == 404  # GET: version "sign"


def test_only_published_api_versions_are_served(kluis: KluisServer, admin: Principal) -> None:
    """Azure's published set, not a pattern: 7.9 or an impossible date is 400 in Azure's words."""
    from azure.keyvault.keys import KeyClient

    from tests.e2e.conftest import credential

    h = {"authorization": f"Bearer {_token(kluis, admin)}"}
    with httpx.Client(verify=_ca(kluis)) as c:
        for version in ("7.9", "2031-02-30", "7.6-preview.9"):
            r = c.get(f"{kluis.url}/keys?api-version={version}", headers=h)
            assert r.status_code == 400 and r.json()["error"]["code"] == "BadParameter", version
            assert f"The specified version ({version}) is not recognized." in r.json()["error"]["message"]
        for version in ("7.4", "7.6-preview.2", "2025-07-01", "2026-04-01"):
            assert c.get(f"{kluis.url}/keys?api-version={version}", headers=h).status_code == 200, version
    client = KeyClient(
        kluis.url,
        credential(kluis, admin),
        api_version="7.4",
        verify_challenge_resource=False,
        connection_verify=kluis.ca,
    )
    assert client.create_ec_key(unique("av")).key_type == "EC"  # an older SDK api-version az uses

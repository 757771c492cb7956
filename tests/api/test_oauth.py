"""kluis as its own token issuer, through the in-process app: client credentials, managed identity, discovery."""

from __future__ import annotations

import base64
import json

import pytest
from starlette.testclient import TestClient

from kluis.api.runtime import Runtime


@pytest.fixture
def admin(runtime: Runtime) -> dict[str, str]:
    creds: dict[str, str] = json.loads(runtime.data_dir.admin.read_text())
    return creds


def _token_form(admin: dict[str, str], **over: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": admin["appId"],
        "client_secret": admin["password"],
        "scope": "https://vault.azure.net/.default",
        **over,
    }


def test_client_credentials_issue_a_token_for_the_scope(
    client: TestClient, runtime: Runtime, admin: dict[str, str]
) -> None:
    r = client.post(f"/{runtime.tenant_id}/oauth2/v2.0/token", data=_token_form(admin))
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and 3500 <= body["expires_in"] <= 3600 and "resource" not in body
    claims = runtime.verifier.verify(body["access_token"], audiences={"https://vault.azure.net"})
    assert claims.object_id == admin["objectId"] and claims.app_id == admin["appId"]


def test_basic_auth_and_the_v1_resource_shape(client: TestClient, admin: dict[str, str]) -> None:
    basic = base64.b64encode(f"{admin['appId']}:{admin['password']}".encode()).decode()
    form = {"grant_type": "client_credentials", "resource": "https://management.azure.com/"}
    r = client.post("/adfs/oauth2/token", data=form, headers={"authorization": f"Basic {basic}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resource"] == "https://management.azure.com" and int(body["expires_on"]) > 0


@pytest.mark.parametrize(
    ("over", "status", "error", "code"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({"client_id": ""}, 400, "invalid_request", 900144),
        ({"scope": ""}, 400, "invalid_scope", 1002012),
        ({"client_assertion": "eyJ..."}, 400, "invalid_client", 700027),
    ],
)
def test_token_errors(
    client: TestClient, admin: dict[str, str], over: dict[str, str], status: int, error: str, code: int
) -> None:
    r = client.post("/organizations/oauth2/v2.0/token", data=_token_form(admin, **over))
    assert r.status_code == status and r.json()["error"] == error
    assert r.json()["error_codes"] == [code] and r.json()["error_description"].startswith(f"AADSTS{code}:")


def test_token_endpoint_errors_are_oauth_shaped(client: TestClient, runtime: Runtime) -> None:
    r = client.post(f"/{runtime.tenant_id}/oauth2/v2.0/token", data={"grant_type": "password"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = client.post(
        "/adfs/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "nope", "client_secret": "x", "scope": "s"},
    )
    assert r.json()["error"] == "unauthorized_client"
    r = client.post("/not-a-tenant/oauth2/v2.0/token", data={"grant_type": "client_credentials"})
    assert r.status_code == 400 and "AADSTS90002" in r.json()["error_description"]


def test_openid_configuration_has_what_msal_needs(client: TestClient, runtime: Runtime) -> None:
    for path in (
        f"/{runtime.tenant_id}/v2.0/.well-known/openid-configuration",
        "/adfs/.well-known/openid-configuration",
    ):
        doc = client.get(path).json()
        assert {"authorization_endpoint", "token_endpoint", "issuer", "jwks_uri"} <= set(doc)
        assert doc["token_endpoint"].startswith("https://localhost:8443/")
    keys = client.get(f"/{runtime.tenant_id}/discovery/v2.0/keys").json()["keys"]
    assert keys[0]["kty"] == "EC"


def _msi(client: TestClient, header: str, **query: str) -> tuple[int, dict[str, str]]:
    params = {"api-version": "2019-08-01", "resource": "https://vault.azure.net", **query}
    r = client.get("/msi/token", params=params, headers={"x-identity-header": header})
    return r.status_code, r.json()


def test_managed_identity(client: TestClient, runtime: Runtime, admin: dict[str, str]) -> None:
    header = f"{admin['appId']}:{admin['password']}"
    status, body = _msi(client, header)
    assert status == 200 and body["client_id"] == admin["appId"] and body["resource"] == "https://vault.azure.net"
    assert runtime.verifier.verify(body["access_token"], audiences={"https://vault.azure.net"}).app_id == admin["appId"]
    assert _msi(client, header, client_id=admin["objectId"])[0] == 200
    assert _msi(client, header, client_id="someone-else")[0] == 400
    assert _msi(client, header, **{"api-version": "2018-02-01"})[0] == 400
    assert _msi(client, header, resource="")[0] == 400
    assert _msi(client, f"{admin['appId']}:wrong")[0] == 401
    assert _msi(client, "")[0] == 401


def test_instance_discovery_and_signing_keys(client: TestClient, runtime: Runtime) -> None:
    doc = client.get("/common/discovery/instance").json()
    assert doc["tenant_discovery_endpoint"] == (
        f"https://localhost:8443/{runtime.tenant_id}/v2.0/.well-known/openid-configuration"
    )
    assert "login.microsoftonline.com" in doc["metadata"][0]["aliases"]
    keys = client.get("/adfs/discovery/keys").json()["keys"]
    assert [k["kid"] for k in keys] == [runtime.key_id]

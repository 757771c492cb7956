"""Azure's contract, exactly: vault SKUs, key_ops per key type, synthesized defaults, identifier casing,
Key Vault's response headers and Entra's OpenID configuration, checked against a running kluis with the
official SDK (and httpx where the SDK hides the wire). The evidence for each rule sits beside the rule in
the source (kluis.domain.keys.service, kluis.api.app, kluis.api.oauth).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.keyvault.keys import JsonWebKey, KeyClient, KeyRotationLifetimeAction, KeyRotationPolicy
from azure.keyvault.keys.crypto import SignatureAlgorithm

from tests.e2e.conftest import Principal, unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow

API = "api-version=7.6"


def _error(exc: HttpResponseError) -> dict[str, Any]:
    assert exc.response is not None
    body: dict[str, Any] = exc.response.json()["error"]
    return body


@pytest.fixture(scope="module")
def standard(make_vault: Callable[..., str]) -> str:
    return make_vault("--sku", "standard")


@pytest.fixture(scope="module")
def standard_client(admin: Principal, standard: str, key_client_for: Callable[..., KeyClient]) -> Iterator[KeyClient]:
    with key_client_for(admin, standard) as c:
        yield c


# -- 4. SKUs ---------------------------------------------------------------------------------------
def test_keyvault_create_sku(kluis: KluisServer, standard: str, vault: str) -> None:
    plain = unique("v")  # az's default SKU is standard
    assert kluis.cli_json("keyvault", "create", "-n", plain, "-g", "e2e-rg")["properties"]["sku"]["name"] == "standard"
    assert kluis.cli_json("keyvault", "show", "-n", standard)["properties"]["sku"]["name"] == "standard"
    assert kluis.cli_json("keyvault", "show", "-n", vault)["properties"]["sku"]["name"] == "premium"
    assert kluis.cli_json("keyvault", "show", "-n", "default")["properties"]["sku"]["name"] == "premium"
    bad = kluis.cli("keyvault", "create", "-n", unique("v"), "-g", "e2e-rg", "--sku", "gold", check=False)
    assert bad.returncode != 0 and "standard or premium" in bad.stderr + bad.stdout


def test_standard_vault_refuses_hsm_key_types(standard_client: KeyClient) -> None:
    for create in (
        lambda n: standard_client.create_rsa_key(n, hardware_protected=True),
        lambda n: standard_client.create_ec_key(n, hardware_protected=True),
        lambda n: standard_client.import_key(
            n, JsonWebKey(kty="EC", crv="P-256", **_ec_private()), hardware_protected=True
        ),
    ):
        with pytest.raises(HttpResponseError) as e:
            create(unique())
        assert e.value.status_code == 400
        assert _error(e.value) == {
            "code": "BadParameter",
            "message": "Hardware key operation not allowed on standard vault",
        }
    assert standard_client.create_rsa_key(unique()).key_type == "RSA"  # software keys are fine
    assert standard_client.create_ec_key(unique()).key_type == "EC"


def test_no_vault_takes_software_oct_keys(standard_client: KeyClient, client: KeyClient) -> None:
    secret = os.urandom(32)
    for c in (standard_client, client):
        for create in (
            lambda n, c=c: c.create_oct_key(n),
            lambda n, c=c: c.import_key(n, JsonWebKey(kty="oct", k=secret)),
        ):
            with pytest.raises(HttpResponseError) as e:
                create(unique())
            assert e.value.status_code == 400
            err = _error(e.value)
            assert err["code"] == "BadParameter" and err["message"] == "Invalid kty value: oct"
            assert err["innererror"] == {"code": "KeyTypeNotSupported"}
    with pytest.raises(HttpResponseError) as e:  # symmetric keys need a premium vault
        standard_client.create_oct_key(unique(), hardware_protected=True)
    assert _error(e.value)["innererror"] == {"code": "KeyTypeNotSupported"}
    assert client.create_oct_key(unique(), hardware_protected=True).key_type == "oct-HSM"  # premium


def _ec_private() -> dict[str, bytes]:
    from cryptography.hazmat.primitives.asymmetric import ec

    numbers = ec.generate_private_key(ec.SECP256R1()).private_numbers()
    point = numbers.public_numbers
    return {
        "x": point.x.to_bytes(32, "big"),
        "y": point.y.to_bytes(32, "big"),
        "d": numbers.private_value.to_bytes(32, "big"),
    }


# -- 5. key_ops per key type -----------------------------------------------------------------------
EC_OPS = 'Supported values are "sign", "verify".'


def _bad_ops(fn: Callable[[], Any]) -> str:
    with pytest.raises(HttpResponseError) as e:
        fn()
    assert e.value.status_code == 400
    err = _error(e.value)
    assert err["code"] == "BadParameter"
    return str(err["message"])


def test_key_ops_are_checked_against_the_key_type(client: KeyClient) -> None:
    name = unique()
    message = _bad_ops(lambda: client.create_ec_key(name, key_operations=["wrapKey", "unwrapKey"]))
    assert message == f'Unsupported key operation(s): "wrapKey", "unwrapKey". {EC_OPS}'
    key = client.create_ec_key(name)
    assert key.key_operations == ["sign", "verify"]
    message = _bad_ops(lambda: client.update_key_properties(name, key_operations=["encrypt", "decrypt"]))
    assert message == f'Unsupported key operation(s): "encrypt", "decrypt". {EC_OPS}'
    assert client.get_key(name).key_operations == ["sign", "verify"]  # unchanged
    # import: the key_ops of the request body, and those inside the JWK
    jwk = JsonWebKey(kty="EC", crv="P-256", key_ops=["encrypt"], **_ec_private())
    assert _bad_ops(lambda: client.import_key(unique(), jwk)).startswith('Unsupported key operation(s): "encrypt".')
    jwk = JsonWebKey(kty="EC", crv="P-256", key_ops=["sign", "decrypt"], **_ec_private())
    message = _bad_ops(lambda: client.import_key(unique(), jwk))
    assert message == f'Unsupported key operation(s): "decrypt". {EC_OPS}'
    # import/export are no key type's operations (Azure's EC list leaves them out)
    message = _bad_ops(lambda: client.create_rsa_key(unique(), key_operations=["encrypt", "export"]))
    assert message == (
        'Unsupported key operation(s): "export". Supported values are "encrypt", "decrypt", "sign", "verify", '
        '"wrapKey", "unwrapKey".'
    )
    rsa = client.create_rsa_key(unique(), key_operations=["sign", "verify", "wrapKey"])
    assert rsa.key_operations == ["sign", "verify", "wrapKey"]


def test_oct_hsm_keys_sign_with_hmac(client: KeyClient) -> None:
    secret = os.urandom(32)
    name = unique()
    key = client.import_key(name, JsonWebKey(kty="oct-HSM", k=secret, key_ops=["sign", "verify", "wrapKey"]))
    assert key.key_operations == ["sign", "verify", "wrapKey"]
    data = b"hmac me"
    raw = client.send_request(
        HttpRequest(
            "POST",
            f"/keys/{name}/{key.properties.version}/sign?{API}",
            json={"alg": "HS256", "value": base64.urlsafe_b64encode(data).decode().rstrip("=")},
        )
    )
    assert raw.status_code == 200
    mac = base64.urlsafe_b64decode(raw.json()["value"] + "==")
    import hmac as std_hmac

    assert mac == std_hmac.new(secret, data, hashlib.sha256).digest()
    assert SignatureAlgorithm.hs256 == "HS256"  # the SDK names the algorithm the spec lists


# -- 6. a synthesized default is no stored object -------------------------------------------------
def test_default_rotation_policy_has_no_id(client: KeyClient, vault: str) -> None:
    name = unique()
    client.create_ec_key(name)
    default = client.get_key_rotation_policy(name)
    assert default.id is None and default.created_on is None and default.updated_on is None
    raw = client.send_request(HttpRequest("GET", f"/keys/{name}/rotationpolicy?{API}")).json()
    assert "id" not in raw and not raw.get("attributes")
    assert raw["lifetimeActions"] == [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}]
    stored = client.update_key_rotation_policy(
        name, KeyRotationPolicy(lifetime_actions=[KeyRotationLifetimeAction("Notify", time_before_expiry="P9D")])
    )
    assert stored.id == f"https://{vault}.vault.azure.net/keys/{name}/rotationpolicy"
    assert stored.created_on is not None


# -- 7. identifiers use the stored name's casing ---------------------------------------------------
def test_ids_use_the_stored_casing(client: KeyClient, vault: str) -> None:
    stored = f"Mixed-{unique()}-Case"
    asked = stored.lower()
    base = f"https://{vault}.vault.azure.net"
    first = client.create_ec_key(stored)
    second = client.create_ec_key(asked)  # a new version of the same key
    assert second.name == stored and second.id == f"{base}/keys/{stored}/{second.properties.version}"
    assert client.get_key(asked).id == second.id
    assert client.get_key(asked, first.properties.version).id == first.id
    assert client.update_key_properties(asked, tags={"a": "b"}).id == second.id
    policy = client.update_key_rotation_policy(
        asked, KeyRotationPolicy(lifetime_actions=[KeyRotationLifetimeAction("Notify", time_before_expiry="P9D")])
    )
    assert policy.id == f"{base}/keys/{stored}/rotationpolicy"
    assert client.get_key_rotation_policy(asked).id == policy.id
    crypto = client.get_cryptography_client(asked)
    signed = crypto.sign(SignatureAlgorithm.es256, hashlib.sha256(b"x").digest())
    assert signed.key_id == second.id
    page = client.send_request(HttpRequest("GET", f"/keys/{asked}/versions?maxresults=1&{API}")).json()
    assert page["value"][0]["kid"].startswith(f"{base}/keys/{stored}/")
    assert page["nextLink"].startswith(f"{base}/keys/{stored}/versions?")
    deleted = client.begin_delete_key(asked).result()
    assert deleted.recovery_id == f"{base}/deletedkeys/{stored}"
    assert deleted.id == second.id
    assert client.get_deleted_key(asked).recovery_id == deleted.recovery_id
    listed = [d for d in client.list_deleted_keys() if d.name.lower() == asked]
    assert [d.recovery_id for d in listed] == [deleted.recovery_id]
    assert client.begin_recover_deleted_key(asked).result().id == second.id


# -- 9. Key Vault's response headers ---------------------------------------------------------------
VERSION = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def _kv_headers(headers: Any) -> dict[str, str]:
    return {k: headers[k] for k in ("x-ms-keyvault-region", "x-ms-keyvault-service-version") if k in headers} | {
        "network": headers.get("x-ms-keyvault-network-info", "")
    }


def test_key_vault_response_headers(
    kluis: KluisServer,
    admin: Principal,
    make_vault: Callable[..., str],
    key_client_for: Callable[..., KeyClient],
) -> None:
    ca = ssl.create_default_context(cafile=kluis.ca)
    # the 401 challenge, before any vault is resolved: the server's region
    challenge = httpx.get(f"{kluis.url}/keys?{API}", verify=ca)
    assert challenge.status_code == 401
    got = _kv_headers(challenge.headers)
    assert got["x-ms-keyvault-region"] == "local" and VERSION.match(got["x-ms-keyvault-service-version"])
    assert got["network"] == "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;"
    # a vault's answers carry its location, errors included
    vault = make_vault("--location", "westeurope")
    with key_client_for(admin, vault) as c:
        ok = c.send_request(HttpRequest("GET", f"/keys?{API}"))
        missing = c.send_request(HttpRequest("GET", f"/keys/{unique()}?{API}"))
    for resp in (ok, missing):
        got = _kv_headers(resp.headers)
        assert got["x-ms-keyvault-region"] == "westeurope"
        assert VERSION.match(got["x-ms-keyvault-service-version"])
        assert got["network"] == "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;"
    assert (ok.status_code, missing.status_code) == (200, 404)
    # not on the identity or management endpoints (those are Entra's and ARM's, not Key Vault's)
    oidc = httpx.get(f"{kluis.url}/organizations/v2.0/.well-known/openid-configuration", verify=ca)
    assert "x-ms-keyvault-region" not in oidc.headers and "x-ms-request-id" in oidc.headers


# -- 10. OpenID configuration names the authority that was asked for ------------------------------
def test_openid_configuration_names_the_authority_asked_for(kluis: KluisServer, admin: Principal) -> None:
    ca = ssl.create_default_context(cafile=kluis.ca)
    tenant = admin.tenant
    for asked, issuer in (
        ("organizations", f"{kluis.url}/{{tenantid}}/v2.0"),
        ("common", f"{kluis.url}/{{tenantid}}/v2.0"),
        (tenant, f"{kluis.url}/{tenant}/v2.0"),
    ):
        doc = httpx.get(f"{kluis.url}/{asked}/v2.0/.well-known/openid-configuration", verify=ca).json()
        root = f"{kluis.url}/{asked}"
        assert doc["issuer"] == issuer
        assert doc["token_endpoint"] == f"{root}/oauth2/v2.0/token"
        assert doc["authorization_endpoint"] == f"{root}/oauth2/v2.0/authorize"
        assert doc["jwks_uri"] == f"{root}/discovery/v2.0/keys"
        assert doc["grant_types_supported"] == ["client_credentials"]
    v1 = httpx.get(f"{kluis.url}/{tenant}/.well-known/openid-configuration", verify=ca).json()
    assert v1["issuer"] == f"https://sts.windows.net/{tenant}/"
    assert v1["token_endpoint"] == f"{kluis.url}/{tenant}/oauth2/token"
    # every grant the document lists is accepted; any other is refused
    token = httpx.post(
        f"{kluis.url}/organizations/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": admin.app_id,
            "client_secret": admin.password,
            "scope": "https://vault.azure.net/.default",
        },
        verify=ca,
    )
    assert token.status_code == 200
    claims = json.loads(base64.urlsafe_b64decode(token.json()["access_token"].split(".")[1] + "=="))
    assert claims["iss"] == f"https://sts.windows.net/{tenant}/"  # vault tokens keep the v1 issuer
    refused = httpx.post(
        f"{kluis.url}/organizations/oauth2/v2.0/token",
        data={"grant_type": "password", "client_id": admin.app_id, "username": "u", "password": "p"},
        verify=ca,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "unsupported_grant_type"

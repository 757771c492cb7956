"""The management API (/_kluis/v1) through the in-process app, as the administrator and as anyone else."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from kluis.api.runtime import Runtime
from tests.api.conftest import MANAGEMENT_AUDIENCE, auth

V1 = "/_kluis/v1"


class Admin:
    def __init__(self, client: TestClient, runtime: Runtime) -> None:
        self.client = client
        self.headers = auth(runtime, MANAGEMENT_AUDIENCE)

    def __call__(self, method: str, path: str, body: Any = None, status: int = 200, **params: Any) -> Any:
        r = self.client.request(method, V1 + path, json=body, params=params or None, headers=self.headers)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        return r.json() if r.content else None


@pytest.fixture
def admin(client: TestClient, runtime: Runtime) -> Admin:
    return Admin(client, runtime)


def test_health_needs_no_token(client: TestClient, runtime: Runtime) -> None:
    assert client.get("/_kluis/health").json() == {"status": "ok", "tenant": runtime.tenant_id}


def test_groups(admin: Admin) -> None:
    made = admin("PUT", "/groups/rg1", {"location": "westeurope"})
    assert made["name"] == "rg1" and made["location"] == "westeurope"
    assert made["properties"] == {"provisioningState": "Succeeded"}
    assert admin("GET", "/groups/rg1")["location"] == "westeurope"
    assert {g["name"] for g in admin("GET", "/groups")["value"]} == {"kluis", "rg1"}
    admin("PUT", "/groups/rg2")  # no body: location "local"
    assert admin("GET", "/groups/rg2")["location"] == "local"
    admin("PUT", "/vaults/inrg1", {"group": "rg1"})
    assert admin("DELETE", "/groups/rg1") == {"deletedVaults": ["inrg1"]}
    admin("GET", "/groups/rg1", status=404)


def test_vaults_and_policies(admin: Admin, runtime: Runtime) -> None:
    vault = admin("PUT", "/vaults/vault1", {"group": "kluis", "retentionDays": 7, "purgeProtection": True})
    props = vault["properties"]
    assert props["vaultUri"] == "https://vault1.vault.azure.net/" and props["tenantId"] == runtime.tenant_id
    assert props["softDeleteRetentionInDays"] == 7 and props["enablePurgeProtection"] is True
    assert [p["objectId"] for p in props["accessPolicies"]] == [runtime.admin_object_id()]  # the creator
    for bad in ({"group": "kluis", "retentionDays": "7"}, {"group": "kluis", "retentionDays": True}):
        admin("PUT", "/vaults/vault2", bad, status=400)
    sp = admin("POST", "/principals", {"displayName": "app1"}, status=201)
    policy = admin("PUT", f"/vaults/vault1/policies/{sp['appId']}", {"keys": ["get", "list"]})
    assert policy["objectId"] == sp["objectId"] and policy["permissions"]["keys"] == ["get", "list"]
    admin("PUT", f"/vaults/vault1/policies/{sp['appId']}", {"keys": "get"}, status=400)
    assert len(admin("GET", "/vaults/vault1")["properties"]["accessPolicies"]) == 2
    admin("DELETE", f"/vaults/vault1/policies/{sp['objectId']}", status=204)
    assert len(admin("GET", "/vaults/vault1")["properties"]["accessPolicies"]) == 1
    assert {v["name"] for v in admin("GET", "/vaults", group="kluis")["value"]} == {"default", "vault1"}
    admin("DELETE", "/vaults/vault1", status=204)
    admin("GET", "/vaults/vault1", status=404)


def test_principals_are_reused_by_name_with_a_new_secret(admin: Admin, runtime: Runtime) -> None:
    first = admin("POST", "/principals", {"displayName": "app"}, status=201)
    assert first["tenant"] == runtime.tenant_id and first["reused"] is False and first["password"]
    again = admin("POST", "/principals", {"displayName": "app"}, status=200)
    assert again["appId"] == first["appId"] and again["reused"] is True and again["password"] != first["password"]
    shown = admin("GET", f"/principals/{first['appId']}")
    assert shown == {
        "appId": first["appId"], "id": first["objectId"], "displayName": "app",
        "appOwnerOrganizationId": runtime.tenant_id, "isAdmin": False,
    }  # fmt: skip
    assert "password" not in str(admin("GET", "/principals")["value"])
    admin("POST", "/principals", {"displayName": "  "}, status=400)
    admin("DELETE", f"/principals/{first['objectId']}", status=204)
    admin("GET", f"/principals/{first['appId']}", status=404)


def test_time(admin: Admin, runtime: Runtime) -> None:
    before = admin("GET", "/time")
    assert before["offsetSeconds"] == 0
    moved = admin("PUT", "/time", {"offsetSeconds": 600})
    assert moved["offsetSeconds"] == 600 and moved["now"] >= before["now"] + 600
    assert runtime.clock.now() >= before["now"] + 600  # within the token lifetime
    for bad in ({"offsetSeconds": "1"}, {"offsetSeconds": True}, {}):
        admin("PUT", "/time", bad, status=400)


def test_attestation_authorities(admin: Admin) -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    listed = admin("PUT", "/attestation", {"authority": "https://maa.example/", "keys": [pem]})
    assert listed == {"value": [{"authority": "https://maa.example", "keys": [pem]}]}
    admin("PUT", "/attestation", {"authority": "http://insecure", "keys": [pem]}, status=400)
    admin("PUT", "/attestation", {"authority": "https://x", "keys": ["not a pem"]}, status=400)
    admin("DELETE", "/attestation", status=204, authority="https://maa.example")
    assert admin("GET", "/attestation") == {"value": []}
    admin("DELETE", "/attestation", status=404, authority="https://maa.example")


def test_housekeeping(admin: Admin) -> None:
    assert admin("POST", "/housekeeping") == {"purged": 0, "rotated": 0, "failed": 0, "auditPruned": 0}


def test_bodies_must_be_json_objects(admin: Admin, client: TestClient) -> None:
    for raw in (b"{nope", b"[1]"):
        r = client.put(f"{V1}/groups/g", content=raw, headers=admin.headers)
        assert r.status_code == 400 and r.json()["error"]["code"] == "BadParameter"


def test_only_the_administrator(client: TestClient, runtime: Runtime, admin: Admin) -> None:
    sp = admin("POST", "/principals", {"displayName": "someone"}, status=201)
    r = client.get(f"{V1}/groups", headers=auth(runtime, MANAGEMENT_AUDIENCE, object_id=sp["objectId"]))
    assert r.status_code == 403 and r.json()["error"]["innererror"] == {"code": "AccessDenied"}


def test_liveness_and_readiness_need_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ok", "checks": {"database": "ok", "kek": "ok"}}


def test_readiness_notes_a_kek_on_disk_that_is_not_the_databases_but_stays_ready(
    client: TestClient, runtime: Runtime
) -> None:
    # the node holds its data keys and serves (a readiness probe must not take every node out after a
    # rotation); the detail says the next start needs the database's KEK
    runtime.data_dir.kek.write_bytes(b"\x01" * 32)
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "kek": "ok"}
    assert "is not the database's key-encryption key" in r.json()["details"]["kek"]
    runtime.data_dir.kek.unlink()  # an unreadable source still fails readiness
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["kek"].startswith("unusable: ")


def test_audit_listing_and_verify(admin: Admin, client: TestClient, runtime: Runtime) -> None:
    admin("PUT", "/groups/rg-audit", {"location": "local"})
    admin("GET", "/groups/rg-audit")
    page = admin("GET", "/audit", operation="CreateGroup")
    (record,) = page["value"]
    assert record["name"] == "rg-audit" and record["status"] == 200 and record["clientAddress"] == "testclient"
    assert record["callerObjectId"] == runtime.admin_object_id() and record["requestId"]
    assert record["time"].endswith("+00:00") and page["next"] is None
    everything = admin("GET", "/audit", limit=1)
    assert len(everything["value"]) == 1 and everything["next"] == everything["value"][0]["id"]
    report = admin("POST", "/audit/verify")
    assert report["ok"] and report["firstBroken"] is None and report["records"] >= 2
    bad = client.get(V1 + "/audit", params={"status": "abc"}, headers=admin.headers)
    assert bad.status_code == 400


def test_audit_is_for_the_administrator_only(client: TestClient) -> None:
    assert client.get(V1 + "/audit").status_code == 401


def test_bodies_that_are_not_strict_json_or_have_wrong_types_are_400(
    client: TestClient, runtime: Runtime, admin: Admin
) -> None:
    """A tester's finds: 60,000 ``[`` (RecursionError in the standard parser) and ``NaN`` (stored as
    NULL, an IntegrityError) answered 500; a number for a name was stored as given."""
    headers = {**auth(runtime, MANAGEMENT_AUDIENCE), "content-type": "application/json"}
    for path, raw in (("/time", b"[" * 60_000), ("/groups/g1", b"[" * 60_000), ("/groups/g1", b'{"location":NaN}'),
                      ("/time", b'{"offsetSeconds":Infinity}'), ("/groups/g1", b'{"location":"\xff"}')):  # fmt: skip
        r = client.put(V1 + path, content=raw, headers=headers)
        assert r.status_code == 400, (path, raw[:20], r.status_code, r.text)
        assert r.json()["error"] == {"code": "BadParameter", "message": "The request body is not valid JSON."}
    for path, body, field in (
        ("/groups/g1", {"location": 5}, "location"),
        ("/vaults/v1", {"group": ["kluis"]}, "group"),
        ("/vaults/v1", {"sku": 1}, "sku"),
        ("/vaults/v1", {"purgeProtection": "yes"}, "purgeProtection"),
        ("/principals", {"displayName": [1]}, "displayName"),
    ):
        method = "POST" if path == "/principals" else "PUT"
        assert field in admin(method, path, body, status=400)["error"]["message"]
    admin("GET", "/groups/g1", status=404)  # nothing was made
    admin("GET", "/vaults/v1", status=404)
    assert admin("PUT", "/groups/g1", {"location": None})["location"] == "local"  # null: the default


def test_text_fields_keep_their_rules_and_null_means_the_default(admin: Admin) -> None:
    """A tester's finds: NUL, "\\n", 5,000 characters and " " were stored as a location, group, sku,
    display name or authority; ``{"keys": [""]}`` granted nothing without a word; ``retentionDays: null``
    was a 400 where every other null means the default."""
    sp = admin("POST", "/principals", {"displayName": "app1"}, status=201)
    principals = admin("GET", "/principals")["value"]
    bad_values = ("g\u0000", "west\neurope", "westeurope\n", "x" * 5000, " ", "", "\u3000", "a\u2028b")
    for field, path, method, base in (
        ("location", "/groups/g1", "PUT", {}),
        ("location", "/vaults/vault1", "PUT", {"group": "kluis"}),
        ("group", "/vaults/vault1", "PUT", {}),
        ("sku", "/vaults/vault1", "PUT", {"group": "kluis"}),
        ("displayName", "/principals", "POST", {}),
        ("authority", "/attestation", "PUT", {"keys": ["-"]}),
    ):
        for value in bad_values:
            message = admin(method, path, {**base, field: value}, status=400)["error"]["message"]
            assert f"'{field}' must be" in message, (field, value, message)
    admin("PUT", "/groups/g1", {"location": "west-europe!"}, status=400)  # not a region's character
    admin("GET", "/groups/g1", status=404)  # nothing was stored
    admin("GET", "/vaults/vault1", status=404)
    assert admin("GET", "/principals")["value"] == principals
    assert admin("GET", "/attestation") == {"value": []}
    assert admin("PUT", "/groups/g2", {"location": " West Europe "})["location"] == "West Europe"
    assert admin("PUT", "/groups/g3", {"location": "(Europe) West_Europe-2"})["location"] == "(Europe) West_Europe-2"
    vault = admin("PUT", "/vaults/vault2", {"group": "g2", "retentionDays": None, "location": None, "sku": None})
    assert vault["location"] == "West Europe" and vault["properties"]["softDeleteRetentionInDays"] == 90
    assert vault["properties"]["sku"]["name"] == "standard"
    named = admin("POST", "/principals", {"displayName": "  Payroll app (prod) é " + "x" * 200}, status=201)
    assert named["displayName"] == "Payroll app (prod) é " + "x" * 200
    admin("POST", "/principals", {"displayName": "y" * 257}, status=400)
    for kind, grant in (("keys", [""]), ("secrets", ["get", " "]), ("certificates", ["teleport"])):
        message = admin("PUT", f"/vaults/vault2/policies/{sp['appId']}", {kind: grant}, status=400)["error"]["message"]
        assert f"Invalid {kind} permission '{grant[-1]}'" in message
    assert admin("PUT", f"/vaults/vault2/policies/{sp['appId']}", {"keys": ["get"]})["permissions"]["keys"] == ["get"]

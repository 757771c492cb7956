"""The secrets data plane through the app (no server process): wire shapes, statuses, Azure's
error bodies and the authorization point's secret permissions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kluis.api.app import KluisApp
from kluis.api.runtime import Runtime
from kluis.config import DataDir, ServerSettings
from kluis.identity.tokens import Principal
from kluis.store import PrincipalRecord

V = "api-version=2026-04-01"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(DataDir(tmp_path / "d"), ServerSettings(key_pool=0), bootstrap=True)
    yield rt
    rt.close()


def _headers(rt: Runtime, oid: str | None = None) -> dict[str, str]:
    oid = oid or rt.admin_object_id()
    with rt.store.read() as tx:
        p = tx.get_principal(oid)
    assert p is not None
    token = rt.issuer.issue(Principal(p.object_id, p.app_id, rt.tenant_id), audience="https://vault.azure.net",
                            now=rt.clock.now())[0]  # fmt: skip
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return TestClient(KluisApp(runtime), base_url="https://localhost:8443", headers=_headers(runtime))


def _error(r: Any) -> tuple[int, str, str, str | None]:
    err = r.json()["error"]
    return r.status_code, err["code"], err["message"], (err.get("innererror") or {}).get("code")


def test_set_get_shapes(client: TestClient) -> None:
    r = client.put(f"/secrets/conn?{V}", json={"value": "Server=db;Password=p", "contentType": "text/plain",
                                               "tags": {"env": "dev"}, "attributes": {"exp": 4102444800}})  # fmt: skip
    assert r.status_code == 200
    body = r.json()
    assert body["value"] == "Server=db;Password=p" and body["contentType"] == "text/plain"
    assert body["id"].startswith("https://localhost:8443/secrets/conn/") and len(body["id"].rsplit("/", 1)[1]) == 32
    assert body["tags"] == {"env": "dev"} and "kid" not in body and "managed" not in body
    attrs = body["attributes"]
    assert set(attrs) == {"enabled", "exp", "created", "updated", "recoveryLevel", "recoverableDays"}
    assert attrs["exp"] == 4102444800 and attrs["recoveryLevel"] == "Recoverable+Purgeable"
    assert attrs["recoverableDays"] == 90
    assert client.get(f"/secrets/conn/?{V}").json() == body
    assert client.get(f"/secrets/CONN/{body['id'].rsplit('/', 1)[1]}?{V}").json() == body


def test_list_answers_carry_no_values(client: TestClient) -> None:
    for i in range(3):
        client.put(f"/secrets/s{i}?{V}", json={"value": f"v{i}", "contentType": "ct"})
    client.put(f"/secrets/s0?{V}", json={"value": "again"})
    page = client.get(f"/secrets?{V}&maxresults=2").json()
    assert [i["id"] for i in page["value"]] == [
        "https://localhost:8443/secrets/s0",
        "https://localhost:8443/secrets/s1",
    ]
    assert all("value" not in i for i in page["value"]) and page["value"][1]["contentType"] == "ct"
    assert page["nextLink"].startswith("https://localhost:8443/secrets?")
    rest = client.get(page["nextLink"].removeprefix("https://localhost:8443")).json()
    assert [i["id"].rsplit("/", 1)[1] for i in rest["value"]] == ["s2"] and rest["nextLink"] is None
    versions = client.get(f"/secrets/s0/versions?{V}").json()["value"]
    assert len(versions) == 2 and all("value" not in v for v in versions)
    assert client.get(f"/secrets/never-was/versions?{V}").json() == {"value": [], "nextLink": None}
    for bad in ("0", "26"):
        assert _error(client.get(f"/secrets?{V}&maxresults={bad}"))[:2] == (400, "BadParameter")


def test_value_rules(client: TestClient) -> None:
    assert client.put(f"/secrets/empty?{V}", json={"value": ""}).json()["value"] == ""
    text = 'ünïcödé ☃ 🙂 "quoted" \\ \u0000'
    assert client.put(f"/secrets/u?{V}", json={"value": text}).json()["value"] == text
    assert client.get(f"/secrets/u?{V}").json()["value"] == text
    assert client.put(f"/secrets/max?{V}", json={"value": "x" * 25600}).status_code == 200
    assert _error(client.put(f"/secrets/big?{V}", json={"value": "x" * 25601})) == (
        400, "BadParameter", "Secret is beyond the maximum permitted length of 25600 characters.", "SecretTooLarge",
    )  # fmt: skip
    for body in ({}, {"value": None}, {"value": 5}, {"value": "v", "contentType": 3}, {"value": "v", "tags": []}):
        assert _error(client.put(f"/secrets/x?{V}", json=body))[:2] == (400, "BadParameter"), body


def test_names_and_tags(client: TestClient) -> None:
    code, _, message, _ = _error(client.put(f"/secrets/bad_name?{V}", json={"value": "v"}))
    assert (code, message) == (400, "The request URI contains an invalid name: bad_name")
    assert client.put(f"/secrets/{'a' * 127}?{V}", json={"value": "v"}).status_code == 200
    assert client.put(f"/secrets/{'a' * 128}?{V}", json={"value": "v"}).status_code == 400
    fifteen = {f"t{i}": "v" for i in range(15)}
    assert client.put(f"/secrets/tags?{V}", json={"value": "v", "tags": fifteen}).status_code == 200
    assert client.put(f"/secrets/tags?{V}", json={"value": "v", "tags": {**fifteen, "x": "y"}}).status_code == 400
    long_ok = {"n" * 512: "v" * 512}  # secrets allow 512-character tag names and values (keys: 256)
    assert client.put(f"/secrets/tags?{V}", json={"value": "v", "tags": long_ok}).status_code == 200
    assert client.put(f"/secrets/tags?{V}", json={"value": "v", "tags": {"n" * 513: "v"}}).status_code == 400
    assert client.put(f"/secrets/tags?{V}", json={"value": "v", "tags": {"n": "v" * 513}}).status_code == 400


def test_disabled_and_time_window(client: TestClient) -> None:
    made = client.put(f"/secrets/off?{V}", json={"value": "v", "attributes": {"enabled": False}}).json()
    assert "value" in made  # set answers the value it was given
    assert _error(client.get(f"/secrets/off?{V}")) == (
        403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled",
    )  # fmt: skip
    listed = client.get(f"/secrets?{V}").json()["value"]
    assert listed[0]["attributes"]["enabled"] is False
    client.put(f"/secrets/future?{V}", json={"value": "f", "attributes": {"nbf": 4102444800}})
    client.put(f"/secrets/past?{V}", json={"value": "p", "attributes": {"exp": 1000}})
    assert client.get(f"/secrets/future?{V}").json()["value"] == "f"
    assert client.get(f"/secrets/past?{V}").json()["value"] == "p"


def test_update_is_patch_and_answers_no_value(client: TestClient) -> None:
    made = client.put(f"/secrets/p?{V}", json={"value": "v", "contentType": "a", "tags": {"t": "1"}}).json()
    r = client.patch(f"/secrets/p/?{V}", json={"attributes": {"enabled": False}})
    assert r.status_code == 200
    body = r.json()
    assert "value" not in body and body["contentType"] == "a" and body["tags"] == {"t": "1"}
    assert body["attributes"]["enabled"] is False and body["id"] == made["id"]
    body = client.patch(f"/secrets/p/{made['id'].rsplit('/', 1)[1]}?{V}", json={"contentType": "b"}).json()
    assert body["contentType"] == "b" and body["attributes"]["enabled"] is False
    assert _error(client.patch(f"/secrets/none?{V}", json={}))[:2] == (404, "SecretNotFound")


def test_delete_recover_purge_backup_restore(client: TestClient) -> None:
    made = client.put(f"/secrets/d?{V}", json={"value": "keep"}).json()
    deleted = client.delete(f"/secrets/d?{V}").json()
    assert deleted["recoveryId"] == "https://localhost:8443/deletedsecrets/d" and "value" not in deleted
    assert deleted["scheduledPurgeDate"] - deleted["deletedDate"] == 90 * 86400 and deleted["id"] == made["id"]
    code, inner_code, message, inner = _error(client.put(f"/secrets/d?{V}", json={"value": "x"}))
    assert (code, inner_code, inner) == (409, "Conflict", "ObjectIsDeletedButRecoverable")
    assert message == (
        "Secret d is currently in a deleted but recoverable state, and its name cannot be reused; in this state, "
        "the secret can only be recovered or purged."
    )
    assert _error(client.get(f"/secrets/d?{V}"))[:2] == (404, "SecretNotFound")
    items = client.get(f"/deletedsecrets?{V}").json()["value"]
    assert [i["recoveryId"] for i in items] == ["https://localhost:8443/deletedsecrets/d"]
    assert client.get(f"/deletedsecrets/d?{V}").json()["id"] == made["id"]
    recovered = client.post(f"/deletedsecrets/d/recover?{V}").json()
    assert recovered["id"] == made["id"] and "value" not in recovered
    assert client.get(f"/secrets/d?{V}").json()["value"] == "keep"
    backup = client.post(f"/secrets/d/backup?{V}").json()["value"]
    assert _error(client.post(f"/secrets/restore?{V}", json={"value": backup}))[:2] == (409, "Conflict")
    client.delete(f"/secrets/d?{V}")
    r = client.delete(f"/deletedsecrets/d?{V}")
    assert r.status_code == 204 and r.content == b""
    assert _error(client.get(f"/deletedsecrets/d?{V}")) == (404, "SecretNotFound", "Deleted Secret not found: d", None)
    restored = client.post(f"/secrets/restore?{V}", json={"value": backup}).json()
    assert restored["id"] == made["id"] and "value" not in restored
    assert client.get(f"/secrets/d?{V}").json()["value"] == "keep"
    assert _error(client.post(f"/secrets/restore?{V}", json={"value": "AAAA"}))[:2] == (400, "BadParameter")


def test_each_operation_needs_its_secret_permission(runtime: Runtime) -> None:
    admin = TestClient(KluisApp(runtime), base_url="https://localhost:8443", headers=_headers(runtime))
    admin.put(f"/secrets/s?{V}", json={"value": "v"})
    backup = admin.post(f"/secrets/s/backup?{V}").json()["value"]
    runtime.management.add_principal(PrincipalRecord("reader-oid", "reader-app", "reader", "h", False, 0))
    vault = runtime.vault("default")
    reader = TestClient(KluisApp(runtime), base_url="https://localhost:8443",
                        headers=_headers(runtime, "reader-oid"))  # fmt: skip
    calls: list[tuple[str, Any]] = [
        ("get", lambda: reader.get(f"/secrets/s?{V}")),
        ("list", lambda: reader.get(f"/secrets?{V}")),
        ("list", lambda: reader.get(f"/secrets/s/versions?{V}")),
        ("list", lambda: reader.get(f"/deletedsecrets?{V}")),
        ("set", lambda: reader.put(f"/secrets/s2?{V}", json={"value": "v"})),
        ("set", lambda: reader.patch(f"/secrets/s?{V}", json={"contentType": "x"})),
        ("backup", lambda: reader.post(f"/secrets/s/backup?{V}")),
        ("restore", lambda: reader.post(f"/secrets/restore?{V}", json={"value": backup})),
        ("delete", lambda: reader.delete(f"/secrets/s?{V}")),
        ("get", lambda: reader.get(f"/deletedsecrets/s?{V}")),
        ("recover", lambda: reader.post(f"/deletedsecrets/s/recover?{V}")),
        ("purge", lambda: reader.delete(f"/deletedsecrets/s?{V}")),
    ]
    for permission, call in calls:
        status, code, message, inner = _error(call())
        assert (status, code, inner) == (403, "Forbidden", "AccessDenied"), permission
        assert f"does not have secrets {permission} permission on key vault 'default;" in message
    # keys permissions grant nothing on secrets
    runtime.management.set_policy(vault.name, "reader-oid", keys=["all"])
    assert reader.get(f"/secrets/s?{V}").status_code == 403
    runtime.management.set_policy(vault.name, "reader-oid", secrets=["get", "list"])
    assert reader.get(f"/secrets/s?{V}").json()["value"] == "v"
    assert reader.get(f"/secrets?{V}").status_code == 200
    assert reader.put(f"/secrets/s?{V}", json={"value": "w"}).status_code == 403
    runtime.management.set_policy(vault.name, "reader-oid", secrets=["all"])
    assert reader.put(f"/secrets/s?{V}", json={"value": "w"}).status_code == 200


def test_get_secret_answers_follow_every_change_byte_for_byte(client: TestClient) -> None:
    """Get secret's answer (its encoding remembered per unchanged version, the value spliced in per
    request) is exactly the encoding of the current bundle after each change."""
    first = client.put(f"/secrets/Mixed?{V}", json={"value": 'a "quoted" välue', "tags": {"t": "1"}}).json()
    for _ in range(2):
        r = client.get(f"/secrets/mixed?{V}")
        assert r.json() == first and r.content == json.dumps(first, separators=(",", ":"), ensure_ascii=False).encode()
    updated = client.patch(f"/secrets/MIXED/?{V}", json={"contentType": "text/plain", "tags": {"t": "2"}}).json()
    again = client.get(f"/secrets/mixed?{V}").json()
    assert again == {**updated, "value": 'a "quoted" välue'} and again["tags"] == {"t": "2"}
    assert next(iter(again)) == "value" and again["id"].startswith("https://localhost:8443/secrets/Mixed/")
    second = client.put(f"/secrets/mixed?{V}", json={"value": "two"}).json()
    assert client.get(f"/secrets/mixed?{V}").json() == second
    assert client.get(f"/secrets/mixed/{first['id'].rsplit('/', 1)[1]}?{V}").json()["tags"] == {"t": "2"}

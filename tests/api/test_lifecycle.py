"""The shared lifecycle operations on the wire: one Family description gives each kind the same rows."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from kluis.api.keys import KEYS
from kluis.api.lifecycle import lifecycle_routes
from kluis.api.runtime import Runtime
from kluis.api.secrets import SECRETS
from kluis.domain.authorization import KeyPermission, SecretPermission
from tests.api.conftest import auth

V = "api-version=7.6"


def test_each_family_gets_the_nine_operations_with_its_own_names_and_permissions() -> None:
    keys = {(r.method, r.pattern): (r.operation, r.permission) for r in lifecycle_routes(KEYS)}
    assert keys == {
        ("GET", "/keys/"): ("GetKeys", KeyPermission.LIST),
        ("GET", "/keys/{name}/versions"): ("GetKeyVersions", KeyPermission.LIST),
        ("DELETE", "/keys/{name}/"): ("DeleteKey", KeyPermission.DELETE),
        ("POST", "/keys/{name}/backup"): ("BackupKey", KeyPermission.BACKUP),
        ("POST", "/keys/restore"): ("RestoreKey", KeyPermission.RESTORE),
        ("GET", "/deletedkeys/"): ("GetDeletedKeys", KeyPermission.LIST),
        ("GET", "/deletedkeys/{name}/"): ("GetDeletedKey", KeyPermission.GET),
        ("DELETE", "/deletedkeys/{name}/"): ("PurgeDeletedKey", KeyPermission.PURGE),
        ("POST", "/deletedkeys/{name}/recover"): ("RecoverDeletedKey", KeyPermission.RECOVER),
    }
    secrets = {r.operation: r.permission for r in lifecycle_routes(SECRETS)}
    assert secrets["PurgeDeletedSecret"] is SecretPermission.PURGE and len(secrets) == 9
    assert all(r.kind == "secret" for r in lifecycle_routes(SECRETS))


@pytest.mark.parametrize(
    ("create", "collection", "id_field"),
    [
        (("POST", "/keys/{n}/create", {"kty": "EC"}), "keys", "kid"),
        (("PUT", "/secrets/{n}", {"value": "s3cret"}), "secrets", "id"),
    ],
)
def test_the_same_soft_delete_cycle_for_every_kind(
    client: TestClient, runtime: Runtime, create: tuple[str, str, dict[str, str]], collection: str, id_field: str
) -> None:
    h = auth(runtime)
    method, path, body = create
    made = client.request(method, f"{path.format(n='Mixed')}?{V}", json=body, headers=h).json()
    versions = client.get(f"/{collection}/mixed/versions?{V}&maxresults=1", headers=h).json()
    made_id = made["key"]["kid"] if collection == "keys" else made["id"]
    assert [v[id_field] for v in versions["value"]] == [made_id]
    deleted = client.delete(f"/{collection}/mixed?{V}", headers=h).json()
    assert deleted["recoveryId"] == f"https://localhost:8443/deleted{collection}/Mixed"  # stored casing
    assert "value" not in deleted  # a deleted secret never carries its value (and a key bundle has none)
    listed = client.get(f"/deleted{collection}?{V}", headers=h).json()["value"]
    assert [i["recoveryId"] for i in listed] == [deleted["recoveryId"]]
    assert client.post(f"/deleted{collection}/mixed/recover?{V}", headers=h).status_code == 200
    blob = client.post(f"/{collection}/mixed/backup?{V}", headers=h).json()["value"]
    assert client.post(f"/{collection}/restore?{V}", json={"value": blob}, headers=h).status_code == 409
    client.delete(f"/{collection}/mixed?{V}", headers=h)
    assert client.delete(f"/deleted{collection}/mixed?{V}", headers=h).status_code == 204
    assert client.get(f"/deleted{collection}/mixed?{V}", headers=h).status_code == 404
    restored = client.post(f"/{collection}/restore?{V}", json={"value": blob}, headers=h)
    assert restored.status_code == 200 and "value" not in restored.json()  # restore answers no secret value


def test_versions_of_a_name_that_never_existed_are_an_empty_page(client: TestClient, runtime: Runtime) -> None:
    for collection in ("keys", "secrets"):
        page = client.get(f"/{collection}/never/versions?{V}", headers=auth(runtime)).json()
        assert page == {"value": [], "nextLink": None}

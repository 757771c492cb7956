"""The journeys of Microsoft's published azure-keyvault-keys samples, against a proxied kluis vault.

hello_world, list_operations, backup_restore_operations, recover_purge_operations, key_rotation and
send_request: same calls, same order, same expectations, through ``https://NAME.vault.azure.net``
with the SDK's challenge-resource verification ON. Each principal gets only the permissions the
sample's prerequisites name, so kluis's permission mapping is exercised too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.identity import DefaultAzureCredential
from azure.keyvault.keys import (
    KeyClient,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
)

from tests.e2e.conftest import Principal, unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample_vault(
    kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal]
) -> Callable[..., tuple[str, Principal]]:
    """A fresh vault per sample, and one reader of the samples whose access policy names only what it needs."""
    reader = make_principal()

    def make(*key_permissions: str) -> tuple[str, Principal]:
        vault = make_vault()
        kluis.cli("keyvault", "set-policy", "-n", vault, "--spn", reader.app_id, "--key-permissions", *key_permissions)
        return vault, reader

    return make


@contextmanager
def _sample_environment(kluis: KluisServer, vault: str, who: Principal) -> Iterator[str]:
    """What a sample's reader sets up: AZURE_* variables, and kluis's proxy and CA (from `kluis env`)."""
    lines = kluis.cli("env", "-n", vault, "--client-id", who.app_id, "--client-secret", who.password).stdout
    env = {k: v.strip("'") for k, v in (ln.removeprefix("export ").split("=", 1) for ln in lines.strip().splitlines())}
    names = [*env, "VAULT_URL"]
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(env)
    os.environ["VAULT_URL"] = f"https://{vault}.vault.azure.net"
    try:
        yield os.environ["VAULT_URL"]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_hello_world(kluis: KluisServer, sample_vault: Callable[..., tuple[str, Principal]]) -> None:
    vault, who = sample_vault("create", "get", "update", "delete")
    with _sample_environment(kluis, vault, who) as vault_url:
        client = KeyClient(vault_url=vault_url, credential=DefaultAzureCredential())  # unchanged sample setup
        key_ops = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]
        rsa_key = client.create_rsa_key("rsaKeyName", size=2048, key_operations=key_ops)
        assert rsa_key.name == "rsaKeyName" and rsa_key.key_type == "RSA" and rsa_key.key_operations == key_ops
        ec_key = client.create_ec_key("ECKeyName", curve="P-256")
        assert ec_key.name == "ECKeyName" and ec_key.key_type == "EC"
        rsa_key = client.get_key(rsa_key.name)
        assert rsa_key.name == "rsaKeyName" and len(rsa_key.key.n) == 256
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)
        updated_ec_key = client.update_key_properties(
            ec_key.name, ec_key.properties.version, expires_on=expires, enabled=False
        )
        assert updated_ec_key.properties.expires_on == expires and updated_ec_key.properties.enabled is False
        assert updated_ec_key.properties.updated_on is not None
        client.begin_delete_key(ec_key.name)
        client.begin_delete_key(rsa_key.name)
        for name in ("ECKeyName", "rsaKeyName"):
            with pytest.raises(ResourceNotFoundError):
                client.get_key(name)


def test_list_operations(
    sample_vault: Callable[..., tuple[str, Principal]],
    key_client_for: Callable[..., KeyClient],
) -> None:
    vault, who = sample_vault("create", "list", "get", "delete")
    client = key_client_for(who, vault)
    rsa_key = client.create_rsa_key("rsaKeyName")
    ec_key = client.create_ec_key("ecKeyName")
    found = {}
    for key in client.list_properties_of_keys():
        retrieved_key = client.get_key(key.name)
        found[retrieved_key.name] = retrieved_key.key_type
    assert found == {"rsaKeyName": "RSA", "ecKeyName": "EC"}
    new_key = client.create_rsa_key(rsa_key.name, size=3072)
    assert len(new_key.key.n) == 384
    versions = [(k.name, k.version) for k in client.list_properties_of_key_versions(rsa_key.name)]
    assert sorted(versions) == sorted(
        [("rsaKeyName", rsa_key.properties.version), ("rsaKeyName", new_key.properties.version)]
    )
    for key_name in (ec_key.name, rsa_key.name):
        client.begin_delete_key(key_name)
    deleted = {d.name: d.recovery_id for d in client.list_deleted_keys()}
    assert deleted == {
        "ecKeyName": f"https://{vault}.vault.azure.net/deletedkeys/ecKeyName",
        "rsaKeyName": f"https://{vault}.vault.azure.net/deletedkeys/rsaKeyName",
    }


def test_backup_restore_operations(
    sample_vault: Callable[..., tuple[str, Principal]],
    key_client_for: Callable[..., KeyClient],
) -> None:
    vault, who = sample_vault("create", "get", "backup", "delete", "purge", "restore")
    client = key_client_for(who, vault)
    key = client.create_key("keyName", "RSA")
    assert key.name == "keyName" and key.key_type == "RSA"
    key_backup = client.backup_key(key.name)
    delete_operation = client.begin_delete_key(key.name)
    deleted_key = delete_operation.result()
    assert deleted_key.name == "keyName"
    delete_operation.wait()
    client.purge_deleted_key(key.name)
    restored = client.restore_key_backup(key_backup)
    assert restored.name == "keyName" and restored.id == key.id and restored.key.n == key.key.n


def test_recover_purge_operations(
    sample_vault: Callable[..., tuple[str, Principal]],
    key_client_for: Callable[..., KeyClient],
) -> None:
    vault, who = sample_vault("create", "get", "delete", "recover", "purge")
    client = key_client_for(who, vault)
    rsa_key = client.create_rsa_key("rsaKeyName")
    ec_key = client.create_ec_key("ecKeyName")
    for key_name in (ec_key.name, rsa_key.name):
        client.begin_delete_key(key_name).wait()
    recover_key_poller = client.begin_recover_deleted_key(rsa_key.name)
    recovered_key = recover_key_poller.result()
    recover_key_poller.wait()
    assert recovered_key.name == "rsaKeyName" and recovered_key.id == rsa_key.id
    assert client.get_key("rsaKeyName").key.n == rsa_key.key.n
    client.begin_delete_key(recovered_key.name).wait()
    for key_name in (ec_key.name, rsa_key.name):
        client.purge_deleted_key(key_name)
    for key_name in (ec_key.name, rsa_key.name):
        with pytest.raises(ResourceNotFoundError):
            client.get_deleted_key(key_name)
    assert client.create_ec_key("ecKeyName").name == "ecKeyName"  # purged names are free again


def test_key_rotation(
    sample_vault: Callable[..., tuple[str, Principal]],
    key_client_for: Callable[..., KeyClient],
) -> None:
    vault, who = sample_vault("create", "rotate", "getrotationpolicy", "setrotationpolicy", "delete")
    client = key_client_for(who, vault)
    key_name = "rotation-sample-key"
    key = client.create_rsa_key(key_name)
    actions = [KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P2M")]
    updated_policy = client.update_key_rotation_policy(
        key_name, KeyRotationPolicy(), expires_in="P90D", lifetime_actions=actions
    )
    assert updated_policy.expires_in == "P90D"
    rotate = [a for a in updated_policy.lifetime_actions if a.action == KeyRotationPolicyAction.rotate]
    assert len(rotate) == 1 and rotate[0].time_after_create == "P2M" and rotate[0].time_before_expiry is None

    current_policy = client.get_key_rotation_policy(key_name)
    rotate = [a for a in current_policy.lifetime_actions if a.action == KeyRotationPolicyAction.rotate]
    assert len(rotate) == 1 and rotate[0].time_after_create == "P2M"

    new_actions = [KeyRotationLifetimeAction(KeyRotationPolicyAction.notify, time_before_expiry="P10D")]
    new_policy = client.update_key_rotation_policy(key_name, current_policy, lifetime_actions=new_actions)
    assert new_policy.expires_in == "P90D", "The key's expiry time should have been preserved"
    notify = [a for a in new_policy.lifetime_actions if a.action == KeyRotationPolicyAction.notify]
    assert len(notify) == 1 and notify[0].time_after_create is None and notify[0].time_before_expiry == "P10D"
    assert not [a for a in new_policy.lifetime_actions if a.action == KeyRotationPolicyAction.rotate]

    rotated_key = client.rotate_key(key_name)
    assert rotated_key.properties.version != key.properties.version
    assert rotated_key.properties.expires_on is not None and rotated_key.properties.created_on is not None
    assert rotated_key.properties.expires_on - rotated_key.properties.created_on == timedelta(days=90)
    client.begin_delete_key(key_name)


def test_send_request(
    sample_vault: Callable[..., tuple[str, Principal]],
    key_client_for: Callable[..., KeyClient],
) -> None:
    vault, who = sample_vault("create", "get", "delete")
    client = key_client_for(who, vault)
    key = client.create_rsa_key(unique("sampleKey"))
    request = HttpRequest("GET", f"keys/{key.name}/{key.properties.version}")
    response = client.send_request(request)
    assert response.status_code == 200
    response_body = response.json()
    assert response_body["key"]["kid"] == key.id
    assert response_body["attributes"]["enabled"] is True
    client.begin_delete_key(key.name)
    missing = client.send_request(HttpRequest("GET", f"keys/{key.name}/{key.properties.version}"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "KeyNotFound"

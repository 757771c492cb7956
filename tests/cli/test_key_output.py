"""Key Vault SDK objects printed as az prints them: camelCase JSON and flat table rows."""

from __future__ import annotations

from datetime import UTC, datetime

from azure.keyvault.keys import (
    DeletedKey,
    KeyProperties,
    KeyReleasePolicy,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyVaultKey,
)
from azure.keyvault.keys._generated.models import KeyAttributes

from kluis.cli.key_output import key_bundle, key_item, rotation_policy_dict, table_rows

KID = "https://myvault.vault.azure.net/keys/k1/0123456789abcdef"
WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


# -- output shaping --------------------------------------------------------------------------------
def _attrs() -> KeyAttributes:
    return KeyAttributes(enabled=True, expires=WHEN, created=WHEN, updated=WHEN, exportable=False)


def test_key_bundle_like_az() -> None:
    props = KeyProperties(KID, _attrs(), tags={"a": "b"})
    key = KeyVaultKey(KID, jwk={"kid": KID, "kty": "EC", "key_ops": ["sign"], "crv": "P-256", "x": b"\x01\xff"},
                      properties=props)  # fmt: skip
    out = key_bundle(key)
    assert set(out) == {"attributes", "key", "managed", "releasePolicy", "tags"}
    assert out["attributes"]["expires"] == "2030-01-02T03:04:05+00:00" and out["attributes"]["notBefore"] is None
    assert out["key"]["keyOps"] == ["sign"] and out["key"]["x"] == "Af8=" and out["key"]["n"] is None
    assert out["key"]["kid"] == KID and out["tags"] == {"a": "b"} and out["releasePolicy"] is None


def test_release_policy_and_deleted_shapes() -> None:
    policy = KeyReleasePolicy(b'{"version":"1.0.0"}', content_type="application/json", immutable=True)
    props = KeyProperties(KID, _attrs(), release_policy=policy)
    deleted = DeletedKey(
        props,
        deleted_date=WHEN,
        recovery_id="https://myvault.vault.azure.net/deletedkeys/k1",
        scheduled_purge_date=WHEN,
        key_id=KID,
        jwk={"kid": KID, "kty": "RSA"},
    )
    out = key_bundle(deleted)
    assert out["releasePolicy"] == {
        "contentType": "application/json",
        "encodedPolicy": '{"version":"1.0.0"}',
        "immutable": True,
    }
    assert out["recoveryId"].endswith("/deletedkeys/k1") and out["deletedDate"] == "2030-01-02T03:04:05+00:00"
    item = key_item(deleted)
    assert item["name"] == "k1" and item["kid"] == KID and item["scheduledPurgeDate"] == out["scheduledPurgeDate"]
    assert key_item(props)["name"] == "k1" and "recoveryId" not in key_item(props)


def test_rotation_policy_shape() -> None:
    policy = KeyRotationPolicy(
        policy_id="https://v.vault.azure.net/keys/k/rotationpolicy",
        lifetime_actions=[KeyRotationLifetimeAction("Rotate", time_after_create="P30D")],
        expires_in="P90D",
        created_on=WHEN,
    )
    assert rotation_policy_dict(policy) == {
        "createdOn": "2030-01-02T03:04:05+00:00",
        "expiresIn": "P90D",
        "id": "https://v.vault.azure.net/keys/k/rotationpolicy",
        "lifetimeActions": [{"action": "Rotate", "timeAfterCreate": "P30D", "timeBeforeExpiry": None}],
        "updatedOn": None,
    }


def test_table_rows() -> None:
    key = KeyVaultKey(KID, jwk={"kid": KID, "kty": "RSA"}, properties=KeyProperties(KID, _attrs(), tags={"b": "2"}))
    row = table_rows(key_bundle(key))
    assert row["Name"] == "k1" and row["Kid"] == KID and row["Kty"] == "RSA" and row["Tags"] == "b=2"
    assert table_rows([{"isValid": True, "keyId": KID}]) == [{"IsValid": True, "KeyId": KID}]
    policy = {"id": "x", "lifetimeActions": [{"action": "Notify", "timeBeforeExpiry": "P30D"}], "expiresIn": None}
    assert table_rows(policy)["LifetimeActions"] == "Notify before expiry P30D"

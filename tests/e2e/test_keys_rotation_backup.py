"""Rotation (on demand, policies, and the scheduler really rotating) and backup/restore through the SDK."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.keyvault.keys import (
    KeyClient,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
)
from azure.keyvault.keys.crypto import SignatureAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from tests.e2e.conftest import Principal, unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow

ROTATE = KeyRotationPolicyAction.rotate
NOTIFY = KeyRotationPolicyAction.notify


def _error(err: pytest.ExceptionInfo[HttpResponseError], status: int, code: str) -> str:
    assert err.value.status_code == status, str(err.value)
    assert err.value.error is not None and err.value.error.code == code, str(err.value)
    return str(err.value)


def _actions(policy: KeyRotationPolicy) -> dict[str, tuple[str | None, str | None]]:
    return {
        str(getattr(a.action, "value", a.action)).lower(): (a.time_after_create, a.time_before_expiry)
        for a in policy.lifetime_actions
    }


# -- rotation ---------------------------------------------------------------------------------------
def test_rotate_key_makes_a_new_version_of_the_same_type_and_size(client: KeyClient) -> None:
    name = unique()
    first = client.create_rsa_key(name, size=3072, key_operations=["sign", "verify"], tags={"app": "x"})
    rotated = client.rotate_key(name)
    assert rotated.name == name and rotated.properties.version != first.properties.version
    assert rotated.key_type == "RSA" and len(rotated.key.n) == 384 and rotated.key.n != first.key.n
    assert rotated.key_operations == ["sign", "verify"] and rotated.properties.tags == {"app": "x"}
    assert client.get_key(name).id == rotated.id
    versions = {p.version for p in client.list_properties_of_key_versions(name)}
    assert versions == {first.properties.version, rotated.properties.version}
    assert client.get_key(name, first.properties.version).key.n == first.key.n  # the old version stays usable

    ec_name = unique()
    ec_first = client.create_key(ec_name, "EC-HSM", curve="P-521")
    ec_rotated = client.rotate_key(ec_name)
    assert ec_rotated.key_type == "EC-HSM" and ec_rotated.key.crv == "P-521" and ec_rotated.key.x != ec_first.key.x
    digest = hashlib.sha512(b"rotated").digest()
    sig = client.get_cryptography_client(ec_name).sign(SignatureAlgorithm.es512, digest).signature
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(ec_rotated.key.x, "big"), int.from_bytes(ec_rotated.key.y, "big"), ec.SECP521R1()
    ).public_key()
    public.verify(
        utils.encode_dss_signature(int.from_bytes(sig[:66], "big"), int.from_bytes(sig[66:], "big")),
        digest,
        ec.ECDSA(utils.Prehashed(hashes.SHA512())),
    )  # the latest version signs after rotation
    with pytest.raises(ResourceNotFoundError):
        client.rotate_key(unique())


def test_default_and_updated_rotation_policy(client: KeyClient, vault: str) -> None:
    name = unique()
    client.create_ec_key(name)
    default = client.get_key_rotation_policy(name)
    assert _actions(default) == {"notify": (None, "P30D")}
    assert default.expires_in is None

    wanted = KeyRotationPolicy(
        lifetime_actions=[KeyRotationLifetimeAction(ROTATE, time_after_create="P30D")], expires_in="P90D"
    )
    updated = client.update_key_rotation_policy(name, wanted)
    assert updated.id == f"https://{vault}.vault.azure.net/keys/{name}/rotationpolicy"
    assert updated.expires_in == "P90D"
    # Key Vault adds its default notification when the policy names none
    assert _actions(updated) == {"rotate": ("P30D", None), "notify": (None, "P30D")}
    assert updated.created_on is not None and updated.updated_on is not None
    got = client.get_key_rotation_policy(name)
    assert _actions(got) == _actions(updated) and got.expires_in == "P90D"
    assert got.created_on == updated.created_on

    # keyword arguments override the policy passed in; expiry kept from the existing policy
    time.sleep(1.1)
    notify_only = client.update_key_rotation_policy(
        name, got, lifetime_actions=[KeyRotationLifetimeAction(NOTIFY, time_before_expiry="P10D")]
    )
    assert _actions(notify_only) == {"notify": (None, "P10D")} and notify_only.expires_in == "P90D"
    assert notify_only.created_on == updated.created_on
    assert notify_only.updated_on is not None and updated.updated_on is not None
    assert notify_only.updated_on > updated.updated_on

    # the raw policy document, as Key Vault shapes it
    raw = client.send_request(HttpRequest("GET", f"/keys/{name}/rotationpolicy?api-version=7.6")).json()
    assert raw["lifetimeActions"] == [{"trigger": {"timeBeforeExpiry": "P10D"}, "action": {"type": "Notify"}}]
    assert raw["attributes"]["expiryTime"] == "P90D" and isinstance(raw["attributes"]["created"], int)
    with pytest.raises(ResourceNotFoundError):
        client.get_key_rotation_policy(unique())


def test_invalid_rotation_policies_are_400(client: KeyClient) -> None:
    name = unique()
    client.create_ec_key(name)
    bad = [
        KeyRotationPolicy(lifetime_actions=[KeyRotationLifetimeAction(ROTATE, time_after_create="P1D")]),
        KeyRotationPolicy(
            lifetime_actions=[KeyRotationLifetimeAction(ROTATE, time_after_create="P30D")], expires_in="P10D"
        ),
        KeyRotationPolicy(  # rotation must come at least 7 days before the new version expires
            lifetime_actions=[KeyRotationLifetimeAction(ROTATE, time_after_create="P85D")], expires_in="P90D"
        ),
        KeyRotationPolicy(lifetime_actions=[KeyRotationLifetimeAction(ROTATE, time_after_create="30 days")]),
        KeyRotationPolicy(lifetime_actions=[KeyRotationLifetimeAction(NOTIFY, time_after_create="P30D")]),
        KeyRotationPolicy(lifetime_actions=[KeyRotationLifetimeAction("Explode", time_after_create="P30D")]),
        KeyRotationPolicy(
            lifetime_actions=[
                KeyRotationLifetimeAction(ROTATE, time_after_create="P30D"),
                KeyRotationLifetimeAction(ROTATE, time_after_create="P60D"),
            ]
        ),
        KeyRotationPolicy(
            lifetime_actions=[KeyRotationLifetimeAction(ROTATE, time_after_create="P30D", time_before_expiry="P30D")]
        ),
    ]
    for policy in bad:
        with pytest.raises(HttpResponseError) as err:
            client.update_key_rotation_policy(name, policy)
        _error(err, 400, "BadParameter")
    assert _actions(client.get_key_rotation_policy(name)) == {"notify": (None, "P30D")}  # unchanged


def test_scheduled_rotation_really_happens(
    kluis: KluisServer, admin: Principal, vault: str, key_client_for: Callable[..., KeyClient]
) -> None:
    client = key_client_for(admin, vault)
    name, before_expiry, notify_only = unique(), unique(), unique()
    first = client.create_rsa_key(name, tags={"rotated": "by policy"})
    policy = KeyRotationPolicy(
        lifetime_actions=[KeyRotationLifetimeAction(ROTATE, time_after_create="P30D")], expires_in="P90D"
    )
    client.update_key_rotation_policy(name, policy)
    # rotate 30 days before the key expires, the key expiring in 40 days: due after 10 days
    ec_first = client.create_ec_key(before_expiry, curve="P-384", expires_on=datetime.now(UTC) + timedelta(days=40))
    client.update_key_rotation_policy(
        before_expiry,
        KeyRotationPolicy(
            lifetime_actions=[KeyRotationLifetimeAction(ROTATE, time_before_expiry="P30D")], expires_in="P60D"
        ),
    )
    client.create_ec_key(notify_only)
    client.update_key_rotation_policy(
        notify_only, KeyRotationPolicy(lifetime_actions=[KeyRotationLifetimeAction(NOTIFY, time_before_expiry="P30D")])
    )
    kluis.cli("housekeeping")  # nothing is due yet
    for n in (name, before_expiry, notify_only):
        assert len(list(client.list_properties_of_key_versions(n))) == 1

    kluis.cli("time", "set", "--offset", str(31 * 86400))
    try:
        # the count is not asserted: the server's own scheduler (every 30 s) may have done it first
        kluis.cli("housekeeping")
        later = key_client_for(admin, vault)  # a fresh credential: tokens follow the server clock
        versions = list(later.list_properties_of_key_versions(name))
        assert len(versions) == 2
        new = next(v for v in versions if v.version != first.properties.version)
        assert new.created_on is not None and new.expires_on is not None
        assert new.expires_on - new.created_on == timedelta(days=90)
        assert first.properties.created_on is not None
        assert new.created_on - first.properties.created_on >= timedelta(days=31)
        latest = later.get_key(name)
        assert latest.properties.version == new.version and latest.key.n != first.key.n
        assert len(latest.key.n) == 256 and latest.properties.tags == {"rotated": "by policy"}
        kluis.cli("housekeeping")  # idempotent: the next rotation is 30 days after the new version
        assert len(list(later.list_properties_of_key_versions(name))) == 2

        ec_versions = list(later.list_properties_of_key_versions(before_expiry))
        assert len(ec_versions) == 2
        ec_new = later.get_key(before_expiry)
        assert ec_new.properties.version != ec_first.properties.version and ec_new.key.crv == "P-384"
        assert ec_new.properties.expires_on is not None and ec_new.properties.created_on is not None
        assert ec_new.properties.expires_on - ec_new.properties.created_on == timedelta(days=60)
        assert len(list(later.list_properties_of_key_versions(notify_only))) == 1  # Notify never rotates
    finally:
        kluis.cli("time", "set", "--offset", "0")


# -- backup / restore -------------------------------------------------------------------------------
def _rsa_public(n: bytes, e: bytes) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()


def test_backup_delete_purge_restore_keeps_every_version(client: KeyClient, vault: str) -> None:
    name = unique()
    created = [client.create_rsa_key(name, tags={"v": str(i)}) for i in range(3)]
    client.update_key_properties(name, created[0].properties.version, enabled=False)
    policy = KeyRotationPolicy(
        lifetime_actions=[KeyRotationLifetimeAction(ROTATE, time_after_create="P60D")], expires_in="P1Y"
    )
    client.update_key_rotation_policy(name, policy)
    blob = client.backup_key(name)
    assert isinstance(blob, bytes) and len(blob) > 100
    assert created[-1].key.n not in blob  # opaque: no key material in the clear

    client.begin_delete_key(name).wait()
    client.purge_deleted_key(name)
    with pytest.raises(ResourceNotFoundError):
        client.get_key(name)

    restored = client.restore_key_backup(blob)
    assert restored.id == created[-1].id and restored.key.n == created[-1].key.n
    assert restored.properties.tags == {"v": "2"}
    versions = {p.version: p for p in client.list_properties_of_key_versions(name)}
    assert set(versions) == {k.properties.version for k in created}
    assert versions[created[0].properties.version].enabled is False
    assert versions[created[1].properties.version].tags == {"v": "1"}
    for k in created:
        assert client.get_key(name, k.properties.version).key.n == k.key.n
    assert _rotation(client.get_key_rotation_policy(name)) == ("P60D", "P1Y")
    digest = hashlib.sha256(b"restored").digest()
    sig = client.get_cryptography_client(name).sign(SignatureAlgorithm.ps256, digest).signature
    _rsa_public(created[-1].key.n, created[-1].key.e).verify(
        sig, digest, padding.PSS(padding.MGF1(hashes.SHA256()), 32), utils.Prehashed(hashes.SHA256())
    )

    with pytest.raises(ResourceExistsError) as err:  # the name is in use
        client.restore_key_backup(blob)
    assert err.value.status_code == 409
    client.begin_delete_key(name).wait()
    with pytest.raises(ResourceExistsError):  # ... or deleted but recoverable
        client.restore_key_backup(blob)


def _rotation(policy: KeyRotationPolicy) -> tuple[str | None, str | None]:
    return _actions(policy)["rotate"][0], policy.expires_in


def test_restore_into_another_vault(
    kluis: KluisServer,
    client: KeyClient,
    make_vault: Callable[..., str],
    make_principal: Callable[..., Principal],
    key_client_for: Callable[..., KeyClient],
) -> None:
    name = unique()
    ec1 = client.create_ec_key(name, curve="P-256K")
    ec2 = client.create_ec_key(name, curve="P-256K")
    blob = client.backup_key(name)
    other = make_vault()
    restorer = make_principal(other, "restore", "get", "list")
    target = key_client_for(restorer, other)
    restored = target.restore_key_backup(blob)
    assert restored.id == f"https://{other}.vault.azure.net/keys/{name}/{ec2.properties.version}"
    assert restored.key.x == ec2.key.x and restored.key.crv == "P-256K"
    assert sorted(p.version for p in target.list_properties_of_key_versions(name)) == sorted(
        [ec1.properties.version, ec2.properties.version]
    )
    assert client.get_key(name).id == ec2.id  # the source is untouched

    kluis.cli("keyvault", "set-policy", "-n", other, "--spn", restorer.app_id, "--key-permissions", "get", "list")
    with pytest.raises(HttpResponseError) as err:  # the same principal once restore is taken away
        key_client_for(restorer, other).restore_key_backup(blob)
    assert "does not have keys restore permission" in _error(err, 403, "Forbidden")


def test_tampered_or_garbage_backup_is_400(client: KeyClient) -> None:
    name = unique()
    client.create_oct_key(name, hardware_protected=True)
    blob = bytearray(client.backup_key(name))
    client.begin_delete_key(name).wait()
    client.purge_deleted_key(name)
    for i in (len(blob) // 2, len(blob) - 3):
        tampered = bytearray(blob)
        tampered[i] = ord("A") if tampered[i] != ord("A") else ord("B")
        with pytest.raises(HttpResponseError) as err:
            client.restore_key_backup(bytes(tampered))
        _error(err, 400, "BadParameter")
    for garbage in (b"not a backup", blob[:40], bytes(blob) + b"x"):
        with pytest.raises(HttpResponseError) as err:
            client.restore_key_backup(garbage)
        _error(err, 400, "BadParameter")
    resp = client.send_request(HttpRequest("POST", "/keys/restore?api-version=7.6", json={"value": "%%%"}))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "BadParameter"
    assert client.restore_key_backup(bytes(blob)).name == name  # the intact blob still works
    with pytest.raises(ResourceNotFoundError):
        client.backup_key(unique())
    # the blob really is base64url of something opaque, not JSON with key material
    raw = client.send_request(HttpRequest("POST", f"/keys/{name}/backup?api-version=7.6")).json()["value"]
    decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    assert b'"private"' not in decoded and b"versions" not in decoded

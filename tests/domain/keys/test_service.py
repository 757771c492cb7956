"""KeyService rules, exercised on a real SQLite store and real crypto (EC keys keep it fast)."""

from __future__ import annotations

import hashlib

import pytest

from kluis.domain.errors import BadParameter, Conflict, Forbidden, NotFound
from kluis.domain.views import KeyChanges
from tests.domain.conftest import World

DAY = 86400


def test_create_get_and_versions(world: World) -> None:
    v1 = world.keys.create_key(world.vault, world.owner, "Key-1", kty="EC", curve="P-256")
    v2 = world.keys.create_key(world.vault, world.owner, "key-1", kty="EC", curve="P-384")
    assert v1.name == v2.name == "Key-1" and v1.version != v2.version
    latest = world.keys.get_key(world.vault, world.owner, "KEY-1")
    assert latest.version == v2.version and latest.jwk["crv"] == "P-384"
    assert world.keys.get_key(world.vault, world.owner, "key-1", v1.version).jwk["crv"] == "P-256"
    assert latest.key_ops == ["sign", "verify"] and latest.recovery_level == "Recoverable+Purgeable"
    page = world.keys.list_versions(world.vault, world.owner, "key-1", maxresults=1, token=None)
    assert len(page.items) == 1 and page.next_token is not None
    rest = world.keys.list_versions(world.vault, world.owner, "key-1", maxresults=25, token=page.next_token)
    assert [i.version for i in page.items + rest.items] == [v1.version, v2.version]


@pytest.mark.parametrize("name", ["bad_name", "", "a" * 128, "sp ace"])
def test_invalid_names(world: World, name: str) -> None:
    with pytest.raises(BadParameter, match="invalid name"):
        world.keys.create_key(world.vault, world.owner, name, kty="EC")


@pytest.mark.parametrize(
    ("kty", "kw"), [("XYZ", {}), ("EC", {"curve": "P-999"}), ("RSA", {"size": 1024}), ("oct", {"size": 100})]
)
def test_invalid_key_parameters(world: World, kty: str, kw: dict[str, object]) -> None:
    with pytest.raises(BadParameter):
        world.keys.create_key(world.vault, world.owner, "k", kty=kty, **kw)  # type: ignore[arg-type]


def test_permissions_are_checked_before_anything(world: World) -> None:
    reader = world.principal("reader", "get", "list")
    with pytest.raises(Forbidden, match="keys create permission"):
        world.keys.create_key(world.vault, reader, "k", kty="EC")
    with pytest.raises(Forbidden):  # even for a key that does not exist: no existence oracle
        world.keys.delete_key(world.vault, reader, "nope")
    nobody = world.principal("nobody")
    with pytest.raises(Forbidden):
        world.keys.get_key(world.vault, nobody, "k")


def test_soft_delete_recover_purge(world: World) -> None:
    world.keys.create_key(world.vault, world.owner, "k", kty="EC")
    deleted = world.keys.delete_key(world.vault, world.owner, "k")
    assert deleted.deleted is not None
    assert deleted.deleted.scheduled_purge_date - deleted.deleted.deleted_date == 90 * DAY
    with pytest.raises(NotFound):
        world.keys.get_key(world.vault, world.owner, "k")
    with pytest.raises(Conflict) as err:
        world.keys.create_key(world.vault, world.owner, "k", kty="EC")
    assert err.value.inner_code == "ObjectIsDeletedButRecoverable"
    assert [
        k.name for k in world.keys.list_deleted_keys(world.vault, world.owner, maxresults=None, token=None).items
    ] == ["k"]
    world.keys.recover_deleted_key(world.vault, world.owner, "k")
    assert world.keys.get_key(world.vault, world.owner, "k").name == "k"
    with pytest.raises(NotFound):
        world.keys.recover_deleted_key(world.vault, world.owner, "k")
    world.keys.delete_key(world.vault, world.owner, "k")
    world.keys.purge_deleted_key(world.vault, world.owner, "k")
    with pytest.raises(NotFound):
        world.keys.get_deleted_key(world.vault, world.owner, "k")
    world.keys.create_key(world.vault, world.owner, "k", kty="EC")  # the name is free again


def test_purge_protection_and_retention_expiry(world: World) -> None:
    vault = world.mgmt.create_vault(
        "guarded", "rg", retention_days=7, purge_protection=True, creator_object_id="owner-oid"
    )
    view = world.keys.create_key(vault, world.owner, "k", kty="EC")
    assert view.recovery_level == "CustomizedRecoverable" and view.recoverable_days == 7
    world.keys.delete_key(vault, world.owner, "k")
    with pytest.raises(Forbidden, match="purge protection"):
        world.keys.purge_deleted_key(vault, world.owner, "k")
    world.clock.t += 7 * DAY - 1
    assert world.keys.run_due({vault.vault_id: vault}) == (0, 0)
    world.clock.t += 1
    assert world.keys.run_due({vault.vault_id: vault}) == (1, 0)
    with pytest.raises(NotFound):
        world.keys.get_deleted_key(vault, world.owner, "k")


def test_update_is_patch_and_guards_crypto(world: World) -> None:
    v = world.keys.create_key(world.vault, world.owner, "k", kty="EC", changes=KeyChanges(tags={"a": "1"}))
    digest = hashlib.sha256(b"hello").digest()
    assert world.ops.sign(world.vault, world.owner, "k", v.version, "ES256", digest).value
    upd = world.keys.update_key(world.vault, world.owner, "k", None, KeyChanges(enabled=False))
    assert upd.tags == {"a": "1"} and upd.enabled is False
    with pytest.raises(Forbidden, match="disabled"):
        world.ops.sign(world.vault, world.owner, "k", v.version, "ES256", digest)
    world.keys.update_key(world.vault, world.owner, "k", None, KeyChanges(enabled=True, key_ops=["verify"]))
    with pytest.raises(Forbidden, match="not permitted"):
        world.ops.sign(world.vault, world.owner, "k", None, "ES256", digest)
    world.keys.update_key(
        world.vault, world.owner, "k", None, KeyChanges(key_ops=["sign", "verify"], exp=world.clock.t)
    )
    with pytest.raises(Forbidden, match="expired"):
        world.ops.sign(world.vault, world.owner, "k", None, "ES256", digest)
    sig = b"\x00" * 64
    assert world.ops.verify(world.vault, world.owner, "k", None, "ES256", digest, sig) is False  # verify stays allowed
    world.keys.update_key(world.vault, world.owner, "k", None, KeyChanges(exp=None, nbf=world.clock.t + 10))
    with pytest.raises(Forbidden, match="not yet valid"):
        world.ops.sign(world.vault, world.owner, "k", None, "ES256", digest)


def test_crypto_errors_are_bad_parameter(world: World) -> None:
    world.keys.create_key(world.vault, world.owner, "k", kty="EC", curve="P-256")
    with pytest.raises(BadParameter):
        world.ops.sign(world.vault, world.owner, "k", None, "ES384", hashlib.sha384(b"x").digest())
    with pytest.raises(BadParameter):
        world.ops.sign(world.vault, world.owner, "k", None, "ES256", b"short")
    with pytest.raises(NotFound):
        world.ops.sign(world.vault, world.owner, "k", "0" * 32, "ES256", hashlib.sha256(b"x").digest())


def test_oct_key_encrypt_decrypt_and_material_never_returned(world: World) -> None:
    v = world.keys.create_key(world.vault, world.owner, "aes", kty="oct-HSM", size=256)
    assert v.jwk == {} and "encrypt" in v.key_ops
    res = world.ops.encrypt(world.vault, world.owner, "aes", None, "A256GCM", b"secret", aad=b"ctx")
    assert res.iv and res.tag and res.value != b"secret"
    out = world.ops.decrypt(
        world.vault, world.owner, "aes", None, "A256GCM", res.value, iv=res.iv, tag=res.tag, aad=b"ctx"
    )
    assert out.value == b"secret"
    with pytest.raises(BadParameter):
        world.ops.decrypt(world.vault, world.owner, "aes", None, "A256GCM", res.value, iv=res.iv, tag=b"\x00" * 16)


def test_backup_restore_roundtrip_and_tamper(world: World) -> None:
    a = world.keys.create_key(world.vault, world.owner, "bk", kty="EC")
    b = world.keys.create_key(world.vault, world.owner, "bk", kty="EC")
    blob = world.backup.backup(world.vault, world.owner, "bk")
    with pytest.raises(Conflict):
        world.backup.restore(world.vault, world.owner, blob)
    other = world.mgmt.create_vault("vault2", "rg", creator_object_id="owner-oid")
    restored = world.backup.restore(other, world.owner, blob)
    assert restored.version == b.version
    assert world.keys.get_key(other, world.owner, "bk", a.version).jwk == a.jwk
    tampered = blob[:-5] + (b"A" if blob[-5:-4] != b"A" else b"B") + blob[-4:]
    with pytest.raises(BadParameter):
        world.backup.restore(
            world.mgmt.create_vault("vault3", "rg", creator_object_id="owner-oid"), world.owner, tampered
        )


def test_scheduled_rotation(world: World) -> None:
    v1 = world.keys.create_key(world.vault, world.owner, "rot", kty="EC", curve="P-521")
    policy = {
        "lifetimeActions": [{"trigger": {"timeAfterCreate": "P30D"}, "action": {"type": "Rotate"}}],
        "attributes": {"expiryTime": "P90D"},
    }
    doc = world.keys.update_rotation_policy(world.vault, world.owner, "rot", policy)
    assert doc["attributes"]["expiryTime"] == "P90D" and "created" in doc["attributes"]
    world.clock.t += 30 * DAY - 1
    assert world.keys.run_due({world.vault.vault_id: world.vault}) == (0, 0)
    world.clock.t += 1
    assert world.keys.run_due({world.vault.vault_id: world.vault}) == (0, 1)
    latest = world.keys.get_key(world.vault, world.owner, "rot")
    assert latest.version != v1.version and latest.jwk["crv"] == "P-521"
    assert latest.exp == latest.created + 90 * DAY
    assert world.keys.run_due({world.vault.vault_id: world.vault}) == (0, 0)  # next one is 30 days later


def test_default_rotation_policy(world: World) -> None:
    world.keys.create_key(world.vault, world.owner, "r", kty="EC")
    doc = world.keys.get_rotation_policy(world.vault, world.owner, "r")
    assert doc["lifetimeActions"] == [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}]


def test_random_bytes(world: World) -> None:
    assert len(world.ops.random_bytes(world.vault, world.owner, 32)) == 32
    for bad in (0, 129, "5", True):
        with pytest.raises(BadParameter):
            world.ops.random_bytes(world.vault, world.owner, bad)
    with pytest.raises(Forbidden):
        world.ops.random_bytes(world.vault, world.principal("none"), 8)

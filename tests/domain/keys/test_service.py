"""KeyService rules, exercised on a real SQLite store and real crypto (EC keys keep it fast)."""

from __future__ import annotations

import hashlib

import pytest

from kluis.domain.errors import BadParameter, Forbidden
from kluis.domain.views import KeyChanges
from tests.domain.conftest import World

DAY = 86400


def test_create_get_and_versions(world: World) -> None:
    v1 = world.keys.create_key(world.vault, "Key-1", kty="EC", curve="P-256")
    v2 = world.keys.create_key(world.vault, "key-1", kty="EC", curve="P-384")
    assert v1.name == v2.name == "Key-1" and v1.version != v2.version
    latest = world.keys.get_key(world.vault, "KEY-1")
    assert latest.version == v2.version and latest.jwk["crv"] == "P-384"
    assert world.keys.get_key(world.vault, "key-1", v1.version).jwk["crv"] == "P-256"
    assert latest.key_ops == ["sign", "verify"] and latest.recovery_level == "Recoverable+Purgeable"
    page = world.keys.list_versions(world.vault, "key-1", maxresults=1, token=None)
    assert len(page.items) == 1 and page.next_token is not None
    rest = world.keys.list_versions(world.vault, "key-1", maxresults=25, token=page.next_token)
    assert [i.version for i in page.items + rest.items] == [v1.version, v2.version]


@pytest.mark.parametrize("name", ["bad_name", "", "a" * 128, "sp ace"])
def test_invalid_names(world: World, name: str) -> None:
    with pytest.raises(BadParameter, match="invalid name"):
        world.keys.create_key(world.vault, name, kty="EC")


@pytest.mark.parametrize(
    ("kty", "kw"), [("XYZ", {}), ("EC", {"curve": "P-999"}), ("RSA", {"size": 1024}), ("oct", {"size": 100})]
)
def test_invalid_key_parameters(world: World, kty: str, kw: dict[str, object]) -> None:
    with pytest.raises(BadParameter):
        world.keys.create_key(world.vault, "k", kty=kty, **kw)  # type: ignore[arg-type]


def test_update_is_patch_and_guards_crypto(world: World) -> None:
    v = world.keys.create_key(world.vault, "k", kty="EC", changes=KeyChanges(tags={"a": "1"}))
    digest = hashlib.sha256(b"hello").digest()
    assert world.ops.sign(world.vault, "k", v.version, "ES256", digest).value
    upd = world.keys.update_key(world.vault, "k", None, KeyChanges(enabled=False))
    assert upd.tags == {"a": "1"} and upd.enabled is False
    with pytest.raises(Forbidden, match="disabled"):
        world.ops.sign(world.vault, "k", v.version, "ES256", digest)
    world.keys.update_key(world.vault, "k", None, KeyChanges(enabled=True, key_ops=["verify"]))
    with pytest.raises(Forbidden, match="not permitted"):
        world.ops.sign(world.vault, "k", None, "ES256", digest)
    world.keys.update_key(world.vault, "k", None, KeyChanges(key_ops=["sign", "verify"], exp=world.clock.t))
    with pytest.raises(Forbidden, match="expired"):
        world.ops.sign(world.vault, "k", None, "ES256", digest)
    sig = b"\x00" * 64
    assert world.ops.verify(world.vault, "k", None, "ES256", digest, sig) is False  # verify stays allowed
    world.keys.update_key(world.vault, "k", None, KeyChanges(exp=None, nbf=world.clock.t + 10))
    with pytest.raises(Forbidden, match="not yet valid"):
        world.ops.sign(world.vault, "k", None, "ES256", digest)


def test_scheduled_rotation(world: World) -> None:
    v1 = world.keys.create_key(world.vault, "rot", kty="EC", curve="P-521")
    policy = {
        "lifetimeActions": [{"trigger": {"timeAfterCreate": "P30D"}, "action": {"type": "Rotate"}}],
        "attributes": {"expiryTime": "P90D"},
    }
    _, doc = world.keys.update_rotation_policy(world.vault, "rot", policy)
    assert doc["attributes"]["expiryTime"] == "P90D" and "created" in doc["attributes"]
    world.clock.t += 30 * DAY - 1
    assert world.tick() == (0, 0)
    world.clock.t += 1
    assert world.tick() == (0, 1)
    latest = world.keys.get_key(world.vault, "rot")
    assert latest.version != v1.version and latest.jwk["crv"] == "P-521"
    assert latest.exp == latest.created + 90 * DAY
    assert world.tick() == (0, 0)  # next one is 30 days later


def test_default_rotation_policy(world: World) -> None:
    world.keys.create_key(world.vault, "r", kty="EC")
    _, stored = world.keys.get_rotation_policy(world.vault, "r")
    assert stored is None  # never set: nothing stored, so the answer is the synthesized default
    doc = world.keys.default_rotation_policy()
    assert doc["lifetimeActions"] == [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}]
    assert "id" not in doc and doc["attributes"] == {}


def test_vault_sku_decides_the_key_types(world: World) -> None:
    standard = world.mgmt.create_vault("std1", "rg")
    assert standard.sku == "standard" and world.vault.sku == "premium"
    for kty in ("RSA-HSM", "EC-HSM"):
        with pytest.raises(BadParameter, match="Hardware key operation not allowed on standard vault"):
            world.keys.create_key(standard, "k", kty=kty)
        world.keys.create_key(world.vault, "k", kty=kty)
    for vault in (standard, world.vault):
        with pytest.raises(BadParameter, match="Invalid kty value: oct") as e:
            world.keys.create_key(vault, "k", kty="oct")
        assert e.value.inner_code == "KeyTypeNotSupported"
        with pytest.raises(BadParameter, match="Invalid kty value: oct"):
            world.keys.import_key(vault, "k", {"kty": "oct", "k": "AAAAAAAAAAAAAAAAAAAAAA"})
    with pytest.raises(BadParameter, match="Invalid kty value: oct-HSM"):
        world.keys.create_key(standard, "k", kty="oct-HSM")
    with pytest.raises(BadParameter, match="Hardware key operation"):  # Hsm: true makes it RSA-HSM
        world.keys.import_key(standard, "k", {"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB"}, hsm=True)
    with pytest.raises(BadParameter, match="standard or premium"):
        world.mgmt.create_vault("bad1", "rg", sku="gold")


@pytest.mark.parametrize(
    ("kty", "ops", "message"),
    [
        ("EC", ["wrapKey", "unwrapKey"], 'Unsupported key operation(s): "wrapKey", "unwrapKey". '
         'Supported values are "sign", "verify".'),
        ("RSA", ["sign", "export"], '"export". Supported values are "encrypt", "decrypt", "sign", "verify", '
         '"wrapKey", "unwrapKey".'),
        ("oct-HSM", ["import"], '"import". Supported values are "encrypt", "decrypt", "sign", "verify"'),
    ],
)  # fmt: skip
def test_key_ops_follow_the_key_type(world: World, kty: str, ops: list[str], message: str) -> None:
    with pytest.raises(BadParameter) as e:
        world.keys.create_key(world.vault, "k", kty=kty, changes=KeyChanges(key_ops=ops))
    assert message in e.value.message
    key = world.keys.create_key(world.vault, "k", kty=kty)
    with pytest.raises(BadParameter) as e:
        world.keys.update_key(world.vault, "k", None, KeyChanges(key_ops=ops))
    assert message in e.value.message
    assert world.keys.get_key(world.vault, "k").key_ops == key.key_ops  # unchanged


def test_rotation_drops_key_ops_a_stored_key_should_never_have_had(world: World) -> None:
    key = world.keys.create_key(world.vault, "legacy", kty="EC")
    with world.store.write() as tx:  # as stored by a kluis that did not check key_ops per type
        v = tx.get_version(world.vault.vault_id, "key", "legacy", key.version)
        assert v is not None
        v.props = {**v.props, "key_ops": ["sign", "wrapKey", "verify"]}
        tx.update_version(v)
    rotated = world.keys.rotate_key(world.vault, "legacy")
    assert rotated.key_ops == ["sign", "verify"]

"""Backup / restore of one object with all its versions: roundtrip, tampering, other tenants, other kinds."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kluis.crypto import Sealer
from kluis.domain import backup as backup_module
from kluis.domain.backup import BackupEnvelope, ObjectBackup
from kluis.domain.errors import BadParameter, Conflict, NotFound
from kluis.domain.lifecycle import Lifecycle, ObjectKind
from kluis.domain.views import KeyChanges
from kluis.store import VaultRecord
from tests.domain.conftest import World

PREFIX = "kluis-key-backup-v2."


def _other_vault(world: World, name: str = "vault2") -> VaultRecord:
    return world.mgmt.create_vault(name, "rg", creator_object_id="owner-oid")


def _backup_for(world: World, tenant: str) -> ObjectBackup:
    envelope = BackupEnvelope(Sealer(world.sealer.derive(b"backup")), tenant)
    return ObjectBackup(world.keys.lifecycle, world.store, envelope)


def test_backup_restore_roundtrip_and_tamper(world: World) -> None:
    a = world.keys.create_key(world.vault, "bk", kty="EC")
    b = world.keys.create_key(world.vault, "bk", kty="EC")
    blob = world.backup.backup(world.vault, "bk")
    with pytest.raises(Conflict):
        world.backup.restore(world.vault, blob)
    other = world.mgmt.create_vault("vault2", "rg", creator_object_id="owner-oid")
    restored = world.backup.restore(other, blob)
    assert restored.version == b.version
    assert world.keys.get_key(other, "bk", a.version).jwk == a.jwk
    tampered = blob[:-5] + (b"A" if blob[-5:-4] != b"A" else b"B") + blob[-4:]
    with pytest.raises(BadParameter):
        world.backup.restore(world.mgmt.create_vault("vault3", "rg", creator_object_id="owner-oid"), tampered)


def test_every_version_attribute_and_the_policy_survive(world: World) -> None:
    old = world.keys.create_key(world.vault, "Bk", kty="EC", changes=KeyChanges(tags={"a": "1"}, nbf=5))
    world.keys.update_key(world.vault, "bk", old.version, KeyChanges(enabled=False, key_ops=["verify"]))
    new = world.keys.create_key(world.vault, "bk", kty="EC", curve="P-384")
    policy = {"lifetimeActions": [{"trigger": {"timeAfterCreate": "P30D"}, "action": {"type": "Rotate"}}]}
    world.keys.update_rotation_policy(world.vault, "bk", policy)
    blob = world.backup.backup(world.vault, "bk")
    assert blob.startswith(PREFIX.encode()) and b"P-384" not in blob  # opaque
    other = _other_vault(world)
    world.clock.t += 1000
    restored = world.backup.restore(other, blob)
    assert (restored.name, restored.version) == ("Bk", new.version)
    before = world.keys.get_key(world.vault, "bk", old.version)
    after = world.keys.get_key(other, "bk", old.version)
    assert (after.enabled, after.nbf, after.tags, after.key_ops, after.jwk, after.created) == (
        before.enabled, before.nbf, before.tags, before.key_ops, before.jwk, before.created,
    )  # fmt: skip
    assert world.keys.get_rotation_policy(other, "bk")[1] == world.keys.get_rotation_policy(world.vault, "bk")[1]
    assert [v.version for v in world.keys.list_versions(other, "bk", maxresults=None, token=None).items] == [
        old.version, new.version,
    ]  # fmt: skip
    signed = world.ops.sign(other, "bk", None, "ES384", bytes(48))  # the material works in its new vault
    assert world.ops.verify(world.vault, "bk", None, "ES384", bytes(48), signed.value)


def test_restore_needs_a_free_name(world: World) -> None:
    world.keys.create_key(world.vault, "k", kty="EC")
    blob = world.backup.backup(world.vault, "k")
    world.keys.lifecycle.delete(world.vault, "k")
    with pytest.raises(Conflict):
        world.backup.restore(world.vault, blob)  # deleted but recoverable still holds the name
    world.keys.lifecycle.purge(world.vault, "k")
    assert world.backup.restore(world.vault, blob).name == "k"
    with pytest.raises(NotFound):
        world.backup.backup(world.vault, "missing")


def test_another_tenant_cannot_open_it(world: World) -> None:
    world.keys.create_key(world.vault, "k", kty="EC")
    blob = _backup_for(world, "t").backup(world.vault, "k")
    with pytest.raises(BadParameter, match="another tenant"):
        _backup_for(world, "other-tenant").restore(_other_vault(world), blob)


def test_another_kind_cannot_open_it(world: World) -> None:
    world.keys.create_key(world.vault, "k", kty="EC")
    blob = world.backup.backup(world.vault, "k")
    secret = ObjectKind("secret", "Secret", frozenset(), "SecretDisabled", "SecretExpired", "SecretNotYetValid")
    envelope = BackupEnvelope(Sealer(world.sealer.derive(b"backup")), "t")
    secrets = ObjectBackup(Lifecycle(secret, world.store, world.clock, world.sealer), world.store, envelope)
    with pytest.raises(BadParameter):
        secrets.restore(_other_vault(world), blob)
    relabelled = b"kluis-secret-backup-v2." + blob[len(PREFIX) :]  # same ciphertext, other kind's prefix
    with pytest.raises(BadParameter):
        secrets.restore(_other_vault(world, "vault3"), relabelled)


def test_only_the_exact_encoding_opens() -> None:
    envelope = BackupEnvelope(Sealer(bytes(32)), "t")
    blob = envelope.seal("p.", {"a": 1})
    assert envelope.open("p.", blob) == {"a": 1}
    for bad in (blob + b"=", blob + b"A", b"q." + blob[2:], blob.replace(b"p.", b"", 1), b"p.!!!!", b""):
        with pytest.raises(BadParameter):
            envelope.open("p.", bad)
    listed = BackupEnvelope(Sealer(bytes(32)), "t").seal("p.", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(BadParameter):
        envelope.open("p.", listed)  # sealed by us, but not a document


def test_malformed_documents_are_bad_parameter(world: World) -> None:
    envelope = BackupEnvelope(Sealer(world.sealer.derive(b"backup")), "t")
    world.keys.create_key(world.vault, "k", kty="EC")
    good = envelope.open(PREFIX, world.backup.backup(world.vault, "k"))
    no_latest = {**good, "latest": "nope"}
    with pytest.raises(BadParameter, match="no current version"):
        world.backup.restore(_other_vault(world), envelope.seal(PREFIX, no_latest))
    target = _other_vault(world, "vault4")
    for doc in ({}, {**good, "versions": [{"version": "v"}]}, {**good, "versions": 5}):
        with pytest.raises(BadParameter, match="invalid"):
            world.backup.restore(target, envelope.seal(PREFIX, doc))


def test_too_many_versions(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_module, "MAX_BACKUP_VERSIONS", 2)
    for _ in range(3):
        world.keys.create_key(world.vault, "many", kty="EC")
    with pytest.raises(BadParameter, match="more than 2 versions"):
        world.backup.backup(world.vault, "many")


def test_legacy_formats_are_offered_to_the_hook(world: World) -> None:
    seen: list[bytes] = []
    envelope = BackupEnvelope(Sealer(world.sealer.derive(b"backup")), "t")

    def decline(blob: bytes) -> dict[str, Any] | None:
        seen.append(blob)
        return None

    hooked = ObjectBackup(world.keys.lifecycle, world.store, envelope, legacy=decline)
    world.keys.create_key(world.vault, "k", kty="EC")
    current = hooked.backup(world.vault, "k")
    hooked.restore(_other_vault(world), current)
    assert seen == []  # a current blob never reaches the hook
    with pytest.raises(BadParameter):
        hooked.restore(world.vault, b"old-format" + base64.b64encode(b"x"))
    assert seen == [b"old-format" + base64.b64encode(b"x")]  # offered, declined, then refused

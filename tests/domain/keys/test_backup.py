"""Key backups of the first kluis release (kluis-key-backup-v1.) still restore, through the shared envelope."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kluis.crypto import Sealer
from kluis.domain.backup import BackupEnvelope, ObjectBackup
from kluis.domain.errors import BadParameter
from kluis.domain.keys.backup import LEGACY_PREFIX, open_legacy_key_backup
from kluis.domain.views import KeyChanges
from tests.domain.conftest import World


def _envelope(world: World, tenant: str = "t") -> BackupEnvelope:
    return BackupEnvelope(Sealer(world.sealer.derive(b"backup")), tenant)


def _v1_doc(world: World, name: str) -> dict[str, Any]:
    """What the first release sealed: the key's columns of that schema, JSON text where it stored text."""
    obj, _ = world.keys.lifecycle.read(world.vault, name)
    versions = world.keys.list_versions(world.vault, name, maxresults=None, token=None).items
    out = []
    for view in versions:
        _, rec = world.keys.lifecycle.read(world.vault, name, view.version)
        out.append(
            {
                "version": rec.version,
                "private": base64.b64encode(world.keys.lifecycle.unseal(rec)).decode(),
                "enabled": rec.enabled, "nbf": rec.nbf, "exp": rec.exp,
                "created": rec.created, "updated": rec.updated,
                "tags": json.dumps(rec.tags), "kty": rec.props["kty"],
                "public_jwk": json.dumps(rec.props["jwk"]), "key_ops": json.dumps(rec.props["key_ops"]),
                "exportable": rec.props["exportable"],
                "release_policy": json.dumps(rec.props["release_policy"]) if rec.props["release_policy"] else "",
            }
        )  # fmt: skip
    return {
        "name": obj.name, "created": obj.created, "latest": obj.latest_version,
        "rotation_policy": obj.policy, "versions": out,
    }  # fmt: skip


def test_not_a_v1_blob_is_left_to_the_caller(world: World) -> None:
    assert open_legacy_key_backup(_envelope(world), b"kluis-key-backup-v2.AAAA") is None
    assert open_legacy_key_backup(_envelope(world), b"") is None


def test_a_v1_blob_becomes_the_current_document(world: World) -> None:
    view = world.keys.create_key(world.vault, "Old", kty="EC", changes=KeyChanges(tags={"a": "1"}, exp=4_000_000_000))
    doc = open_legacy_key_backup(_envelope(world), _envelope(world).seal(LEGACY_PREFIX, _v1_doc(world, "Old")))
    assert doc is not None
    assert (doc["name"], doc["latest"], doc["policy"]) == ("Old", view.version, None)
    (version,) = doc["versions"]
    assert version["tags"] == {"a": "1"} and version["exp"] == 4_000_000_000
    assert version["props"] == {
        "kty": "EC", "jwk": view.jwk, "key_ops": ["sign", "verify"], "exportable": False, "release_policy": None,
    }  # fmt: skip


def test_a_v1_blob_restores_a_working_key(world: World) -> None:
    world.keys.create_key(world.vault, "old", kty="EC")
    second = world.keys.create_key(world.vault, "old", kty="EC", curve="P-521")
    blob = _envelope(world).seal(LEGACY_PREFIX, _v1_doc(world, "old"))
    envelope = _envelope(world)
    backup = ObjectBackup(
        world.keys.lifecycle, world.store, envelope, legacy=lambda b: open_legacy_key_backup(envelope, b)
    )
    target = world.mgmt.create_vault("vault2", "rg", creator_object_id="owner-oid")
    restored = backup.restore(target, blob)
    assert restored.version == second.version and restored.jwk == second.jwk
    assert len(world.keys.list_versions(target, "old", maxresults=None, token=None).items) == 2
    sig = world.ops.sign(target, "old", None, "ES512", bytes(64))
    assert world.ops.verify(world.vault, "old", None, "ES512", bytes(64), sig.value)


def test_a_v1_blob_of_another_tenant_or_tampered_is_refused(world: World) -> None:
    world.keys.create_key(world.vault, "old", kty="EC")
    blob = _envelope(world, "other-tenant").seal(LEGACY_PREFIX, _v1_doc(world, "old"))
    with pytest.raises(BadParameter):
        open_legacy_key_backup(_envelope(world), blob)
    mine = _envelope(world).seal(LEGACY_PREFIX, _v1_doc(world, "old"))
    with pytest.raises(BadParameter):
        open_legacy_key_backup(_envelope(world), mine[:-6] + b"AAAAAA")

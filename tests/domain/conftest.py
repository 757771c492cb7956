from __future__ import annotations

from pathlib import Path

import pytest

from kluis.crypto import KeyPool, Sealer, new_kek
from kluis.domain.authorization import AccessPolicyAuthorizer, Caller
from kluis.domain.backup import BackupEnvelope, ObjectBackup
from kluis.domain.clock import Clock
from kluis.domain.housekeeping import Housekeeping
from kluis.domain.keys.operations import KeyOperations
from kluis.domain.keys.service import KeyService
from kluis.domain.management import Management
from kluis.store import ObjectRecord, PrincipalRecord, SqliteStore, VaultRecord


class FakeClock(Clock):
    def __init__(self, start: int = 1_800_000_000) -> None:
        super().__init__()
        self.t = start

    def now_float(self) -> float:
        return float(self.t)


class World:
    def __init__(self, tmp: Path) -> None:
        self.store = SqliteStore(tmp / "k.db", synchronous="OFF")
        self.clock = FakeClock()
        self.sealer = Sealer(new_kek())
        self.mgmt = Management(self.store, self.clock)
        self.keys = KeyService(self.store, self.sealer, self.clock, pool=KeyPool(sizes={2048: 0}))
        self.ops = KeyOperations(self.keys)
        self.backup = ObjectBackup(
            self.keys.lifecycle, self.store, BackupEnvelope(Sealer(self.sealer.derive(b"backup")), "t")
        )
        self.authorizer = AccessPolicyAuthorizer(self.store)
        self.housekeeping = Housekeeping(self.store, self.clock, {"key": self.keys.lifecycle}, {"key": self._rotate})
        self.owner = Caller("owner-oid", "owner-app", "t")
        self.mgmt.add_principal(PrincipalRecord("owner-oid", "owner-app", "owner", "h", False, 0))
        self.mgmt.create_group("rg")
        self.vault: VaultRecord = self.mgmt.create_vault(
            "vault1", "rg", creator_object_id="owner-oid", sku="premium"
        )  # premium: the tests use HSM key types

    def _rotate(self, vault: VaultRecord, obj: ObjectRecord) -> None:
        self.keys.rotate_key(vault, obj.name)

    def tick(self) -> tuple[int, int]:
        result = self.housekeeping.tick({v.vault_id: v for v in self.mgmt.list_vaults()})
        return result.purged, result.acted

    def principal(self, oid: str, *key_permissions: str) -> Caller:
        self.mgmt.add_principal(PrincipalRecord(oid, oid + "-app", oid, "h", False, 0))
        if key_permissions:
            self.mgmt.set_policy(self.vault.name, oid, keys=list(key_permissions))
        return Caller(oid, oid + "-app", "t")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)

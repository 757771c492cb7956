from __future__ import annotations

from pathlib import Path

import pytest

from kluis.crypto import KeyPool, Sealer, new_kek
from kluis.domain.clock import Clock
from kluis.domain.keys.backup import KeyBackup
from kluis.domain.keys.operations import KeyOperations
from kluis.domain.keys.service import KeyService
from kluis.domain.management import Management
from kluis.domain.permissions import Caller
from kluis.store import PrincipalRecord, SqliteStore, VaultRecord


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
        self.keys = KeyService(
            self.store, self.sealer, self.clock, pool=KeyPool(sizes={2048: 0}), backup_key=b"b" * 32, tenant_id="t"
        )
        self.ops = KeyOperations(self.store, self.clock, self.keys)
        self.backup = KeyBackup(self.store, self.keys, Sealer(self.sealer.derive(b"backup")), "t")
        self.owner = Caller("owner-oid", "owner-app", "t")
        self.mgmt.add_principal(PrincipalRecord("owner-oid", "owner-app", "owner", "h", False, 0))
        self.mgmt.create_group("rg")
        self.vault: VaultRecord = self.mgmt.create_vault("vault1", "rg", creator_object_id="owner-oid")

    def principal(self, oid: str, *key_permissions: str) -> Caller:
        self.mgmt.add_principal(PrincipalRecord(oid, oid + "-app", oid, "h", False, 0))
        if key_permissions:
            self.mgmt.set_policy(self.vault.name, oid, keys=list(key_permissions))
        return Caller(oid, oid + "-app", "t")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)

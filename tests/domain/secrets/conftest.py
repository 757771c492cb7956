from __future__ import annotations

from pathlib import Path

import pytest

from kluis.crypto import Sealer
from kluis.domain.backup import BackupEnvelope, ObjectBackup
from kluis.domain.housekeeping import Housekeeping
from kluis.domain.secrets.service import SecretService
from tests.domain.conftest import World


class SecretWorld(World):
    """The domain world plus the secrets service, its backup and a housekeeper that knows secrets."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.secrets = SecretService(self.store, self.sealer, self.clock)
        self.envelope = BackupEnvelope(Sealer(self.sealer.derive(b"backup")), "t")
        self.secret_backup = ObjectBackup(self.secrets.lifecycle, self.store, self.envelope)
        self.housekeeping = Housekeeping(
            self.store, self.clock, {"key": self.keys.lifecycle, "secret": self.secrets.lifecycle}, {}
        )


@pytest.fixture
def sworld(tmp_path: Path) -> SecretWorld:
    return SecretWorld(tmp_path)

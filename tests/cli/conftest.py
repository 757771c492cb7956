"""A kluis in this process for CLI tests: a bootstrapped data dir whose AdminClient talks to the ASGI app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from kluis.api.app import KluisApp
from kluis.api.runtime import Runtime
from kluis.cli import common
from kluis.cli.client import AdminClient
from kluis.config import DataDir, ServerSettings
from kluis.identity.pki import ensure_tls


@dataclass
class InProcess:
    data_dir: DataDir
    runtime: Runtime
    app: KluisApp

    def admin_client(self) -> AdminClient:
        """The real AdminClient (it reads server.json, admin.json and the CA), talking to the app in-process."""
        client = AdminClient(self.data_dir)
        client._http.close()
        client._http = TestClient(self.app, base_url=client.base)
        return client


@pytest.fixture
def kluis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcess]:
    data_dir = DataDir(tmp_path / "data")
    settings = ServerSettings(port=9443, proxy_port=0, key_pool=0)
    runtime = Runtime(data_dir, settings, bootstrap=True)
    ensure_tls(data_dir.tls, ["localhost"])
    data_dir.write_server(settings)
    here = InProcess(data_dir, runtime, KluisApp(runtime))
    monkeypatch.setattr(common, "AdminClient", lambda d: here.admin_client())
    yield here
    runtime.close()

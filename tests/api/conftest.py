"""The ASGI app in-process (no server): a bootstrapped runtime, a TestClient, and tokens for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from kluis.api.app import KluisApp
from kluis.api.runtime import Runtime
from kluis.config import DataDir, ServerSettings
from kluis.identity.tokens import Principal

VAULT_AUDIENCE = "https://vault.azure.net"
MANAGEMENT_AUDIENCE = "https://management.azure.com"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(DataDir(tmp_path / "d"), ServerSettings(key_pool=0), bootstrap=True)
    yield rt
    rt.close()


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return TestClient(KluisApp(runtime), base_url="https://localhost:8443")


def token(rt: Runtime, audience: str = VAULT_AUDIENCE, object_id: str | None = None) -> str:
    """A token the runtime's issuer signs for ``object_id`` (default: the administrator)."""
    oid = object_id or rt.admin_object_id()
    with rt.store.read() as tx:
        p = tx.get_principal(oid)
    assert p is not None
    return rt.issuer.issue(Principal(p.object_id, p.app_id, rt.tenant_id), audience=audience, now=rt.clock.now())[0]


def auth(rt: Runtime, audience: str = VAULT_AUDIENCE, object_id: str | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {token(rt, audience, object_id)}"}

"""KluisServer: a real ``kluis serve`` on free ports that cleans up after itself, vaults with exact permissions."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError

from kluis.testing import KluisServer, ServerError, Vault, free_port

pytestmark = pytest.mark.slow


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_with_block_starts_serves_and_removes_everything() -> None:
    with KluisServer() as server:
        assert server.running and server.startup_seconds is not None
        data_dir, pid = server.data_dir, server.process.pid if server.process else 0
        vault = server.create_vault(key_permissions=["create", "get"])
        assert isinstance(vault, Vault) and vault.vault_url == f"https://{vault.name}.vault.azure.net"
        client = vault.key_client()
        assert client.create_ec_key("k").name == "k"
        with pytest.raises(HttpResponseError) as refused:
            client.begin_delete_key("k")
        assert refused.value.status_code == 403 and "delete" in str(refused.value)
    assert not data_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone


def test_an_exception_keeps_the_data_dir_and_log(capsys: pytest.CaptureFixture[str]) -> None:
    server = KluisServer()
    with pytest.raises(RuntimeError, match="boom"), server:
        raise RuntimeError("boom")
    try:
        assert "kluis listening on" in server.log_path.read_text()
        assert f"kept in {server.data_dir}" in capsys.readouterr().err
    finally:
        shutil.rmtree(server.data_dir)


def test_a_given_data_dir_is_kept_and_reused(tmp_path: Path) -> None:
    with KluisServer(tmp_path / "data") as server:
        tenant = server.admin("GET", "/vaults/default")["properties"]["tenantId"]
    assert (tmp_path / "data" / "kluis.db").exists()
    with KluisServer(tmp_path / "data") as again:
        assert again.admin("GET", "/vaults/default")["properties"]["tenantId"] == tenant


def test_a_server_that_cannot_start_says_why_and_where_the_log_is(tmp_path: Path) -> None:
    server = KluisServer(tmp_path / "data", extra_args=["--throttle-limit", "not-a-number"])
    with pytest.raises(ServerError, match=r"exited with code 2.*kluis\.log"):
        server.start()
    assert not server.running


def test_create_vault_without_permissions_grants_all_and_errors_are_server_errors(kluis_server: KluisServer) -> None:
    vault = kluis_server.create_vault()
    policies = kluis_server.admin("GET", f"/vaults/{vault.name}")["properties"]["accessPolicies"]
    mine = next(p for p in policies if p["objectId"] == vault.object_id)
    assert "purge" in mine["permissions"]["keys"] and "set" in mine["permissions"]["secrets"]
    with pytest.raises(ServerError, match="permission"):
        kluis_server.create_vault(key_permissions=["fly"])
    kluis_server.delete_vault(vault)
    with pytest.raises(ServerError):
        kluis_server.admin("GET", f"/vaults/{vault.name}")


def test_clock_advance_reset(kluis_server: KluisServer) -> None:
    clock = kluis_server.clock
    start = clock.now()
    assert set(clock.advance(days=1, hours=1)) >= {"purged", "rotated"}
    assert clock.offset == 25 * 3600 and clock.now() >= start + 25 * 3600
    clock.advance(seconds=-3600)
    assert clock.offset == 24 * 3600
    clock.reset()
    assert clock.offset == 0


def test_env_is_kluis_env_for_the_administrator(kluis_server: KluisServer) -> None:
    env = kluis_server.env("default")
    assert env["HTTPS_PROXY"] == kluis_server.proxy_url and env["KEY_VAULT_NAME"] == "default"
    assert env["AZURE_CLIENT_ID"] == json.loads((kluis_server.data_dir / "admin.json").read_text())["appId"]


def test_startup_and_per_vault_medians(kluis_server: KluisServer) -> None:
    """The note's figures: session start (3 fresh servers) and a fresh vault + principal + policy (25)."""
    starts = []
    for _ in range(3):
        with KluisServer() as server:
            assert server.startup_seconds is not None
            starts.append(server.startup_seconds)
    per_vault = []
    for _ in range(25):
        began = time.perf_counter()
        kluis_server.create_vault(key_permissions=["get", "sign"])
        per_vault.append(time.perf_counter() - began)
    start_median, vault_median = statistics.median(starts), statistics.median(per_vault)
    print(f"session start median {start_median:.2f} s {starts}; per vault median {vault_median * 1000:.1f} ms")
    assert start_median < 10 and vault_median < 0.5  # targets 2 s / 50 ms; the bounds only catch regressions

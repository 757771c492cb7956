"""The az-shaped management verbs against a running server (issue: kluis serve)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError

from tests.e2e.conftest import Principal, credential, unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow


def test_groups_vaults_policies_and_principals(kluis: KluisServer) -> None:
    rg, vault = unique("rg"), unique("v")
    assert kluis.cli_json("group", "create", "-n", rg)["name"] == rg
    created = kluis.cli_json("keyvault", "create", "-n", vault, "-g", rg, "--retention-days", "30")
    assert created["properties"]["softDeleteRetentionInDays"] == 30
    sp = kluis.cli_json("ad", "sp", "create-for-rbac", "-n", unique("app"))
    assert set(sp) == {"appId", "displayName", "password", "tenant"} and len(sp["password"]) >= 32
    policy = kluis.cli_json(
        "keyvault", "set-policy", "-n", vault, "--spn", sp["appId"],
        "--key-permissions", "all", "--secret-permissions", "get", "list",
    )  # fmt: skip
    assert "purge" in policy["permissions"]["keys"] and policy["permissions"]["secrets"] == ["get", "list"]
    shown = kluis.cli_json("keyvault", "show", "-n", vault)
    by_oid = {p["objectId"]: p for p in shown["properties"]["accessPolicies"]}
    assert len(by_oid) == 2  # the creator (administrator) and the service principal
    table = kluis.cli("keyvault", "list", "-g", rg, "-o", "table").stdout
    assert vault in table
    assert vault in kluis.cli("keyvault", "list", "-o", "tsv").stdout
    kluis.cli("keyvault", "delete-policy", "-n", vault, "--spn", sp["appId"])
    assert len(kluis.cli_json("keyvault", "show", "-n", vault)["properties"]["accessPolicies"]) == 1
    deleted = kluis.cli_json("group", "delete", "-n", rg, "--yes")
    assert deleted["deletedVaults"] == [vault]
    missing = kluis.cli("keyvault", "show", "-n", vault, check=False)
    assert missing.returncode == 1 and "VaultNotFound" in missing.stderr
    bad = kluis.cli(
        "keyvault", "set-policy", "-n", "nosuchvault", "--spn", sp["appId"], "--key-permissions", "get", check=False
    )
    assert bad.returncode == 1 and "ERROR" in bad.stderr and "Traceback" not in bad.stderr
    wrong = kluis.cli("keyvault", "create", "-n", "x_y", "-g", "kluis", check=False)
    assert wrong.returncode == 1 and "VaultNameNotValid" in wrong.stderr


def test_first_start_files_and_clean_ctrl_c(tmp_path: Path) -> None:
    server = KluisServer(tmp_path / "data").start()
    data = tmp_path / "data"
    assert (data.stat().st_mode & 0o777) == 0o700
    for private in ("admin.json", "kek.key", "tls/ca-key.pem", "tls/server-key.pem"):
        assert ((data / private).stat().st_mode & 0o777) == 0o600, private
    admin = json.loads((data / "admin.json").read_text())
    assert {"tenant", "appId", "password"} <= set(admin)
    env = server.cli("env", "-n", "default").stdout
    assert f"REQUESTS_CA_BUNDLE={data / 'ca-bundle.pem'}" in env and "NODE_EXTRA_CA_CERTS" in env
    assert server.stop() == 0  # Ctrl-C: workers stop, the process exits cleanly


def test_only_a_hash_of_the_secret_is_stored(kluis: KluisServer) -> None:
    sp = kluis.cli_json("ad", "sp", "create-for-rbac", "-n", unique("hashed"))
    for f in kluis.data_dir.glob("kluis.db*"):
        assert sp["password"].encode() not in f.read_bytes(), f.name


def test_proxy_refuses_other_hosts(kluis: KluisServer) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", kluis.proxy_port), timeout=10) as sock:
        sock.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 403") and "--proxy-passthrough" in answer
    with socket.create_connection(("127.0.0.1", kluis.proxy_port), timeout=10) as sock:
        sock.sendall(b"CONNECT myvault.vault.azure.net:443 HTTP/1.1\r\nHost: myvault.vault.azure.net:443\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_create_for_rbac_with_an_existing_name_patches_it_like_az(
    kluis: KluisServer, make_vault: Callable[..., str]
) -> None:
    """az reuses the application of that display name: same appId, a new password, the old one revoked."""
    name, vault = unique("again"), make_vault()
    first = kluis.cli_json("ad", "sp", "create-for-rbac", "-n", name)
    kluis.cli("keyvault", "set-policy", "-n", vault, "--spn", first["appId"], "--key-permissions", "get")
    again = kluis.cli("ad", "sp", "create-for-rbac", "-n", name, "-o", "json")
    second = json.loads(again.stdout)
    assert second["appId"] == first["appId"] and second["password"] != first["password"]
    assert second["displayName"] == name and second["tenant"] == first["tenant"]
    assert again.stderr.startswith("WARNING: Found an existing application instance: (id) ")
    assert [p["appId"] for p in kluis.cli_json("ad", "sp", "list") if p["displayName"] == name] == [first["appId"]]
    scope = "https://vault.azure.net/.default"
    assert credential(kluis, Principal(first["appId"], second["password"], first["tenant"])).get_token(scope).token
    with pytest.raises(ClientAuthenticationError):
        credential(kluis, Principal(first["appId"], first["password"], first["tenant"])).get_token(scope)
    policies = kluis.cli_json("keyvault", "show", "-n", vault)["properties"]["accessPolicies"]
    sp = kluis.cli_json("ad", "sp", "show", "--id", first["appId"])
    assert sp["id"] in {p["objectId"] for p in policies}  # the same principal: its access policy still applies
    taken = kluis.cli("ad", "sp", "create-for-rbac", "-n", "kluis-admin", check=False)  # the administrator's name
    assert taken.returncode == 1 and taken.stderr.startswith("ERROR: (BadParameter)"), taken.stderr
    a = kluis.admin()
    assert credential(kluis, Principal(a["appId"], a["password"], a["tenant"])).get_token(scope).token  # untouched

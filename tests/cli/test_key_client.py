"""Addressing for key verbs: --vault-name/--name/--version or --id, and which endpoint the SDK client uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kluis.cli.client import CliError
from kluis.cli.key_client import KeyRef, connect, parse_key_id, resolve_ref
from kluis.config import DataDir, ServerSettings

KID = "https://myvault.vault.azure.net/keys/k1/0123456789abcdef"


# -- addressing ------------------------------------------------------------------------------------
def test_parse_key_id_vault_hosts() -> None:
    assert parse_key_id(KID) == KeyRef("myvault", "k1", "0123456789abcdef")
    assert parse_key_id("https://MyVault.vault.azure.net/keys/k1/") == KeyRef("myvault", "k1", None)
    assert parse_key_id("https://myvault.vault.azure.net/deletedkeys/k1") == KeyRef("myvault", "k1")
    assert parse_key_id("https://myvault.vault.azure.net") == KeyRef("myvault")
    assert parse_key_id("https://v2.localhost:8443/keys/k") == KeyRef("v2", "k")
    assert parse_key_id("https://v3.kv.example.com/keys/k", ["kv.example.com"]) == KeyRef("v3", "k")


def test_parse_key_id_default_vault_is_direct() -> None:
    assert parse_key_id("https://localhost:8443/keys/k/v") == KeyRef("default", "k", "v", direct=True)
    assert parse_key_id("https://127.0.0.1:8443/keys/k") == KeyRef("default", "k", None, direct=True)
    assert parse_key_id("https://a.b.vault.azure.net/keys/k").direct  # two labels: not a vault host


@pytest.mark.parametrize(
    "bad",
    [
        "http://myvault.vault.azure.net/keys/k",
        "myvault/keys/k",
        "https://myvault.vault.azure.net/secrets/s",
        "https://myvault.vault.azure.net/keys/a/b/c",
        "https://myvault.vault.azure.net/deletedkeys/a/b",
    ],
)
def test_parse_key_id_rejects(bad: str) -> None:
    with pytest.raises(CliError):
        parse_key_id(bad)


def test_resolve_ref() -> None:
    assert resolve_ref("v", "k", None, "ver") == KeyRef("v", "k", "ver")
    assert resolve_ref(None, None, KID, None) == KeyRef("myvault", "k1", "0123456789abcdef")
    assert resolve_ref(None, None, KID, "other").version == "other"
    assert resolve_ref("v", None, None, need_name=False) == KeyRef("v")
    with pytest.raises(CliError, match="cannot be combined"):
        resolve_ref("v", None, KID)
    with pytest.raises(CliError, match="--name"):
        resolve_ref("v", None, None)
    with pytest.raises(CliError, match="--vault-name"):
        resolve_ref(None, "k", None)
    with pytest.raises(CliError, match="must name a key"):
        resolve_ref(None, None, "https://myvault.vault.azure.net")


def _data_dir(tmp_path: Path, proxy_port: int) -> DataDir:
    d = DataDir(tmp_path).ensure()
    d.write_server(ServerSettings(port=9443, proxy_port=proxy_port))
    d.admin.write_text(json.dumps({"tenant": "t", "appId": "a", "password": "p"}))
    (d.tls).mkdir()
    return d


def test_connect_picks_proxy_or_direct(tmp_path: Path) -> None:
    proxied = connect(_data_dir(tmp_path / "p", 9080), KeyRef("named"))
    assert proxied.vault_url == "https://named.vault.azure.net"
    direct = _data_dir(tmp_path / "d", 0)
    assert connect(direct, KeyRef("default")).vault_url == "https://localhost:9443"
    with pytest.raises(CliError, match="proxy, which is off"):
        connect(direct, KeyRef("named"))

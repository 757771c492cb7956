"""Which endpoint an SDK client of any kind is connected to: through the proxy, or directly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.keyvault.keys import KeyClient
from azure.keyvault.secrets import SecretClient

from kluis.cli.client import CliError
from kluis.cli.object_ref import ObjectRef
from kluis.cli.sdk_client import connect
from kluis.config import DataDir, ServerSettings


def _data_dir(tmp_path: Path, proxy_port: int) -> DataDir:
    d = DataDir(tmp_path).ensure()
    d.write_server(ServerSettings(port=9443, proxy_port=proxy_port))
    d.admin.write_text(json.dumps({"tenant": "t", "appId": "a", "password": "p"}))
    (d.tls).mkdir()
    return d


@pytest.mark.parametrize("client_class", [KeyClient, SecretClient])
def test_connect_picks_proxy_or_direct(tmp_path: Path, client_class: type[KeyClient | SecretClient]) -> None:
    proxied = connect(_data_dir(tmp_path / "p", 9080), ObjectRef("named"), client_class)
    assert isinstance(proxied, client_class) and proxied.vault_url == "https://named.vault.azure.net"
    direct = _data_dir(tmp_path / "d", 0)
    assert connect(direct, ObjectRef("default"), client_class).vault_url == "https://localhost:9443"
    with pytest.raises(CliError, match="proxy, which is off"):
        connect(direct, ObjectRef("named"), client_class)


def test_an_id_on_localhost_goes_direct_even_with_the_proxy_on(tmp_path: Path) -> None:
    client = connect(_data_dir(tmp_path, 9080), ObjectRef("default", "k", direct=True), KeyClient)
    assert client.vault_url == "https://localhost:9443"


def test_no_server_configured(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="No kluis server configured"):
        connect(DataDir(tmp_path).ensure(), ObjectRef("default"), KeyClient)

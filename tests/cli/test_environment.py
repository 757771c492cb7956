from __future__ import annotations

import json
from pathlib import Path

import pytest

from kluis.cli.client import CliError
from kluis.cli.environment import build_env
from kluis.config import DataDir, ServerSettings, write_private


@pytest.fixture
def data_dir(tmp_path: Path) -> DataDir:
    d = DataDir(tmp_path / "d").ensure()
    d.write_server(ServerSettings(port=9443, proxy_port=9080))
    write_private(d.admin, json.dumps({"tenant": "t1", "appId": "admin-app", "password": "pw", "objectId": "o"}))
    return d


def test_zero_change_mode(data_dir: DataDir) -> None:
    env = build_env(data_dir, vault_name="myvault")
    assert env["HTTPS_PROXY"] == "http://127.0.0.1:9080"
    assert env["VAULT_URL"] == "https://myvault.vault.azure.net" and env["KEY_VAULT_NAME"] == "myvault"
    assert env["REQUESTS_CA_BUNDLE"] == str(data_dir.ca_bundle)
    assert env["NODE_EXTRA_CA_CERTS"] == str(data_dir.tls / "ca.pem")
    assert (env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"]) == ("t1", "admin-app", "pw")
    assert "SSL_CERT_FILE" not in env


def test_service_principal_and_managed_identity(data_dir: DataDir) -> None:
    env = build_env(data_dir, vault_name="v", client_id="sp", client_secret="s3")
    assert env["AZURE_CLIENT_ID"] == "sp" and env["AZURE_CLIENT_SECRET"] == "s3"
    mi = build_env(data_dir, vault_name="v", managed_identity=True, client_id="sp", client_secret="s3")
    assert mi["IDENTITY_ENDPOINT"] == "https://localhost:9443/msi/token" and mi["IDENTITY_HEADER"] == "sp:s3"
    assert "AZURE_CLIENT_SECRET" not in mi


def test_direct_mode(data_dir: DataDir) -> None:
    env = build_env(data_dir, vault_name="default", direct=True)
    assert env["VAULT_URL"] == env["AZURE_AUTHORITY_HOST"] == "https://localhost:9443"
    assert env["AZURE_TENANT_ID"] == "adfs" and "HTTPS_PROXY" not in env
    with pytest.raises(CliError, match="default vault"):
        build_env(data_dir, vault_name="other", direct=True)
    data_dir.write_server(ServerSettings(port=9443, domains=["kms.example"]))
    assert build_env(data_dir, vault_name="other", direct=True)["VAULT_URL"] == "https://other.kms.example:9443"


def test_missing_server_is_a_readable_error(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="kluis serve"):
        build_env(DataDir(tmp_path / "none"), vault_name="v")

"""How CLI commands reach the server: server.json + admin.json + the CA, a token, the management API."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest

from kluis.cli.client import AdminClient, CliError, load_credentials, load_settings
from kluis.config import DataDir, ServerSettings
from tests.cli.conftest import InProcess


def test_missing_files_are_one_readable_error(tmp_path: Path) -> None:
    d = DataDir(tmp_path)
    with pytest.raises(CliError, match=r"No kluis server configured in .*; run `kluis serve` first"):
        load_settings(d)
    with pytest.raises(CliError, match="No kluis administrator credential"):
        load_credentials(d)
    with pytest.raises(CliError, match="No kluis server configured"):
        AdminClient(d)


def test_credentials_and_settings_are_read(tmp_path: Path) -> None:
    d = DataDir(tmp_path).ensure()
    d.admin.write_text(json.dumps({"tenant": "t", "appId": "a", "password": "p"}))
    creds = load_credentials(d)
    assert (creds.tenant, creds.app_id, creds.password, creds.object_id) == ("t", "a", "p", "")
    d.write_server(ServerSettings(port=1234))
    assert load_settings(d).port == 1234


def test_calls_sign_in_and_return_json(kluis: InProcess) -> None:
    client = kluis.admin_client()
    assert client.base == "https://localhost:9443"
    assert [g["name"] for g in client.call("GET", "/groups")["value"]] == ["kluis"]
    token = client._token
    assert token is not None
    claims = kluis.runtime.verifier.verify(token, audiences={"https://management.azure.com"})
    assert claims.object_id == kluis.runtime.admin_object_id()
    client.call("PUT", "/vaults/cli-vault", {"group": "kluis"})
    assert {v["name"] for v in client.call("GET", "/vaults", group="kluis")["value"]} == {"default", "cli-vault"}
    assert client.call("DELETE", "/vaults/cli-vault") is None  # 204: no body


def test_api_errors_are_code_and_message(kluis: InProcess) -> None:
    with pytest.raises(CliError, match=r"^\(ResourceGroupNotFound\) Resource group 'nope' could not be found\.$"):
        kluis.admin_client().call("GET", "/groups/nope")


def test_a_wrong_secret_is_a_sign_in_failure(kluis: InProcess) -> None:
    creds = json.loads(kluis.data_dir.admin.read_text())
    kluis.data_dir.admin.write_text(json.dumps({**creds, "password": "wrong"}))
    with pytest.raises(CliError, match=r"^Sign-in failed: AADSTS7000215"):
        kluis.admin_client().call("GET", "/groups")


def test_a_non_json_answer(kluis: InProcess) -> None:
    client = kluis.admin_client()
    client._token = "t"
    client._http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(502, text="<html>bad gateway")))
    with pytest.raises(CliError, match=r"Unexpected answer from kluis \(502\): <html>bad gateway"):
        client.call("GET", "/groups")


def test_nobody_listening(kluis: InProcess) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    kluis.data_dir.write_server(ServerSettings(port=port, proxy_port=0))
    client = AdminClient(kluis.data_dir)
    with pytest.raises(CliError, match=f"Cannot reach kluis at https://localhost:{port}: .* Is `kluis serve` running"):
        client.call("GET", "/groups")

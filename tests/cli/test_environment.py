from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kluis.cli.client import CliError
from kluis.cli.environment import EnvFormat, build_env, render_env
from kluis.config import DataDir, ServerSettings, write_private
from kluis.identity.pki import ensure_tls
from kluis.testing import KluisServer, free_port


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
    bundle = str(data_dir.ca_bundle)
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == env["CURL_CA_BUNDLE"] == bundle
    assert env["NODE_EXTRA_CA_CERTS"] == str(data_dir.tls / "ca.pem")
    assert env["JAVA_TOOL_OPTIONS"] == (
        f"-Djavax.net.ssl.trustStore={data_dir.path / 'ca-bundle.p12'} -Djavax.net.ssl.trustStoreType=PKCS12"
        " -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=9080"
    )
    assert (env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"]) == ("t1", "admin-app", "pw")


def test_trust_files_are_written_when_missing_or_older_than_the_ca(data_dir: DataDir) -> None:
    ca = ensure_tls(data_dir.tls, ["localhost"]).ca_cert
    p12 = data_dir.path / "ca-bundle.p12"
    assert not data_dir.ca_bundle.exists() and not p12.exists()
    build_env(data_dir, vault_name="vault1")
    assert data_dir.ca_bundle.read_bytes().endswith(ca.read_bytes()) and p12.stat().st_size > 0
    p12.unlink()
    build_env(data_dir, vault_name="vault1")
    assert p12.exists()
    os.utime(data_dir.ca_bundle, (1, 1))
    build_env(data_dir, vault_name="vault1")
    assert data_dir.ca_bundle.stat().st_mtime >= ca.stat().st_mtime


def test_java_options_quote_a_path_with_spaces(tmp_path: Path) -> None:
    d = DataDir(tmp_path / "my data").ensure()
    d.write_server(ServerSettings(port=9443, proxy_port=9080))
    write_private(d.admin, json.dumps({"tenant": "t1", "appId": "a", "password": "p", "objectId": "o"}))
    opts = build_env(d, vault_name="default", direct=True)["JAVA_TOOL_OPTIONS"]
    assert opts == f"'-Djavax.net.ssl.trustStore={d.path / 'ca-bundle.p12'}' -Djavax.net.ssl.trustStoreType=PKCS12"


def test_service_principal_and_managed_identity(data_dir: DataDir) -> None:
    env = build_env(data_dir, vault_name="vault1", client_id="sp", client_secret="s3")
    assert env["AZURE_CLIENT_ID"] == "sp" and env["AZURE_CLIENT_SECRET"] == "s3"
    mi = build_env(data_dir, vault_name="vault1", managed_identity=True, client_id="sp", client_secret="s3")
    assert mi["IDENTITY_ENDPOINT"] == "https://localhost:9443/msi/token" and mi["IDENTITY_HEADER"] == "sp:s3"
    assert "AZURE_CLIENT_SECRET" not in mi


def test_direct_mode(data_dir: DataDir) -> None:
    env = build_env(data_dir, vault_name="default", direct=True)
    assert env["VAULT_URL"] == env["AZURE_AUTHORITY_HOST"] == "https://localhost:9443"
    assert env["AZURE_TENANT_ID"] == "adfs" and "HTTPS_PROXY" not in env
    assert env["SSL_CERT_FILE"] == str(data_dir.ca_bundle) and "proxyHost" not in env["JAVA_TOOL_OPTIONS"]
    with pytest.raises(CliError, match="default vault"):
        build_env(data_dir, vault_name="other", direct=True)
    data_dir.write_server(ServerSettings(port=9443, domains=["kms.example"]))
    assert build_env(data_dir, vault_name="other", direct=True)["VAULT_URL"] == "https://other.kms.example:9443"


def test_without_the_proxy_the_variables_are_direct_modes(data_dir: DataDir) -> None:
    """``--proxy-port 0`` printed HTTPS_PROXY=http://127.0.0.1:0 and -Dhttps.proxyPort=0, and every
    program failed with "Unable to connect to proxy" (new-user tester)."""
    data_dir.write_server(ServerSettings(port=9443, proxy_port=0))
    env = build_env(data_dir, vault_name="default")
    assert "HTTPS_PROXY" not in env and "proxyPort" not in env["JAVA_TOOL_OPTIONS"]
    assert env["VAULT_URL"] == env["AZURE_AUTHORITY_HOST"] == "https://localhost:9443"
    with pytest.raises(CliError, match=r"without its CONNECT proxy \(--proxy-port 0\).*with a --proxy-port"):
        build_env(data_dir, vault_name="other")


def test_the_callers_no_proxy_cannot_route_around_kluis(data_dir: DataDir) -> None:
    """``NO_PROXY=.vault.azure.net kluis exec ...`` kept the caller's NO_PROXY: the program skipped
    kluis's proxy and went to the real Azure with kluis's credentials (a tester's find). Proxy mode
    empties it; direct mode lists kluis's own names, so a caller's HTTPS_PROXY does not carry them."""
    env = build_env(data_dir, vault_name="myvault")
    assert env["NO_PROXY"] == env["no_proxy"] == ""
    direct = build_env(data_dir, vault_name="default", direct=True)
    assert direct["NO_PROXY"] == direct["no_proxy"] == "localhost,127.0.0.1,::1"
    data_dir.write_server(ServerSettings(port=9443, proxy_port=9080, domains=["kms.example"]))
    assert build_env(data_dir, vault_name="vault2", direct=True)["NO_PROXY"].endswith(",.kms.example")


@pytest.mark.parametrize("name", ["", "a b", "x", "-lead", "double--dash", "a" * 25])
def test_an_invalid_vault_name_is_refused(data_dir: DataDir, name: str) -> None:
    with pytest.raises(CliError, match="is invalid: use 3-24 letters"):
        build_env(data_dir, vault_name=name)


def test_missing_server_is_a_readable_error(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="kluis serve"):
        build_env(DataDir(tmp_path / "none"), vault_name="vault1")


# Values that break naive quoting: spaces, both quotes, $, backslashes, globs, #, a newline, non-ASCII.
TRICKY = {
    "PLAIN": "https://v.vault.azure.net",
    "SPACES": "/data dir/ca-bundle.pem",
    "SINGLE": "it's",
    "DOUBLE": 'say "hi"',
    "DOLLAR": "$HOME and ${PATH} and $(id) and `id`",
    "BACKSLASH": "C:\\temp\\new",
    "GLOB": "*.pem ?x [ab] ~ # not a comment",
    "NEWLINE": "line1\nline2",
    "UNICODE": "slütel ‘q’",
    "EMPTY": "",
}


def test_sh_is_todays_export_lines() -> None:
    assert render_env({"A": "x", "B": "a b"}) == "export A=x\nexport B='a b'\n"
    assert render_env({"A": "it's"}, EnvFormat.sh) == "export A='it'\"'\"'s'\n"


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_sh_round_trips_through_a_real_shell(shell: str) -> None:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed")
    script = render_env(TRICKY) + "".join(f'printf "%s\\0" "${k}"\n' for k in TRICKY)
    out = subprocess.run([path, "-c", script], capture_output=True, check=True, timeout=10, env={}).stdout
    assert out.decode().split("\0")[:-1] == list(TRICKY.values())


def test_dotenv_quoting() -> None:
    out = render_env(TRICKY, EnvFormat.dotenv).splitlines()
    assert out == [
        "PLAIN=https://v.vault.azure.net",
        "SPACES='/data dir/ca-bundle.pem'",
        'SINGLE="it\'s"',
        "DOUBLE='say \"hi\"'",
        "DOLLAR='$HOME and ${PATH} and $(id) and `id`'",  # single quotes: no interpolation in compose
        'BACKSLASH="C:\\\\temp\\\\new"',
        "GLOB='*.pem ?x [ab] ~ # not a comment'",
        'NEWLINE="line1\\nline2"',
        "UNICODE='sl\u00fctel \u2018q\u2019'",
        "EMPTY=",
    ]
    assert render_env({"X": "it's $5"}, EnvFormat.dotenv) == 'X="it\'s \\$5"\n'


def test_json_is_one_object_of_strings() -> None:
    assert json.loads(render_env(TRICKY, EnvFormat.json)) == TRICKY


def test_fish_quoting() -> None:
    out = render_env(TRICKY, EnvFormat.fish).splitlines()
    assert out[0] == "set -gx PLAIN 'https://v.vault.azure.net'"
    assert out[2] == "set -gx SINGLE 'it\\'s'"
    assert out[4] == "set -gx DOLLAR '$HOME and ${PATH} and $(id) and `id`'"
    assert out[5] == "set -gx BACKSLASH 'C:\\\\temp\\\\new'"
    fish = shutil.which("fish")
    if fish is not None:
        script = render_env(TRICKY, EnvFormat.fish) + "".join(f'printf "%s\\0" "${k}"\n' for k in TRICKY)
        out_bytes = subprocess.run([fish, "--no-config", "-c", script], capture_output=True, check=True).stdout
        assert out_bytes.decode().split("\0")[:-1] == list(TRICKY.values())


def test_powershell_quoting() -> None:
    out = render_env(TRICKY, EnvFormat.powershell).splitlines()
    assert out[0] == "$env:PLAIN = 'https://v.vault.azure.net'"
    assert out[2] == "$env:SINGLE = 'it''s'"
    assert out[4] == "$env:DOLLAR = '$HOME and ${PATH} and $(id) and `id`'"
    assert out[5] == "$env:BACKSLASH = 'C:\\temp\\new'"
    # PowerShell treats curly single quotes as quotes too.
    assert (
        render_env({"U": TRICKY["UNICODE"]}, EnvFormat.powershell)
        == "$env:U = 'sl\u00fctel \u2018\u2018q\u2019\u2019'\n"
    )


def test_names_and_nul_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="variable name"):
        render_env({"A B": "x"})
    with pytest.raises(ValueError, match="NUL"):
        render_env({"A": "x\0y"}, EnvFormat.json)


def test_env_and_exec_say_when_the_vault_or_the_server_is_missing(kluis_server: KluisServer, tmp_path: Path) -> None:
    """``kluis env -n nosuchvault`` and ``kluis exec`` against a stopped server exited 0 silently (new-user
    tester): a missing vault is an error, a server that does not answer a warning (the variables stay right)."""
    import sys

    def kluis(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
        return subprocess.run([sys.executable, "-m", "kluis", args[0], "--data-dir", str(data), *args[1:]],
                              capture_output=True, text=True, timeout=60, env=clean)  # fmt: skip

    served = Path(kluis_server.data_dir)
    ok = kluis("env", data=served)
    assert ok.returncode == 0 and ok.stderr == "" and "export VAULT_URL=" in ok.stdout
    missing = kluis("env", "-n", "nosuchvault", data=served)
    assert missing.returncode == 1 and missing.stdout == ""
    assert "kluis has no vault 'nosuchvault'; create it with `kluis keyvault create -n nosuchvault`" in missing.stderr
    ran = kluis("exec", "-n", "nosuchvault", "--", "true", data=served)
    assert ran.returncode == 1 and "no vault 'nosuchvault'" in ran.stderr

    stopped = DataDir(tmp_path / "stopped").ensure()  # configured, but nothing listens on its port
    stopped.write_server(ServerSettings(port=free_port(), proxy_port=0))
    write_private(stopped.admin, json.dumps({"tenant": "t", "appId": "a", "password": "p", "objectId": "o"}))
    ensure_tls(stopped.tls, ["localhost"])
    cold = kluis("env", data=stopped.path)
    assert cold.returncode == 0 and "export VAULT_URL=" in cold.stdout
    assert cold.stderr.startswith("warning: kluis is not answering at https://localhost:")

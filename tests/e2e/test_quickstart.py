"""Issue: the quickstart journey, end to end, with the official SDKs and the kluis CLI."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceExistsError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.keys import KeyClient

from tests.e2e.conftest import Principal, credential, unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow
QUICKSTART = Path(__file__).with_name("kv_keys.py")


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "HTTPS_PROXY", "https_proxy"))}
    env["REQUESTS_CA_BUNDLE"] = "/nonexistent-so-kluis-env-must-set-it"
    return env


def _run_quickstart(kluis: KluisServer, vault: str, key: str) -> subprocess.CompletedProcess[str]:
    """The seed program byte for byte, through `kluis exec` (zero-change mode)."""
    return subprocess.run(
        [sys.executable, "-m", "kluis", "exec", "-n", vault, "--", sys.executable, str(QUICKSTART)],
        input=key + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**_clean_env(), "KLUIS_DATA_DIR": str(kluis.data_dir)},
    )


def test_quickstart_unchanged_through_proxy(kluis: KluisServer, make_vault: Callable[..., str]) -> None:
    vault = make_vault()
    sp = kluis.cli_json("ad", "sp", "create-for-rbac", "-n", unique("qs"))
    assert set(sp) >= {"appId", "password", "tenant"}
    kluis.cli(
        "keyvault",
        "set-policy",
        "-n",
        vault,
        "--spn",
        sp["appId"],
        "--key-permissions",
        "delete",
        "get",
        "list",
        "create",
    )
    env_lines = kluis.cli("env", "-n", vault, "--client-id", sp["appId"], "--client-secret", sp["password"]).stdout
    env = dict(line.removeprefix("export ").split("=", 1) for line in env_lines.strip().splitlines())
    assert env["HTTPS_PROXY"] == f"http://127.0.0.1:{kluis.proxy_port}"
    assert env["REQUESTS_CA_BUNDLE"] == kluis.ca_bundle and env["KEY_VAULT_NAME"] == vault
    assert env["AZURE_CLIENT_ID"] == sp["appId"]

    child_env = {**_clean_env(), **{k: v.strip("'") for k, v in env.items()}}
    run = subprocess.run(
        [sys.executable, str(QUICKSTART)],
        input="qskey\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env,
    )
    assert run.returncode == 0, run.stderr
    assert "Key with name 'qskey' was found." in run.stdout
    again = subprocess.run(
        [sys.executable, str(QUICKSTART)],
        input="qskey\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env,
    )
    assert again.returncode != 0
    assert "Conflict" in again.stderr and "deleted but recoverable" in again.stderr


def test_kluis_exec_runs_quickstart_as_admin(kluis: KluisServer, make_vault: Callable[..., str]) -> None:
    vault = make_vault()
    run = _run_quickstart(kluis, vault, "execkey")
    assert run.returncode == 0, run.stderr
    assert "Key with name 'execkey' was found." in run.stdout


def test_sdk_flow_create_get_delete_wait_conflict(
    kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal],
    key_client_for: Callable[..., KeyClient],
) -> None:  # fmt: skip
    vault = make_vault()
    sp = make_principal(vault, "delete", "get", "list", "create")
    client = key_client_for(sp, vault)
    created = client.create_rsa_key("quick", size=2048)
    assert created.id.startswith(f"https://{vault}.vault.azure.net/keys/quick/")
    assert created.key.kty == "RSA" and len(created.key.n) == 256
    got = client.get_key("quick")
    assert got.id == created.id and got.properties.recovery_level == "Recoverable+Purgeable"
    poller = client.begin_delete_key("quick")
    deleted = poller.result()
    assert deleted.recovery_id == f"https://{vault}.vault.azure.net/deletedkeys/quick"
    assert deleted.scheduled_purge_date is not None and deleted.deleted_date is not None
    assert (deleted.scheduled_purge_date - deleted.deleted_date).days == 90
    poller.wait()
    with pytest.raises(ResourceExistsError) as err:
        client.create_rsa_key("quick", size=2048)
    assert "is currently in a deleted but recoverable state" in str(err.value)
    assert client.get_deleted_key("quick").name == "quick"


def test_missing_permission_is_403_naming_it(
    kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal],
    key_client_for: Callable[..., KeyClient],
) -> None:  # fmt: skip
    vault = make_vault()
    reader = make_principal(vault, "get", "list")
    with pytest.raises(HttpResponseError) as err:
        key_client_for(reader, vault).create_ec_key("nope")
    assert err.value.status_code == 403
    assert err.value.error is not None and err.value.error.code == "Forbidden"
    assert "does not have keys create permission" in str(err.value)
    stranger = make_principal()
    with pytest.raises(HttpResponseError) as err2:
        key_client_for(stranger, vault).get_key("anything")
    assert err2.value.status_code == 403
    kluis.cli("keyvault", "delete-policy", "-n", vault, "--spn", reader.app_id)
    with pytest.raises(HttpResponseError) as err3:
        key_client_for(reader, vault).get_key("anything")
    assert err3.value.status_code == 403


def _raw(kluis: KluisServer, token: str | None, host: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if host:
        headers["host"] = host
    return httpx.post(
        f"{kluis.url}/keys/x/create?api-version=7.6",
        headers=headers,
        content=b"",
        verify=ssl.create_default_context(cafile=kluis.ca),
        timeout=10,
    )


def test_401_challenge_for_missing_invalid_expired_token(kluis: KluisServer, admin: Principal) -> None:
    r = _raw(kluis, None, host="myvault.vault.azure.net")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        f'Bearer authorization="https://login.microsoftonline.com/{admin.tenant}", resource="https://vault.azure.net"'
    )
    assert r.json() == {
        "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}
    }
    assert (
        _raw(kluis, None, host=f"localhost:{kluis.port}")
        .headers["www-authenticate"]
        .endswith('resource="https://vault.azure.net"')
    )
    assert (
        'resource="https://localhost:8443"' in _raw(kluis, None, host="v1.localhost:8443").headers["www-authenticate"]
    )
    assert _raw(kluis, "not-a-jwt").status_code == 401
    forged = jwt.encode({"aud": "https://vault.azure.net", "exp": time.time() + 600}, "k" * 32, algorithm="HS256")
    assert _raw(kluis, forged).status_code == 401
    token = credential(kluis, admin).get_token("https://vault.azure.net/.default").token
    assert _raw(kluis, token).status_code == 400  # authenticated: now the empty body is the problem
    other_audience = credential(kluis, admin).get_token("https://storage.azure.com/.default").token
    r = _raw(kluis, other_audience)
    assert r.status_code == 401 and "audience" in r.json()["error"]["message"]


def test_expired_token_is_401_and_time_travel_does_not_expire_tokens(kluis: KluisServer, admin: Principal) -> None:
    """A token past its exp is refused; moving the server clock (object lifecycles only) is not expiry."""
    from kluis.api.runtime import Runtime
    from kluis.config import DataDir, ServerSettings
    from kluis.identity.tokens import Principal as TokenPrincipal

    rt = Runtime(DataDir(kluis.data_dir), ServerSettings(key_pool=0))  # the server's own signing key
    try:
        a = kluis.admin()
        who = TokenPrincipal(a["objectId"], a["appId"], a["tenant"])
        expired, _ = rt.issuer.issue(
            who, audience="https://vault.azure.net", lifetime=3600, now=int(time.time()) - 7200
        )
    finally:
        rt.close()
    r = _raw(kluis, expired)
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]

    token = credential(kluis, admin).get_token("https://vault.azure.net/.default").token
    kluis.cli("time", "set", "--offset", "7200")  # kluis's own clock control (not an az verb)
    try:
        r = _raw(kluis, token)
    finally:
        kluis.cli("time", "set", "--offset", "0")
    assert r.status_code == 400  # authenticated (the empty body is the problem): the token is still good


def test_wrong_secret_is_reported_by_the_sdk(kluis: KluisServer, admin: Principal) -> None:
    bad = Principal(admin.app_id, "wrong-password", admin.tenant)
    with pytest.raises(ClientAuthenticationError) as err:
        credential(kluis, bad).get_token("https://vault.azure.net/.default")
    assert "AADSTS7000215" in str(err.value)


def test_managed_identity_endpoint(
    kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal]
) -> None:
    vault = make_vault()
    sp = make_principal(vault, "get", "create")
    lines = kluis.cli(
        "env", "-n", vault, "--managed-identity", "--client-id", sp.app_id, "--client-secret", sp.password
    ).stdout
    env = {k: v.strip("'") for k, v in (ln.removeprefix("export ").split("=", 1) for ln in lines.strip().splitlines())}
    assert "AZURE_CLIENT_SECRET" not in env and env["IDENTITY_ENDPOINT"].endswith("/msi/token")
    old = {k: os.environ.get(k) for k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "REQUESTS_CA_BUNDLE")}
    os.environ.update({k: env[k] for k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")})
    os.environ["REQUESTS_CA_BUNDLE"] = kluis.ca
    try:
        cred = ManagedIdentityCredential(client_id=sp.app_id)
        client = KeyClient(f"https://localhost:{kluis.port}", cred, verify_challenge_resource=False)
        token = cred.get_token("https://vault.azure.net/.default")
        assert token.expires_on > time.time() + 3000
        with pytest.raises(HttpResponseError) as err:  # the default vault: no policy there for this principal
            client.get_key("missing")
        assert err.value.status_code == 403
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_restart_keeps_everything(tmp_path: Path) -> None:
    server = KluisServer(tmp_path / "data").start()
    try:
        a = server.admin()
        admin = Principal(a["appId"], a["password"], a["tenant"])
        client = KeyClient(
            server.url,
            credential(server, admin),
            verify_challenge_resource=False,
            connection_verify=server.ca,
        )
        key = client.create_ec_key("survivor", curve="P-384", tags={"a": "b"})
        server.cli("group", "create", "-n", "rg1")
        server.cli("keyvault", "create", "-n", "keepme", "-g", "rg1")
    finally:
        server.stop()
    assert (tmp_path / "data" / "admin.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data" / "kek.key").stat().st_mode & 0o777 == 0o600
    raw_db = (tmp_path / "data" / "kluis.db").read_bytes()
    server.start()
    try:
        client = KeyClient(
            server.url,
            credential(server, admin),
            verify_challenge_resource=False,
            connection_verify=server.ca,
        )
        again = client.get_key("survivor")
        assert again.id == key.id and again.key.x == key.key.x and again.properties.tags == {"a": "b"}
        names = [v["name"] for v in server.cli_json("keyvault", "list")]
        assert "keepme" in names
    finally:
        server.stop()
    assert b"PRIVATE KEY" not in raw_db


def test_the_quickstart_copy_is_the_readmes_byte_for_byte() -> None:
    """tests/e2e/kv_keys.py is the program the README shows (excluded from the formatter to stay so)."""
    from pathlib import Path

    root = Path(__file__).parents[2]
    readme = (root / "README.md").read_text()
    start = readme.index("```python\n", readme.index("Save Microsoft's quickstart program as `kv_keys.py`")) + 10
    assert readme[start : readme.index("```\n", start)] == (root / "tests" / "e2e" / "kv_keys.py").read_text()

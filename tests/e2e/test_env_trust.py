"""Every TLS stack trusts kluis with only what ``kluis env`` prints (proxy mode).

The async Python SDK (aiohttp) reads ``SSL_CERT_FILE`` (the ``ssl`` module's default verify paths), not
``REQUESTS_CA_BUNDLE``; httpx and urllib read it too; curl reads ``CURL_CA_BUNDLE``. Each check also runs
without the variable that stack needs and must then fail, so the variable is what makes it work.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Principal, unique
from tests.e2e.sdk_env import sdk_env
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow
ASYNC_QUICKSTART = Path(__file__).with_name("kv_keys_async.py")
CURL = shutil.which("curl")

# urllib and httpx, each as an unchanged program would call them: no verify/proxy arguments.
_PROBE = """
import os, sys, urllib.error, urllib.request
import httpx

url = os.environ["VAULT_URL"] + "/keys?api-version=7.6"
try:
    urllib.request.urlopen(url, timeout=20)
except urllib.error.HTTPError as e:
    print("urllib", e.code, e.headers["www-authenticate"])
except urllib.error.URLError as e:
    print("urllib error", e.reason)
try:
    r = httpx.get(url, timeout=20)
    print("httpx", r.status_code, r.headers["www-authenticate"])
except httpx.HTTPError as e:
    print("httpx error", e)
"""


def _quickstart(env: dict[str, str], key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ASYNC_QUICKSTART)], input=key + "\n", capture_output=True, text=True, timeout=120, env=env
    )


def test_async_quickstart_unchanged_through_proxy(
    kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal]
) -> None:
    vault = make_vault()
    sp = make_principal(vault, "create", "get", "delete")
    env = sdk_env(kluis, "-n", vault, "--client-id", sp.app_id, "--client-secret", sp.password)
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == env["CURL_CA_BUNDLE"] == kluis.ca_bundle
    assert env["HTTPS_PROXY"] == f"http://127.0.0.1:{kluis.proxy_port}" and env["KEY_VAULT_NAME"] == vault
    run = _quickstart(env, "aiokey")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-3:] == [
        "Key with name 'aiokey' was found.",
        f"Deleting your key from {vault} ...",
        " done.",
    ]
    assert kluis.cli_json("keyvault", "key", "show-deleted", "--vault-name", vault, "-n", "aiokey")["key"]["kid"]
    again = _quickstart(env, "aiokey")
    assert again.returncode != 0
    assert "(Conflict)" in again.stderr and "is currently in a deleted but recoverable state" in again.stderr


def test_async_quickstart_needs_ssl_cert_file(
    kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal]
) -> None:
    """Without SSL_CERT_FILE (REQUESTS_CA_BUNDLE alone) aiohttp does not trust kluis: the old `kluis env`."""
    vault = make_vault()
    sp = make_principal(vault, "create", "get", "delete")
    env = sdk_env(kluis, "-n", vault, "--client-id", sp.app_id, "--client-secret", sp.password)
    del env["SSL_CERT_FILE"]
    run = _quickstart(env, unique("nope"))
    assert run.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in run.stderr


def test_urllib_and_httpx_trust_kluis_with_ssl_cert_file(kluis: KluisServer, make_vault: Callable[..., str]) -> None:
    vault = make_vault()
    env = sdk_env(kluis, "-n", vault)
    challenge = f'Bearer authorization="https://login.microsoftonline.com/{kluis.admin()["tenant"]}"'
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, env=env)
    lines = probe.stdout.splitlines()
    assert probe.returncode == 0 and len(lines) == 2, probe.stderr
    assert lines[0].startswith(f"urllib 401 {challenge}") and lines[1].startswith(f"httpx 401 {challenge}"), lines
    del env["SSL_CERT_FILE"]
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, env=env)
    lines = probe.stdout.splitlines()
    assert lines[0].startswith("urllib error") and "CERTIFICATE_VERIFY_FAILED" in lines[0], lines
    assert lines[1].startswith("httpx error") and "CERTIFICATE_VERIFY_FAILED" in lines[1], lines


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_trusts_kluis_with_curl_ca_bundle(kluis: KluisServer, make_vault: Callable[..., str]) -> None:
    assert CURL is not None
    vault = make_vault()
    env = sdk_env(kluis, "-n", vault)
    url = f"{env['VAULT_URL']}/keys?api-version=7.6"
    cmd = [CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_connect}", url]
    only_curl_ca_bundle = {k: v for k, v in env.items() if k != "SSL_CERT_FILE"}
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=only_curl_ca_bundle)
    assert (ok.returncode, ok.stdout) == (0, "401 200"), ok.stderr  # through the CONNECT proxy (200), then 401
    neither = {k: v for k, v in only_curl_ca_bundle.items() if k != "CURL_CA_BUNDLE"}
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=neither)
    assert bad.returncode == 60, (bad.returncode, bad.stderr)  # CURLE_PEER_FAILED_VERIFICATION

"""The unmodified JavaScript SDK (@azure/keyvault-keys + @azure/identity) runs the core key journey.

tests/js/journey.mjs is a plain user program (DefaultAzureCredential, KeyClient, CryptographyClient);
the environment comes from ``kluis env``. `make test` / `make e2e` install tests/js/node_modules first.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Principal
from tests.e2e.server import KluisServer

JS_DIR = Path(__file__).resolve().parents[1] / "js"
JOURNEY = JS_DIR / "journey.mjs"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None, reason="node is not installed: the JavaScript SDK journey needs Node.js >= 20"),
    pytest.mark.skipif(
        not (JS_DIR / "node_modules" / "@azure" / "keyvault-keys").is_dir(),
        reason="tests/js/node_modules is missing: run `make js-deps` (npm ci in tests/js)",
    ),
]

# encrypt is deliberately missing: RSA-OAEP encryption must happen locally in the SDK (a 403 would prove otherwise).
KEY_PERMISSIONS = ("create", "get", "list", "sign", "verify", "decrypt", "delete", "recover", "purge")

# Whatever the machine presets must not leak in: kluis env alone decides proxy, CA and identity.
_DROPPED = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_", "NODE_EXTRA_CA_CERTS", "NODE_OPTIONS", "SSL_CERT_")
_DROPPED_EXACT = {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NO_PROXY", "ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY"}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED) and k.upper() not in _DROPPED_EXACT}


def _kluis_env(kluis: KluisServer, *args: str) -> dict[str, str]:
    """Parse the ``export K=V`` lines `kluis env` prints."""
    out = kluis.cli("env", *args).stdout
    env: dict[str, str] = {}
    for line in out.strip().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = shlex.split(value)[0] if value else ""
    return env


def _run_journey(env: dict[str, str], *args: str) -> dict[str, Any]:
    assert NODE is not None
    run = subprocess.run(
        [NODE, str(JOURNEY), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=JS_DIR,
        env={**_clean_env(), **env},
    )
    assert run.returncode == 0, f"journey.mjs failed (exit {run.returncode}):\n{run.stderr}\n{run.stdout}"
    lines = run.stdout.strip().splitlines()
    assert lines, f"journey.mjs printed nothing; stderr:\n{run.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _check_results(result: dict[str, Any], vault_url: str) -> None:
    assert result["ok"] is True and result["vaultUrl"] == vault_url
    assert result["created"]["rsa"].startswith(f"{vault_url}/keys/js-rsa-")
    assert result["created"]["ec"].startswith(f"{vault_url}/keys/js-ec-")
    assert result["listed"]["keys"] >= 2 and result["listed"]["pagesOfOne"] >= 2
    assert result["signatures"] == {
        "RS256": {"sign": 256, "signData": 256},
        "PS256": {"sign": 256, "signData": 256},
        "ES256": {"sign": 64, "signData": 64},
    }
    assert result["encryptDecrypt"] == "RSA-OAEP"
    assert result["recovered"] == result["created"]["rsa"]
    assert result["purged"].startswith("js-ec-")


def test_js_journey_zero_change_through_proxy(
    kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal]
) -> None:
    vault = make_vault()
    sp = make_principal(vault, *KEY_PERMISSIONS)
    env = _kluis_env(kluis, "-n", vault, "--client-id", sp.app_id, "--client-secret", sp.password)
    assert env["HTTPS_PROXY"] == f"http://127.0.0.1:{kluis.proxy_port}"
    assert env["NODE_EXTRA_CA_CERTS"] == kluis.ca and env["KEY_VAULT_NAME"] == vault
    assert env["AZURE_TENANT_ID"] == sp.tenant and env["AZURE_CLIENT_ID"] == sp.app_id
    result = _run_journey(env)
    _check_results(result, f"https://{vault}.vault.azure.net")


def test_js_journey_direct_mode(kluis: KluisServer, make_principal: Callable[..., Principal]) -> None:
    """``kluis env --direct``: https://localhost:PORT (the default vault), kluis as the ``adfs`` authority.

    msal-node gets ``knownAuthorities=[host]`` for tenant adfs, so it skips instance discovery and only
    reads ``/adfs/.well-known/openid-configuration`` before the token POST; the challenge advertises
    ``https://vault.azure.net``, hence ``disableChallengeResourceVerification: true`` in the program.
    """
    assert "default" in {v["name"] for v in kluis.cli_json("keyvault", "list")}
    sp = make_principal("default", *KEY_PERMISSIONS)
    env = _kluis_env(kluis, "-n", "default", "--direct", "--client-id", sp.app_id, "--client-secret", sp.password)
    assert "HTTPS_PROXY" not in env
    assert env["VAULT_URL"] == env["AZURE_AUTHORITY_HOST"] == kluis.url and env["AZURE_TENANT_ID"] == "adfs"
    result = _run_journey(env, "--direct")
    _check_results(result, kluis.url)

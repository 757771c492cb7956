"""The unmodified JavaScript SDK (@azure/keyvault-secrets + @azure/identity) runs every secrets operation.

tests/js/secrets.mjs is a plain user program (DefaultAzureCredential, SecretClient); the environment
comes from ``kluis env``. `make test` / `make e2e` install tests/js/node_modules first.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Principal, unique
from tests.e2e.server import KluisServer
from tests.e2e.test_js_journey import JS_DIR, NODE, _clean_env, _kluis_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None, reason="node is not installed: the JavaScript SDK journey needs Node.js >= 20"),
    pytest.mark.skipif(
        not (JS_DIR / "node_modules" / "@azure" / "keyvault-secrets").is_dir(),
        reason="tests/js/node_modules is missing: run `make js-deps` (npm ci in tests/js)",
    ),
]

SECRET_PERMISSIONS = ("get", "list", "set", "delete", "recover", "backup", "restore", "purge")


def _run(env: dict[str, str], *args: str) -> dict[str, Any]:
    assert NODE is not None
    run = subprocess.run([NODE, str(JS_DIR / "secrets.mjs"), *args], capture_output=True, text=True, timeout=120,
                         cwd=JS_DIR, env={**_clean_env(), **env})  # fmt: skip
    assert run.returncode == 0, f"secrets.mjs failed (exit {run.returncode}):\n{run.stderr}\n{run.stdout}"
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def _check(result: dict[str, Any], vault_url: str) -> None:
    assert result["ok"] is True and result["vaultUrl"] == vault_url
    assert result["set"]["id"].startswith(f"{vault_url}/secrets/js-secret-") and result["set"]["unicode"] is True
    assert result["listed"]["versions"] == 2 and result["listed"]["pagesOfOne"] >= 2
    assert result["disabled"] == {
        "status": 403, "code": "Forbidden", "message": "Operation get is not allowed on a disabled secret.",
        "inner": "SecretDisabled",
    }  # fmt: skip
    assert result["tooLong"]["message"] == "Secret is beyond the maximum permitted length of 25600 characters."
    assert result["conflict"]["code"] == "Conflict" and "deleted but recoverable" in result["conflict"]["message"]
    assert result["restored"].startswith(f"{vault_url}/secrets/js-secret-")


def test_js_secrets_zero_change_through_proxy(kluis: KluisServer, make_vault: Callable[..., str],
                                             make_principal: Callable[..., Principal]) -> None:  # fmt: skip
    vault = make_vault()
    sp = make_principal()
    kluis.cli("keyvault", "set-policy", "-n", vault, "--spn", sp.app_id, "--secret-permissions", *SECRET_PERMISSIONS)
    env = _kluis_env(kluis, "-n", vault, "--client-id", sp.app_id, "--client-secret", sp.password)
    _check(_run(env), f"https://{vault}.vault.azure.net")


def test_js_secrets_direct_mode(kluis: KluisServer) -> None:
    sp = kluis.cli_json("ad", "sp", "create-for-rbac", "-n", unique("jsd"))
    kluis.cli("keyvault", "set-policy", "-n", "default", "--spn", sp["appId"], "--secret-permissions", "all")
    env = _kluis_env(kluis, "-n", "default", "--direct", "--client-id", sp["appId"], "--client-secret", sp["password"])
    _check(_run(env, "--direct"), kluis.url)

"""The unmodified Azure SDK for Go (azkeys + azidentity) runs the core key journey through ``kluis env``.

tests/go/main.go is a plain user program (DefaultAzureCredential, azkeys.Client on
https://NAME.vault.azure.net); Go's net/http honours HTTPS_PROXY and crypto/x509 reads SSL_CERT_FILE.
`make go-deps` downloads the pinned modules into tests/go/.cache (inside the clone); this test builds
the program with the same cache. Without a Go toolchain the test is skipped, except under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Principal
from tests.e2e.sdk_env import clean_env, sdk_env
from tests.e2e.server import KluisServer

GO_DIR = Path(__file__).resolve().parents[1] / "go"
CACHE = GO_DIR / ".cache"
GO = shutil.which("go")
IN_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = pytest.mark.slow

# Only this vault: were a request for NAME.vault.azure.net served by another vault, it would be a 403.
KEY_PERMISSIONS = ("create", "get", "list", "sign", "verify", "wrapKey", "unwrapKey", "delete", "recover", "purge")


def go_env() -> dict[str, str]:
    """Module, build and GOPATH caches under tests/go/.cache; the pinned toolchain only; no network."""
    return {
        **clean_env(),
        "GOPATH": str(CACHE / "gopath"),
        "GOMODCACHE": str(CACHE / "mod"),
        "GOCACHE": str(CACHE / "build"),
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=readonly -modcacherw",
        "GOPROXY": "off",
    }


@pytest.fixture(scope="module")
def journey() -> Path:
    """The compiled journey; skipped (failed under CI=true) when Go or the downloaded modules are missing."""
    missing = None
    if GO is None:
        missing = "go is not installed: the Go SDK journey needs Go >= 1.25 (https://go.dev/dl/)"
    elif not (CACHE / "mod" / "cache" / "download").is_dir():
        missing = "tests/go/.cache is empty: run `make go-deps` (go mod download into the clone)"
    if missing:
        if IN_CI:
            pytest.fail(f"CI=true: {missing}")
        pytest.skip(missing)
    assert GO is not None
    binary = CACHE / "journey"
    build = subprocess.run(
        [GO, "build", "-o", str(binary), "."], cwd=GO_DIR, capture_output=True, text=True, timeout=300, env=go_env()
    )
    assert build.returncode == 0, f"go build failed:\n{build.stderr}"
    return binary


def test_go_journey_zero_change_through_proxy(
    journey: Path, kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal]
) -> None:
    vault = make_vault()
    sp = make_principal(vault, *KEY_PERMISSIONS)
    env = sdk_env(kluis, "-n", vault, "--client-id", sp.app_id, "--client-secret", sp.password)
    assert env["SSL_CERT_FILE"] == kluis.ca_bundle and env["HTTPS_PROXY"] == f"http://127.0.0.1:{kluis.proxy_port}"
    run = subprocess.run([str(journey)], capture_output=True, text=True, timeout=180, env=env, cwd=GO_DIR)
    assert run.returncode == 0, f"the Go journey failed (exit {run.returncode}):\n{run.stderr}\n{run.stdout}"
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    vault_url = f"https://{vault}.vault.azure.net"
    assert result["ok"] is True and result["vaultUrl"] == vault_url
    assert result["created"]["rsa"].startswith(f"{vault_url}/keys/go-rsa-")
    assert result["created"]["ec"].startswith(f"{vault_url}/keys/go-ec-")
    assert result["listed"]["keys"] >= 2
    assert result["listed"]["versions"] == 26 and result["listed"]["versionPages"] == 2
    assert result["signatures"] == {"RS256": 256, "PS256": 256, "ES256": 64}
    assert result["wrapUnwrap"] == "RSA-OAEP-256"
    assert result["recovered"] == result["created"]["rsa"]
    assert result["purged"].startswith("go-ec-")


def test_go_wraps_with_the_latest_version_when_none_is_given(
    journey: Path, kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal]
) -> None:
    """azkeys sends POST /keys/{name}/wrapkey for version "": Key Vault uses the latest version there
    (azure-rest-api-specs#42274 makes the empty keyVersion explicit for the crypto operations)."""
    vault = make_vault()
    sp = make_principal(vault, "create", "wrapKey", "unwrapKey")
    env = sdk_env(kluis, "-n", vault, "--client-id", sp.app_id, "--client-secret", sp.password)
    run = subprocess.run([str(journey), "versionless"], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, f"versionless wrap/unwrap failed (exit {run.returncode}):\n{run.stderr}"
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ok"] is True and result["kid"].startswith(f"https://{vault}.vault.azure.net/keys/go-latest-")

"""The unmodified Azure SDK for Java (azure-security-keyvault-keys + azure-identity) runs the core key journey.

tests/java/src/main/java/kluis/Journey.java is a plain user program (DefaultAzureCredential, KeyClient,
CryptographyClient on https://NAME.vault.azure.net). The JVM learns everything from ``kluis env``:
JAVA_TOOL_OPTIONS names the PKCS#12 trust store (the usual roots plus the kluis CA) and the proxy
(azure-core reads -Dhttps.proxyHost/-Dhttps.proxyPort; it ignores HTTPS_PROXY unless
java.net.useSystemProxies=true). `make java-deps` resolves the pinned artifacts into tests/java/.m2
(inside the clone); this test compiles offline from there. Without java/mvn the test is skipped,
except under CI=true.
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

JAVA_DIR = Path(__file__).resolve().parents[1] / "java"
REPO = JAVA_DIR / ".m2"
JAVA, MVN = shutil.which("java"), shutil.which("mvn")
IN_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = pytest.mark.slow

# Only this vault: were a request for NAME.vault.azure.net served by another vault, it would be a 403.
KEY_PERMISSIONS = ("create", "get", "list", "sign", "verify", "wrapKey", "unwrapKey", "delete", "recover", "purge")


@pytest.fixture(scope="module")
def classpath() -> str:
    """The compiled journey plus its dependencies; skipped (failed under CI=true) without java, mvn or .m2."""
    missing = None
    if JAVA is None or MVN is None:
        missing = "java or mvn is not installed: the Java SDK journey needs a JDK >= 17 and Maven >= 3.6.3"
    elif not (REPO / "com" / "azure" / "azure-security-keyvault-keys").is_dir():
        missing = "tests/java/.m2 is empty: run `make java-deps` (Maven resolves into the clone)"
    if missing:
        if IN_CI:
            pytest.fail(f"CI=true: {missing}")
        pytest.skip(missing)
    assert MVN is not None
    build = subprocess.run(
        [MVN, "-B", "-q", "-o", f"-Dmaven.repo.local={REPO}", "compile", "dependency:build-classpath"],
        cwd=JAVA_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
    )
    assert build.returncode == 0, f"mvn compile failed:\n{build.stdout}\n{build.stderr}"
    return f"{JAVA_DIR / 'target' / 'classes'}{os.pathsep}{(JAVA_DIR / 'target' / 'classpath.txt').read_text().strip()}"


def test_java_journey_zero_change_through_proxy(
    classpath: str, kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal]
) -> None:
    assert JAVA is not None
    vault = make_vault()
    sp = make_principal(vault, *KEY_PERMISSIONS)
    env = sdk_env(kluis, "-n", vault, "--client-id", sp.app_id, "--client-secret", sp.password)
    store = str(Path(kluis.ca_bundle).with_suffix(".p12"))
    assert env["JAVA_TOOL_OPTIONS"] == (
        f"-Djavax.net.ssl.trustStore={store} -Djavax.net.ssl.trustStoreType=PKCS12"
        f" -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort={kluis.proxy_port}"
    )
    run = subprocess.run(
        [JAVA, "-cp", classpath, "kluis.Journey"], capture_output=True, text=True, timeout=180, env=env, cwd=JAVA_DIR
    )
    assert run.returncode == 0, f"the Java journey failed (exit {run.returncode}):\n{run.stderr}\n{run.stdout}"
    assert f"Picked up JAVA_TOOL_OPTIONS: {env['JAVA_TOOL_OPTIONS']}" in run.stderr
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    vault_url = f"https://{vault}.vault.azure.net"
    assert result["ok"] is True and result["vaultUrl"] == vault_url
    assert result["created"]["rsa"].startswith(f"{vault_url}/keys/java-rsa-")
    assert result["created"]["ec"].startswith(f"{vault_url}/keys/java-ec-")
    assert result["listed"]["keys"] >= 2
    assert result["listed"]["versions"] == 26 and result["listed"]["versionPages"] == 2
    assert result["signatures"] == {"RS256": 256, "PS256": 256, "ES256": 64}
    assert result["wrapUnwrap"] == "RSA-OAEP-256"
    assert result["recovered"] == result["created"]["rsa"]
    assert result["purged"].startswith("java-ec-")

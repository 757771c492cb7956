"""The environment an SDK program gets in the e2e tests: the machine's, minus anything that decides
proxy, trust or identity, plus exactly what ``kluis env`` prints (parsed from ``--format json``)."""

from __future__ import annotations

import json
import os

from tests.e2e.server import KluisServer

__all__ = ["clean_env", "kluis_env", "sdk_env"]

# The machines here preset SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, NODE_EXTRA_CA_CERTS ... to the
# system bundle: none of that may leak in, or a test could pass on a variable kluis env did not print.
_DROPPED_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_", "SSL_CERT_")
_DROPPED = {
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "NODE_OPTIONS", "NO_PROXY", "ALL_PROXY",
    "HTTPS_PROXY", "HTTP_PROXY", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS", "MAVEN_OPTS",
    "KEY_VAULT_NAME", "VAULT_URL", "GODEBUG",
}  # fmt: skip


def clean_env() -> dict[str, str]:
    """``os.environ`` without proxy, CA, JVM and Azure identity settings (names compared case-insensitively)."""
    return {
        k: v for k, v in os.environ.items() if not k.upper().startswith(_DROPPED_PREFIXES) and k.upper() not in _DROPPED
    }


def kluis_env(kluis: KluisServer, *args: str) -> dict[str, str]:
    """What ``kluis env ARGS --format json`` prints."""
    values = json.loads(kluis.cli("env", *args, "--format", "json").stdout)
    assert isinstance(values, dict) and all(isinstance(v, str) for v in values.values())
    return values


def sdk_env(kluis: KluisServer, *args: str) -> dict[str, str]:
    """:func:`clean_env` plus ``kluis env ARGS``: all a program needs to reach kluis with no code change."""
    return {**clean_env(), **kluis_env(kluis, *args)}

"""`kluis keyvault secret ...`: az's secret verbs through the real CLI, against the session server.

Every command runs as a subprocess (`python -m kluis ...`), as a user types it; under the hood the CLI
uses the official azure-keyvault-secrets SDK through kluis's CONNECT proxy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow

BUNDLE_KEYS = {"attributes", "contentType", "id", "kid", "managed", "name", "tags", "value"}
ATTRIBUTE_KEYS = {"created", "enabled", "expires", "notBefore", "recoverableDays", "recoveryLevel", "updated"}


def kv(kluis: KluisServer, *args: str) -> Any:
    """`kluis keyvault secret ARGS -o json`, parsed."""
    return kluis.cli_json("keyvault", "secret", *args)


def test_secret_verbs(kluis: KluisServer, make_vault: Callable[..., str], tmp_path: Path) -> None:
    vault = make_vault()
    at = ("--vault-name", vault)
    made = kv(kluis, "set", *at, "-n", "db-pass", "--value", "hunter2 ☃", "--content-type", "text/plain",
              "--tags", "env=dev", "team=core", "--expires", "2099-01-01T00:00:00Z",
              "--not-before", "2020-01-01T00:00:00Z")  # fmt: skip
    assert set(made) == BUNDLE_KEYS and set(made["attributes"]) == ATTRIBUTE_KEYS
    assert made["value"] == "hunter2 ☃" and made["contentType"] == "text/plain" and made["name"] == "db-pass"
    assert made["tags"] == {"env": "dev", "team": "core"} and made["attributes"]["expires"].startswith("2099-01-01")
    assert made["id"].startswith(f"https://{vault}.vault.azure.net/secrets/db-pass/")
    second = kv(kluis, "set", *at, "-n", "db-pass", "--value", "v2", "--disabled")
    assert second["attributes"]["enabled"] is False
    shown = kv(kluis, "show", "--id", made["id"])
    assert shown["value"] == "hunter2 ☃" and shown["id"] == made["id"]
    refused = kluis.cli("keyvault", "secret", "show", *at, "-n", "db-pass", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == "ERROR: (Forbidden) Operation get is not allowed on a disabled secret."
    listed = kv(kluis, "list", *at)
    assert [i["name"] for i in listed] == ["db-pass"] and "value" not in listed[0]
    versions = kv(kluis, "list-versions", *at, "-n", "db-pass")
    assert len(versions) == 2 and all("value" not in v for v in versions)
    updated = kv(kluis, "set-attributes", *at, "-n", "db-pass", "--enabled", "true", "--content-type", "app/x")
    assert updated["attributes"]["enabled"] is True and updated["contentType"] == "app/x"
    assert updated["tags"] is None  # the second version was set without tags; PATCH left them alone
    backup = tmp_path / "db-pass.backup"
    kluis.cli("keyvault", "secret", "backup", *at, "-n", "db-pass", "--file", str(backup))
    deleted = kv(kluis, "delete", *at, "-n", "db-pass")
    assert deleted["recoveryId"] == f"https://{vault}.vault.azure.net/deletedsecrets/db-pass" and "value" not in deleted
    assert [d["name"] for d in kv(kluis, "list-deleted", *at)] == ["db-pass"]
    assert kv(kluis, "show-deleted", *at, "-n", "db-pass")["name"] == "db-pass"
    conflict = kluis.cli("keyvault", "secret", "set", *at, "-n", "db-pass", "--value", "x", check=False)
    assert conflict.returncode == 1 and "(Conflict) Secret db-pass is currently in a deleted" in conflict.stderr
    assert kv(kluis, "recover", *at, "-n", "db-pass")["name"] == "db-pass"
    kluis.cli("keyvault", "secret", "delete", *at, "-n", "db-pass")
    kluis.cli("keyvault", "secret", "purge", *at, "-n", "db-pass")
    restored = kv(kluis, "restore", *at, "--file", str(backup))
    assert restored["name"] == "db-pass" and restored["contentType"] == "app/x"


def test_set_from_file_and_download(kluis: KluisServer, make_vault: Callable[..., str], tmp_path: Path) -> None:
    """az's --file/--encoding: the encoding is recorded in the file-encoding tag, which download reads."""
    vault = make_vault()
    at = ("--vault-name", vault)
    binary = tmp_path / "cert.pfx"
    binary.write_bytes(bytes(range(256)) * 4)
    made = kv(kluis, "set", *at, "-n", "pfx", "--file", str(binary), "--encoding", "base64", "--tags", "kind=pfx")
    assert made["tags"] == {"kind": "pfx", "file-encoding": "base64"}
    out = tmp_path / "out.pfx"
    kluis.cli("keyvault", "secret", "download", *at, "-n", "pfx", "--file", str(out))
    assert out.read_bytes() == binary.read_bytes()
    text = tmp_path / "conf.txt"
    text.write_text("key = 'wäarde'\n", encoding="utf-16le")
    kv(kluis, "set", *at, "-n", "conf", "--file", str(text), "--encoding", "utf-16le")
    assert kv(kluis, "show", *at, "-n", "conf")["value"] == "key = 'wäarde'\n"
    out_text = tmp_path / "conf.out"
    kluis.cli("keyvault", "secret", "download", *at, "-n", "conf", "--file", str(out_text))
    assert out_text.read_bytes() == text.read_bytes()
    again = kluis.cli("keyvault", "secret", "download", *at, "-n", "conf", "--file", str(out_text), check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    table = kluis.cli("keyvault", "secret", "list", *at, "-o", "tsv").stdout
    assert "conf" in table and "pfx" in table
    assert json.loads(kluis.cli("keyvault", "secret", "list", *at, "--maxresults", "1").stdout)[0]["name"] == "conf"

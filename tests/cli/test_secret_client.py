"""Secret addressing for the CLI: --vault-name/--name/--version or --id, as az takes them."""

from __future__ import annotations

import pytest

from kluis.cli.client import CliError
from kluis.cli.key_client import KeyRef
from kluis.cli.secret_client import parse_secret_id, resolve_secret_ref


def test_parse_secret_ids() -> None:
    assert parse_secret_id("https://v1.vault.azure.net/secrets/s/abc") == KeyRef("v1", "s", "abc")
    assert parse_secret_id("https://v1.vault.azure.net/secrets/s") == KeyRef("v1", "s", None)
    assert parse_secret_id("https://v1.vault.azure.net/deletedsecrets/s") == KeyRef("v1", "s", None)
    assert parse_secret_id("https://v1.vault.azure.net") == KeyRef("v1")
    assert parse_secret_id("https://v2.kms.example.com:8443/secrets/s", ["kms.example.com"]) == KeyRef("v2", "s")
    assert parse_secret_id("https://localhost:8443/secrets/s") == KeyRef("default", "s", None, True)
    for bad in ("http://v1.vault.azure.net/secrets/s", "https://v1.vault.azure.net/keys/k", "nonsense",
                "https://v1.vault.azure.net/deletedsecrets/s/v"):  # fmt: skip
        with pytest.raises(CliError):
            parse_secret_id(bad)


def test_resolve_secret_ref_errors() -> None:
    assert resolve_secret_ref("v", "s", None, "ver") == KeyRef("v", "s", "ver")
    with pytest.raises(CliError, match="--id cannot be combined"):
        resolve_secret_ref("v", None, "https://v.vault.azure.net/secrets/s")
    with pytest.raises(CliError, match="--name"):
        resolve_secret_ref("v", None, None)
    with pytest.raises(CliError, match="must name a secret"):
        resolve_secret_ref(None, None, "https://v.vault.azure.net")
    assert resolve_secret_ref(None, None, "https://v.vault.azure.net", need_name=False) == KeyRef("v")

"""`kluis keyvault key` without a server: arguments parse, then one ERROR line; local checks and helpers."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kluis.cli.client import CliError
from kluis.cli.keys import Protection, _algorithm, _hex, _kty, _release_policy_arg, key_app


# -- the CLI surface without a server --------------------------------------------------------------
def test_cli_without_server_is_one_error_line(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        key_app,
        ["create", "--vault-name", "v", "-n", "k", "--ops", "sign", "verify", "--disabled",
         "--tags", "a=1", "b", "--data-dir", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code == 1, res.output  # parsed fine (not a usage error), then no server
    assert "ERROR: No kluis server configured" in res.output


def test_b64_and_hex_inputs_are_checked(tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--vault-name", "v", "-n", "k", "-a", "A256GCM", "--data-dir", str(tmp_path)]
    res = runner.invoke(key_app, ["encrypt", *common, "--value", "!!!"])
    assert res.exit_code == 1 and "--value is not valid base64" in res.output
    res = runner.invoke(key_app, ["encrypt", *common, "--value", base64.b64encode(b"x").decode(), "--iv", "xyz"])
    assert res.exit_code == 1 and "--iv must be hexadecimal" in res.output


# -- the pure helpers behind the verbs -------------------------------------------------------------
def test_kty_spelling_and_protection() -> None:
    assert _kty("ec", None) == "EC" and _kty("OCT-hsm", None) == "oct-HSM"
    assert _kty("rsa", Protection.hsm) == "RSA-HSM" and _kty("RSA-HSM", Protection.hsm) == "RSA-HSM"
    assert _kty("EC", Protection.software) == "EC"
    with pytest.raises(CliError, match="--kty must be one of EC, EC-HSM, RSA, RSA-HSM, oct, oct-HSM"):
        _kty("DSA", None)


def test_release_policy_argument(tmp_path: Path) -> None:
    assert _release_policy_arg(None, None) is None
    with pytest.raises(CliError, match="--immutable needs --policy"):
        _release_policy_arg(None, "true")
    path = tmp_path / "policy.json"
    path.write_text('{"version": "1.0.0",\n "anyOf": []}')
    policy = _release_policy_arg(str(path), "yes")
    assert policy.encoded_policy == b'{"version":"1.0.0","anyOf":[]}'  # compact JSON, as az sends it
    assert policy.immutable is True and policy.content_type == "application/json; charset=utf-8"
    assert _release_policy_arg('{"a": 1}', None).immutable is None
    with pytest.raises(CliError, match="--policy is neither a JSON file nor valid JSON"):
        _release_policy_arg("{nope", None)


def test_algorithm_enum_when_known_else_the_string() -> None:
    from azure.keyvault.keys.crypto import EncryptionAlgorithm

    assert _algorithm(EncryptionAlgorithm, "A256GCM") is EncryptionAlgorithm.a256_gcm
    assert _algorithm(EncryptionAlgorithm, "FUTURE-ALG") == "FUTURE-ALG"  # left for the server to judge


def test_hex() -> None:
    assert _hex(b"\x00\xff") == "00ff" and _hex(b"") is None and _hex(None) is None

"""`kluis keyvault key` without a server: arguments parse, then one ERROR line; local input checks."""

from __future__ import annotations

import base64
from pathlib import Path

from typer.testing import CliRunner

from kluis.cli.keys import key_app


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

"""What every kluis command shares: help pages, --version, and the one-line ERROR idiom."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kluis.cli.main import app

ROOT = typer.main.get_command(app)


def _commands(cmd: typer.core.TyperGroup | typer.core.TyperCommand, path: tuple[str, ...] = ()) -> Iterator[tuple]:
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


ALL = list(_commands(ROOT))


def test_the_command_tree_is_walked() -> None:
    names = {" ".join(p) for p, _ in ALL}
    assert {"serve", "exec", "keyvault key create", "ad sp create-for-rbac", "attestation add"} <= names


@pytest.mark.parametrize(("path", "cmd"), ALL, ids=[" ".join(p) or "kluis" for p, _ in ALL])
def test_help_renders_flags_bare_and_names_every_env_var(path: tuple[str, ...], cmd: typer.core.TyperCommand) -> None:
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "<bool>" not in res.output
    for param in cmd.params:
        for var in [param.envvar] if isinstance(param.envvar, str) else param.envvar or []:
            assert var in res.output, f"{' '.join(path)} --help does not show {var}"


def test_version() -> None:
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"kluis {version('kluis')}"


def test_exec_help_documents_the_command_after_double_dash() -> None:
    out = CliRunner().invoke(app, ["exec", "--help"], env={"COLUMNS": "200"}).output
    assert "exec [OPTIONS] -- CMD [ARGS]..." in out


def _kluis(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "KLUIS_DATA_DIR")}
    return subprocess.run(
        [sys.executable, "-m", "kluis", *args], capture_output=True, text=True, timeout=60, env={**env, "TERM": "dumb"}
    )


@pytest.mark.parametrize(
    "verb",
    [("group", "list"), ("attestation", "list"), ("keyvault", "key", "show", "--vault-name", "v", "-n", "k")],
    ids=["management", "attestation", "key"],
)
def test_error_is_one_unwrapped_line_through_a_pipe(tmp_path: Path, verb: tuple[str, ...]) -> None:
    """Every verb family reports the same way: one ``ERROR:`` line, however long, exit code 1."""
    deep = tmp_path / ("a-rather-long-directory-name-" * 4) / "data"
    res = _kluis(*verb, "--data-dir", str(deep))
    assert res.returncode == 1
    assert res.stderr.splitlines() == [f"ERROR: No kluis server configured in {deep}; run `kluis serve` first."]
    assert len(res.stderr) > 120  # long enough that an 80-column console would have wrapped it

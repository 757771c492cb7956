"""``kluis db status|upgrade`` on a data directory, without a server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from kluis.cli.main import app
from kluis.store import SCHEMA_VERSION

FIXTURE = Path(__file__).parents[1] / "store" / "fixtures" / "schema_v1"


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def test_status_and_upgrade_of_a_first_release_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    code, out = _run("db", "status", "--data-dir", str(data))
    assert code == 0 and json.loads(out) == {"database": str(data / "kluis.db"), "version": 0, "latest": SCHEMA_VERSION}
    code, out = _run("db", "upgrade", "--data-dir", str(data))
    assert code == 0 and json.loads(out)["from"] == 0 and json.loads(out)["to"] == SCHEMA_VERSION
    code, out = _run("db", "status", "--data-dir", str(data))
    assert json.loads(out)["version"] == SCHEMA_VERSION


def test_no_database_is_one_error_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["db", "upgrade", "--data-dir", str(tmp_path / "empty")])
    assert res.exit_code == 1
    assert res.output.startswith("ERROR: No database at ") and "start `kluis serve` first" in res.output
    assert not (tmp_path / "empty" / "kluis.db").exists()  # nothing created


def test_status_and_upgrade_of_the_postgresql_database_a_node_serves(tmp_path: Path, postgres_url: str) -> None:
    """A node's server.json names its PostgreSQL database; ``kluis db`` works on that (password hidden)."""
    from kluis.config import DataDir, ServerSettings

    data = DataDir(tmp_path / "node").ensure()
    with_password = postgres_url.replace("://kluis@", "://kluis:hunter2@")  # trust auth ignores it
    data.write_server(ServerSettings(database=with_password))
    code, out = _run("db", "status", "--data-dir", str(data.path))
    assert code == 0 and json.loads(out) == {"database": postgres_url, "version": 0, "latest": SCHEMA_VERSION}
    code, out = _run("db", "upgrade", "--data-dir", str(data.path))
    assert code == 0 and (json.loads(out)["from"], json.loads(out)["to"]) == (0, SCHEMA_VERSION)
    code, out = _run("db", "status", "--data-dir", str(data.path))
    assert json.loads(out)["version"] == SCHEMA_VERSION and "hunter2" not in out

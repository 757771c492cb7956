"""The package's metadata and `make run`: an SPDX licence string, and running installs only what running needs."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_licence_is_an_spdx_string_the_build_backend_understands() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "Apache-2.0"  # a table is deprecated by setuptools (PEP 639)
    assert "setuptools>=77" in meta["build-system"]["requires"]  # the first setuptools that takes the string


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_installs_the_package_without_dev_tools(tmp_path: Path) -> None:
    plan = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), "run", f"VENV={tmp_path / 'venv'}"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    assert "pip install --quiet -e .\n" in plan
    assert "[dev]" not in plan and ".run-installed-" in plan  # its own stamp, apart from the dev install's
    assert plan.rstrip().endswith("kluis serve")

"""README "Testing with kluis": its example files are the ones CI runs, and its GitHub Actions job works as written.

The job's ``run:`` steps are executed in a shell, in order, against a copy of this repository: a fresh
virtual environment gets kluis from that copy through the job's own ``pip install``, ``kluis serve
--detach`` starts the server, ``kluis exec -- python -m pytest`` runs a small test suite against it, and
``kluis stop`` stops it. Offline: the new environment sees this one's installed packages (kluis's
dependencies, pytest, setuptools) and pip installs kluis alone from the copy (PIP_NO_DEPS, PIP_NO_INDEX).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kluis.cli.daemon import alive
from kluis.testing import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Testing with kluis\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(), flags=re.S)


def test_the_readme_example_files_are_the_ones_ci_runs() -> None:
    python, yamls = _blocks("python"), _blocks("yaml")
    assert python[0] == (HERE / "test_with_kluis.py").read_text()
    assert yamls[0] == (HERE / "kluis-seed.yaml").read_text()


def test_the_readme_names_the_measured_figures() -> None:
    assert "SESSION_START" not in _section() and "PER_VAULT" not in _section()


def _job() -> dict[str, Any]:
    workflow = yaml.safe_load(_blocks("yaml")[1])
    job: dict[str, Any] = workflow["jobs"]["test"]
    return job


PROJECT_TEST = """
import os

from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient


def test_the_app_reaches_the_vault_kluis_exec_names():
    client = SecretClient(os.environ["VAULT_URL"], DefaultAzureCredential())
    client.set_secret("from-ci", "works")
    assert client.get_secret("from-ci").value == "works"
"""

_NOT_COPIED = shutil.ignore_patterns(
    ".venv", ".git", "node_modules", ".cache", ".m2", "target", "build", "*.egg-info", "__pycache__",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", "results",
)  # fmt: skip


def _fresh_venv(tmp: Path) -> Path:
    """A venv without pip whose interpreter sees this environment's packages except kluis itself; its
    ``pip`` is this environment's pip acting on it (``pip --python``)."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    here = Path(sysconfig.get_paths()["purelib"])
    deps = tmp / "deps"
    deps.mkdir()
    for entry in here.iterdir():
        name = entry.name.lower()
        if name.startswith(("kluis", "__editable__", "_kluis")) or name.endswith(".pth"):
            continue
        (deps / entry.name).symlink_to(entry)
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "_deps_of_the_test_environment.pth").write_text(f"{deps}\n")
    pip = venv / "bin" / "pip"
    pip.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pip --python "{venv / "bin" / "python"}" "$@"\n')
    pip.chmod(0o755)
    return venv


def test_the_github_actions_job_runs_as_written(tmp_path: Path) -> None:
    job = _job()
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    source = tmp_path / "kluis-copy"
    shutil.copytree(ROOT, source, ignore=_NOT_COPIED, symlinks=True)
    venv = _fresh_venv(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_app.py").write_text(PROJECT_TEST)

    this_venv_bin = str(Path(sys.executable).parent)
    path = [str(venv / "bin")] + [p for p in os.environ.get("PATH", "").split(os.pathsep) if p != this_venv_bin]
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("KLUIS_", "AZURE_", "PIP_", "VIRTUAL_ENV", "PYTEST_"))
        and k.lower() not in ("https_proxy", "http_proxy")
    }  # fmt: skip
    env.update({k: str(v).replace("${{ runner.temp }}", str(runner_temp)) for k, v in job["env"].items()})
    env.update(
        PATH=os.pathsep.join(path), VIRTUAL_ENV=str(venv), KLUIS_SOURCE=f"kluis @ {source.as_uri()}",
        KLUIS_PORT=str(free_port()), KLUIS_PROXY_PORT=str(free_port()), KLUIS_WORKERS="1",
        PIP_NO_INDEX="1", PIP_NO_DEPS="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
    )  # fmt: skip
    data_dir = Path(env["KLUIS_DATA_DIR"])
    steps = [step for step in job["steps"] if "run" in step]
    assert [s["run"].split()[:3] for s in steps] == [
        ["pip", "install", '"$KLUIS_SOURCE"'], ["kluis", "serve", "--detach"], ["kluis", "exec", "--"],
        ["kluis", "stop"],
    ]  # fmt: skip
    outputs: list[str] = []
    try:
        for step in steps:
            began = time.monotonic()
            res = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                cwd=project, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            outputs.append(res.stdout + res.stderr)
            print(f"{step['name']}: {time.monotonic() - began:.1f} s")
            assert res.returncode == 0, f"{step['name']} failed:\n{res.stdout}\n{res.stderr}"
        installed = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import kluis, shutil; print(kluis.__file__, shutil.which('kluis'))"],
            capture_output=True, text=True, env=env, check=True, timeout=60,
        ).stdout  # fmt: skip
        assert str(venv) in installed and str(ROOT / "src") not in installed  # the copy, installed in the venv
        assert "kluis listening on https://localhost:" in outputs[1]
        assert "1 passed" in outputs[2]
        assert "kluis stopped" in outputs[3] and not (data_dir / "kluis.pid").exists()
    finally:
        pid_file = data_dir / "kluis.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_the_plain_python_example_runs(tmp_path: Path) -> None:
    """The README's ``kluis.testing`` example, as a script run beside the seed file."""
    script = tmp_path / "example.py"
    script.write_text(_blocks("python")[1])
    shutil.copy(HERE / "kluis-seed.yaml", tmp_path / "kluis-seed.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
    res = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 0, res.stderr
    printed = yaml.safe_load(res.stdout.replace("'", '"'))  # a dict's repr with only strings is JSON-like
    assert printed["HTTPS_PROXY"].startswith("http://127.0.0.1:") and printed["KEY_VAULT_NAME"].startswith("t")

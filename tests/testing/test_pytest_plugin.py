"""The pytest plugin: loaded everywhere so cheap to import, and its fixtures in a project of their own.

The fixture runs start a separate pytest (as a project that installed kluis would run it: the plugin
comes from the ``pytest11`` entry point) on a generated test file, and look at what it reports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

HEAVY = ("azure", "httpx", "requests", "aiohttp", "granian", "cryptography", "yaml")
KLUIS_INTERNALS = ("kluis.api", "kluis.cli", "kluis.store", "kluis.domain", "kluis.crypto", "kluis.identity")


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert found.get("kluis") == "kluis.testing.pytest_plugin"


def test_importing_the_plugin_imports_neither_the_sdk_nor_the_server() -> None:
    probe = textwrap.dedent(
        f"""
        import json, sys
        import kluis.testing.pytest_plugin
        heavy = {HEAVY!r}
        internals = {KLUIS_INTERNALS!r}
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith(internals))))
        """
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []


def _run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in ``project`` (its own rootdir and ini), with an environment free of kluis/Azure/proxy variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KLUIS_", "AZURE_", "PYTEST_")) and k.lower() not in ("https_proxy", "http_proxy")
        and k not in ("KEY_VAULT_NAME", "VAULT_URL")
    }  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=project, capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip


PROJECT_TESTS = """
import asyncio, json, os
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError

OUT = Path(__file__).parent / "facts.json"


def record(**facts):
    known = json.loads(OUT.read_text()) if OUT.exists() else {}
    OUT.write_text(json.dumps({**known, **facts}))


@pytest.mark.kluis_vault(key_permissions=["get", "create"], secret_permissions=["get"])
def test_marker_grants_exactly_what_it_names(kluis_server, kluis_vault):
    record(data_dir=str(kluis_server.data_dir), startup=kluis_server.startup_seconds, vault=kluis_vault.name)
    keys = kluis_vault.key_client()
    assert keys.create_ec_key("k1").name == "k1"
    with pytest.raises(HttpResponseError) as e:
        keys.begin_delete_key("k1")
    assert e.value.status_code == 403
    with pytest.raises(HttpResponseError) as e:
        kluis_vault.secret_client().set_secret("s", "v")
    assert e.value.status_code == 403


def test_the_previous_vault_was_deleted(kluis_server):
    names = {v["name"] for v in kluis_server.admin("GET", "/vaults")["value"]}
    assert json.loads(OUT.read_text())["vault"] not in names


def test_no_marker_means_every_permission(kluis_vault):
    client = kluis_vault.secret_client()
    client.set_secret("s", "v")
    client.begin_delete_secret("s").wait()
    client.purge_deleted_secret("s")


@pytest.mark.parametrize("kluis_vault", [{"key_permissions": ["list"]}], indirect=True)
def test_indirect_parametrization(kluis_vault):
    assert list(kluis_vault.key_client().list_properties_of_keys()) == []
    with pytest.raises(HttpResponseError):
        kluis_vault.key_client().create_rsa_key("nope")


def test_factory_makes_independent_vaults(kluis_vault_factory):
    reader = kluis_vault_factory(secret_permissions=["get"])
    writer = kluis_vault_factory(name=reader.name + "w", secret_permissions=["set"])
    writer.secret_client().set_secret("x", "1")
    assert reader.name != writer.name and reader.client_id != writer.client_id
    with pytest.raises(HttpResponseError):
        reader.secret_client().get_secret("x")  # another vault: not found


@pytest.mark.kluis_vault(seed="seed.json")
def test_seed_from_a_marker(kluis_vault):
    assert kluis_vault.secret_client().get_secret("greeting").value == "hello"


def test_env_is_set_for_the_test(kluis_vault, kluis_env):
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    assert os.environ["KEY_VAULT_NAME"] == kluis_vault.name and kluis_env["AZURE_CLIENT_ID"] == kluis_vault.client_id
    client = SecretClient(f"https://{os.environ['KEY_VAULT_NAME']}.vault.azure.net", DefaultAzureCredential())
    client.set_secret("plain", "code")
    assert client.get_secret("plain").value == "code"


def test_env_is_gone_afterwards():
    assert "KEY_VAULT_NAME" not in os.environ and "HTTPS_PROXY" not in os.environ


def test_clock_moves_and_housekeeping_runs(kluis_clock):
    before = kluis_clock.now()
    result = kluis_clock.advance(days=31)
    assert kluis_clock.offset == 31 * 86400 and kluis_clock.now() >= before + 31 * 86400
    assert set(result) >= {"purged", "rotated", "failed"}


def test_clock_was_reset(kluis_clock):
    assert kluis_clock.offset == 0
"""


@pytest.mark.slow
def test_fixtures_in_a_project_of_their_own(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "seed.json").write_text(json.dumps({"secrets": {"greeting": {"value": "hello"}}}))
    (tmp_path / "test_project.py").write_text(PROJECT_TESTS)
    res = _run_pytest(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "10 passed" in res.stdout
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert not Path(facts["data_dir"]).exists()  # everything passed: the server's directory is gone
    print(f"session start (server ready): {facts['startup']:.2f} s")


@pytest.mark.slow
def test_a_failing_run_keeps_the_server_log_and_names_it(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_fails.py").write_text(
        "def test_fails(kluis_vault):\n    assert kluis_vault.name == 'something else'\n"
    )
    res = _run_pytest(tmp_path)
    assert res.returncode == 1
    kept = [line for line in res.stdout.splitlines() if line.startswith("kluis: server data and log kept in ")]
    assert len(kept) == 1, res.stdout
    data_dir = Path(kept[0].split(" kept in ", 1)[1].split(" (log: ")[0])
    try:
        assert "kluis listening on" in (data_dir / "kluis.log").read_text()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.slow
def test_a_marker_with_an_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_typo.py").write_text(
        "import pytest\n\n@pytest.mark.kluis_vault(key_permisions=['get'])\ndef test_typo(kluis_vault):\n    pass\n"
    )
    res = _run_pytest(tmp_path)
    assert res.returncode != 0
    assert "unknown option(s) key_permisions" in res.stdout + res.stderr

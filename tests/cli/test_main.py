"""The `kluis` command: its help pages, --version, the one-line ERROR idiom, and the management verbs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from kluis.cli.main import app
from tests.cli.conftest import InProcess

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


# -- the management verbs against an in-process kluis ------------------------------------------------
def _run(kluis: InProcess, *args: str) -> Any:
    res = CliRunner().invoke(app, [*args, "--data-dir", str(kluis.data_dir.path)])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout) if res.stdout.strip() else None


def test_groups_and_vaults(kluis: InProcess) -> None:
    assert _run(kluis, "group", "create", "-n", "rg1", "-l", "westeurope")["location"] == "westeurope"
    assert [g["name"] for g in _run(kluis, "group", "list")] == ["kluis", "rg1"]
    vault = _run(kluis, "keyvault", "create", "-n", "vault1", "-g", "rg1", "--retention-days", "7",
                 "--enable-purge-protection")  # fmt: skip
    assert vault["properties"]["softDeleteRetentionInDays"] == 7 and vault["properties"]["enablePurgeProtection"]
    assert [v["name"] for v in _run(kluis, "keyvault", "list", "-g", "rg1")] == ["vault1"]
    assert _run(kluis, "group", "delete", "-n", "rg1", "--yes") == {"deletedVaults": ["vault1"]}


def test_policies_take_az_style_space_separated_permissions(kluis: InProcess) -> None:
    sp = _run(kluis, "ad", "sp", "create-for-rbac", "-n", "app1")
    assert set(sp) == {"appId", "displayName", "password", "tenant"} and sp["tenant"] == kluis.runtime.tenant_id
    policy = _run(kluis, "keyvault", "set-policy", "-n", "default", "--spn", sp["appId"],
                  "--key-permissions", "get", "list,create", "--secret-permissions", "get")  # fmt: skip
    assert policy["permissions"] == {"keys": ["get", "list", "create"], "secrets": ["get"], "certificates": []}
    shown = _run(kluis, "keyvault", "show", "-n", "default")["properties"]["accessPolicies"]
    assert len(shown) == 2
    _run(kluis, "keyvault", "delete-policy", "-n", "default", "--spn", sp["appId"])
    assert len(_run(kluis, "keyvault", "show", "-n", "default")["properties"]["accessPolicies"]) == 1
    res = CliRunner().invoke(app, ["keyvault", "set-policy", "-n", "default", "--data-dir", str(kluis.data_dir.path)])
    assert res.exit_code == 2 and "give --spn or --object-id" in res.output


def test_create_for_rbac_reuses_a_name_like_az(kluis: InProcess) -> None:
    first = _run(kluis, "ad", "sp", "create-for-rbac", "-n", "app")
    res = CliRunner().invoke(app, ["ad", "sp", "create-for-rbac", "-n", "app", "--data-dir", str(kluis.data_dir.path)])
    again = json.loads(res.stdout)
    assert again["appId"] == first["appId"] and again["password"] != first["password"]
    assert res.stderr.startswith("WARNING: Found an existing application instance: (id) ")
    assert _run(kluis, "ad", "sp", "show", "--id", first["appId"])["displayName"] == "app"
    _run(kluis, "ad", "sp", "delete", "--id", first["appId"])
    assert [p["displayName"] for p in _run(kluis, "ad", "sp", "list")] == ["kluis-admin"]


def test_time_and_housekeeping(kluis: InProcess) -> None:
    assert _run(kluis, "time", "set", "--offset", "60")["offsetSeconds"] == 60
    assert _run(kluis, "time", "show")["offsetSeconds"] == 60
    assert _run(kluis, "housekeeping") == {"purged": 0, "rotated": 0, "failed": 0, "auditPruned": 0}


def test_env_prints_quoted_exports(kluis: InProcess) -> None:
    res = CliRunner().invoke(app, ["env", "--direct", "--data-dir", str(kluis.data_dir.path)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines and all(line.startswith("export ") for line in lines)
    exported = dict(shlex.split(line[len("export ") :])[0].split("=", 1) for line in lines)
    admin = json.loads(kluis.data_dir.admin.read_text())
    assert exported["AZURE_TENANT_ID"] == "adfs" and exported["AZURE_AUTHORITY_HOST"] == "https://localhost:9443"
    assert (exported["AZURE_CLIENT_ID"], exported["AZURE_CLIENT_SECRET"]) == (admin["appId"], admin["password"])


def test_exec_needs_a_command(kluis: InProcess) -> None:
    res = CliRunner().invoke(app, ["exec", "--data-dir", str(kluis.data_dir.path)])
    assert res.exit_code == 2 and "give a command after --" in res.output


@pytest.mark.parametrize(
    ("flag", "env", "value", "meaning"),
    [
        ("--audit-retention-days", "KLUIS_AUDIT_RETENTION_DAYS", "-1", "0 (never delete)"),
        ("--audit-retention-count", "KLUIS_AUDIT_RETENTION_COUNT", "-5", "0 (keep all)"),
    ],
)
@pytest.mark.parametrize("via", ["flag", "env"])
def test_serve_rejects_a_negative_audit_retention_in_one_line(
    tmp_path: Path, flag: str, env: str, value: str, meaning: str, via: str
) -> None:
    """A negative retention used to be accepted and silently meant 'no limit'; now it is a usage error
    (exit 2), one line naming the flag, before anything is created. A free port and no proxy, and a
    bounded run: were the value accepted, the server would start and the timeout end the test."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "d"
    args = ["serve", "--data-dir", str(data), "--port", str(port), "--proxy-port", "0"]
    extra = {env: value} if via == "env" else {}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
    res = subprocess.run(
        [sys.executable, "-m", "kluis", *args, *([flag, value] if via == "flag" else [])],
        capture_output=True, text=True, timeout=20, env={**clean, **extra, "TERM": "dumb"},
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [f"ERROR: {flag} must be {meaning} or more, not {value}"]
    assert not data.exists()


def test_serve_reads_kluis_option_variables_and_no_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each serve option that has an environment variable reads KLUIS_<OPTION NAME> (--kek only
    KLUIS_KEK_SOURCE, not KLUIS_KEK); --hostname, --domain, --proxy-passthrough and --detach read none.
    The options fill ServerSettings by name, with --workers, --audit, --hostname and --domain read first."""
    import kluis.cli.daemon
    import kluis.cli.serve
    from kluis.config import ServerSettings

    started: list[ServerSettings] = []
    monkeypatch.setattr(kluis.cli.serve, "serve", lambda data_dir, settings, console: started.append(settings))
    monkeypatch.setattr(kluis.cli.daemon, "detach", lambda data_dir, settings: pytest.fail("KLUIS_DETACH was read"))
    for name in [k for k in os.environ if k.startswith("KLUIS_")]:
        monkeypatch.delenv(name)
    env = {
        "KLUIS_PORT": "9443", "KLUIS_KEY_POOL": "3", "KLUIS_AUDIT": "off", "KLUIS_ACCESS_LOG": "1",
        "KLUIS_SCHEDULER_INTERVAL": "2.5", "KLUIS_KEK": "env:NOT_READ", "KLUIS_HOSTNAME": "h.test",
        "KLUIS_DOMAIN": "d.test", "KLUIS_PROXY_PASSTHROUGH": "1", "KLUIS_DETACH": "1",
    }  # fmt: skip
    args = ["serve", "--data-dir", str(tmp_path), "--workers", "2", "--hostname", "a.test", "--metrics-port", "9"]
    res = CliRunner().invoke(app, args, env=env)
    assert res.exit_code == 0, res.output
    [settings] = started
    assert settings == ServerSettings(
        port=9443, key_pool=3, audit=False, access_log=True, scheduler_interval=2.5, workers=2,
        hostnames=["a.test"], metrics_port=9,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "option"),
    [
        (["--port", "70000"], {}, "--port"),  # used to end in an OverflowError traceback
        ([], {"KLUIS_PORT": "0"}, "--port"),
        (["--proxy-port", "-1"], {}, "--proxy-port"),
        (["--metrics-port", "65536"], {}, "--metrics-port"),
        ([], {"KLUIS_SCHEDULER_INTERVAL": "0"}, "--scheduler-interval"),  # used to busy-loop the scheduler
        (["--scheduler-interval", "-5"], {}, "--scheduler-interval"),
        ([], {"KLUIS_WORKERS": "-1"}, "--workers"),  # used to mean "one per core" silently
        (["--workers", "100"], {}, "--workers"),
        ([], {"KLUIS_KEY_POOL": "-3"}, "--key-pool"),
        ([], {"KLUIS_THROTTLE_LIMIT": "-1"}, "--throttle-limit"),
        (["--audit-flush-ms", "0"], {}, "--audit-flush-ms"),
    ],
)
def test_serve_refuses_out_of_range_values_as_a_usage_error_naming_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], option: str
) -> None:
    import kluis.cli.serve

    monkeypatch.setattr(kluis.cli.serve, "serve", lambda *a: pytest.fail("started with an out-of-range value"))
    for name in [k for k in os.environ if k.startswith("KLUIS_")]:
        monkeypatch.delenv(name)
    res = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "d"), *args], env={**env, "COLUMNS": "200"})
    assert res.exit_code == 2, res.output
    assert f"Invalid value for '{option}'" in res.output and ("than or equal to" in res.output), res.output
    assert not (tmp_path / "d").exists()


def test_a_database_that_is_not_postgresql_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--database mysql://x`` was taken for a SQLite file name ("[Errno 2] No such file...: 'mysql://x'")."""
    import kluis.cli.serve

    monkeypatch.setattr(kluis.cli.serve, "serve", lambda *a: pytest.fail("started with an unsupported database"))
    for name in [k for k in os.environ if k.startswith("KLUIS_")]:
        monkeypatch.delenv(name)
    for value, what in (("mysql://x/db", "mysql://"), ("rel.db", "a file path"), ("/abs/k.db", "a file path")):
        res = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "d"), "--database", value],
                                 env={"COLUMNS": "200"})  # fmt: skip
        assert res.exit_code == 2
        assert "--database must be a postgresql:// URL (or empty: SQLite in the data dir" in res.output
        assert f"not {what}" in res.output


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--hostname", "--help"),  # was stored as a host name
        ("--hostname", "kv_1.corp.test"),
        ("--hostname", "-kv.corp.test"),
        ("--hostname", "kv-.corp.test"),
        ("--hostname", "kv..corp.test"),
        ("--hostname", "."),
        ("--hostname", ""),
        ("--hostname", "https://kv.corp.test"),
        ("--hostname", "kv.corp.test:8443"),
        ("--hostname", "a" * 64 + ".test"),  # a label of 64
        ("--hostname", ".".join(["a" * 63] * 4)),  # 255 characters
        ("--domain", "corp test"),
        ("--domain", "10.0.0.5"),  # vaults are NAME.DOMAIN: an address is no domain
        ("--domain", "*.corp.test"),
    ],
)
def test_serve_refuses_a_name_that_is_no_dns_host_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str, value: str
) -> None:
    import kluis.cli.serve

    monkeypatch.setattr(kluis.cli.serve, "serve", lambda *a: pytest.fail(f"started with {flag} {value!r}"))
    for name in [k for k in os.environ if k.startswith("KLUIS_")]:
        monkeypatch.delenv(name)
    res = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "d"), f"{flag}={value}"])
    assert res.exit_code == 2, res.output
    assert res.output.startswith(f"ERROR: {flag} must be a DNS "), res.output
    assert repr(value) in res.output
    assert not (tmp_path / "d").exists()


def test_serve_stores_host_names_without_a_trailing_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``kv2.corp.test.`` is ``kv2.corp.test`` to DNS; kept with its dot it broke the SDK's challenge
    check. IP addresses (v4, v6, bracketed v6) and the longest legal labels and names are host names."""
    import kluis.cli.serve
    from kluis.config import ServerSettings

    started: list[ServerSettings] = []
    monkeypatch.setattr(kluis.cli.serve, "serve", lambda data_dir, settings, console: started.append(settings))
    for name in [k for k in os.environ if k.startswith("KLUIS_")]:
        monkeypatch.delenv(name)
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
    hosts = ["kv2.corp.test.", "Kv-3.Corp.Test", "myhost", "10.0.0.5", "fd00::5", "[::1]", longest]
    args = ["serve", "--data-dir", str(tmp_path), *(f"--hostname={h}" for h in hosts), "--domain", "kms.test."]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    [settings] = started
    assert settings.hostnames == ["kv2.corp.test", "Kv-3.Corp.Test", "myhost", "10.0.0.5", "fd00::5", "::1", longest]
    assert settings.domains == ["kms.test"]


def test_an_unreachable_postgresql_is_one_line_naming_it_without_its_password(tmp_path: Path) -> None:
    """It was a 101-line traceback ending in psycopg's OperationalError."""
    from kluis.api.runtime import Runtime
    from kluis.config import DataDir, ServerSettings, StartupError
    from tests.e2e.server import free_port

    url = f"postgresql://kluis:s3cret@127.0.0.1:{free_port()}/kluis?connect_timeout=2"
    with pytest.raises(StartupError) as err:
        Runtime(DataDir(tmp_path / "d"), ServerSettings(database=url), bootstrap=True)
    message = str(err.value)
    assert message.startswith("Cannot open the database postgresql://kluis@127.0.0.1:") and "\n" not in message
    assert "s3cret" not in message and ("refused" in message or "failed" in message), message
    # libpq quotes a malformed password back in its message (a tester's find): masked too
    bad = f"postgresql://kl:p%ZZw@127.0.0.1:{free_port()}/kluis"
    with pytest.raises(StartupError) as err:
        Runtime(DataDir(tmp_path / "e"), ServerSettings(database=bad), bootstrap=True)
    assert "ZZw" not in str(err.value) and str(err.value).startswith("Cannot open the database"), str(err.value)


def test_a_start_that_fails_on_its_kek_names_the_source_the_data_dir_was_last_started_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started once with ``--kek env:VAR``, then without it: the default kek.key is missing, and the
    error says which source server.json records instead of only 'restore kek.key'."""
    import kluis.cli.serve
    from kluis.config import DataDir, ServerSettings, StartupError

    data = DataDir(tmp_path / "d").ensure()
    data.write_server(ServerSettings(kek="env:MY_KEK"))

    def refuse(*a: object) -> None:
        raise StartupError(f"The key-encryption key file {data.kek} is missing.")

    monkeypatch.setattr(kluis.cli.serve, "serve", refuse)
    for name in [k for k in os.environ if k.startswith("KLUIS_")]:
        monkeypatch.delenv(name)
    res = CliRunner().invoke(app, ["serve", "--data-dir", str(data.path)])
    assert res.exit_code == 1, res.output
    assert "last started with --kek env:MY_KEK" in res.output and "KLUIS_KEK_SOURCE" in res.output
    res = CliRunner().invoke(app, ["serve", "--data-dir", str(data.path), "--kek", "env:MY_KEK"], env={"MY_KEK": "x"})
    assert "last started with" not in res.output  # the same source: nothing to add

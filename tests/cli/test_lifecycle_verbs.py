"""The verbs every kind shares, driven through the CLI against a recording stand-in for the SDK client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kluis.cli import lifecycle_verbs
from kluis.cli.common import KluisTyper
from kluis.cli.object_ref import Kind
from kluis.cli.output import Output, emit
from kluis.cli.verbs import Address, Verbs
from tests.cli.fake_sdk import FakeClient, Item, data_dir

runner = CliRunner()


def _print(data: Any, output: Output) -> None:
    emit(data, output)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[KluisTyper, list[str]]]:
    FakeClient.made.clear()
    app = KluisTyper()
    verbs = Verbs(app, Kind("fake"), lambda: FakeClient, _print, {})
    lifecycle_verbs.listings(verbs, lambda i: {"name": i.name}, list_doc="L.", versions_doc="V.", deleted_doc="D.")
    lifecycle_verbs.by_name(verbs, "show", "Show.", lambda c, r: {"name": r.named, "version": r.version},
                            address=Address.VERSION)  # fmt: skip
    lifecycle_verbs.by_name(verbs, "purge", "Purge.", lambda c, r: c.calls.append(("purge", r.named)), prints=False)
    lifecycle_verbs.backup(verbs, "Backup.", lambda c, name: f"blob of {name}".encode())
    lifecycle_verbs.restore(verbs, "Restore.", lambda c, blob: Item(blob.decode()), lambda i: {"name": i.name})
    yield app, ["--data-dir", str(data_dir(tmp_path).path)]


def _json(app: KluisTyper, *args: str) -> Any:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return json.loads(res.output) if res.output else None


def test_limited() -> None:
    assert lifecycle_verbs.limited(iter(range(10)), 3) == [0, 1, 2]
    assert lifecycle_verbs.limited(iter(range(4)), None) == [0, 1, 2, 3]


def test_listings_call_the_kinds_sdk_methods(app: tuple[KluisTyper, list[str]]) -> None:
    cli, dd = app
    at = ["--vault-name", "v", *dd]
    assert _json(cli, "list", *at) == [{"name": "a"}, {"name": "b"}, {"name": "c"}]  # managed ones left out
    assert [i["name"] for i in _json(cli, "list", *at, "--include-managed")] == ["a", "m", "b", "c"]
    assert _json(cli, "list", *at, "--maxresults", "2") == [{"name": "a"}, {"name": "b"}]
    assert _json(cli, "list-versions", *at, "-n", "x") == [{"name": "x/1"}, {"name": "x/2"}]
    assert _json(cli, "list-deleted", *at, "--maxresults", "5") == [{"name": "gone"}]
    calls = [c for client in FakeClient.made for c in client.calls]
    assert calls == [("list", None), ("list", None), ("list", 2), ("versions", "x", None), ("deleted", 5)]
    assert FakeClient.made[0].vault_url == "https://v.vault.azure.net"


def test_by_name_backup_restore(app: tuple[KluisTyper, list[str]], tmp_path: Path) -> None:
    cli, dd = app
    at = ["--vault-name", "v", *dd]
    assert _json(cli, "show", *at, "-n", "x", "--version", "3") == {"name": "x", "version": "3"}
    assert _json(cli, "purge", *at, "-n", "x") is None and FakeClient.made[-1].calls == [("purge", "x")]
    blob = tmp_path / "b.blob"
    assert _json(cli, "backup", "-f", str(blob), *at, "-n", "x") is None
    assert blob.read_bytes() == b"blob of x"
    assert _json(cli, "restore", "--file", str(blob), *at) == {"name": "blob of x"}


def test_restore_reads_the_file_before_connecting(app: tuple[KluisTyper, list[str]], tmp_path: Path) -> None:
    cli, _ = app
    res = runner.invoke(cli, ["restore", "-f", str(tmp_path / "missing"), "--vault-name", "v",
                              "--data-dir", str(tmp_path / "empty")])  # fmt: skip
    assert res.exit_code == 1 and "No such file" in res.output and FakeClient.made == []

"""Verbs: the shared flags (addressing, --data-dir, --output) laid out in az's order, flag groups, Target."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from kluis.cli.client import CliError
from kluis.cli.common import KluisTyper
from kluis.cli.object_ref import Kind, ObjectRef
from kluis.cli.output import Output, emit
from kluis.cli.verbs import Address, ChangedAttributes, NewAttributes, Target, Verbs
from tests.cli.fake_sdk import FakeClient, data_dir

FAKE = Kind("fake")
runner = CliRunner()


def _print(data: Any, output: Output) -> None:
    emit(data, output)


def _verbs(**help: str) -> tuple[KluisTyper, Verbs[FakeClient]]:
    app = KluisTyper()
    app.callback()(lambda: None)  # a group even with one verb, as in `kluis keyvault key`
    return app, Verbs(app, FAKE, lambda: FakeClient, _print, help)


@dataclass(frozen=True)
class Inner:
    first: Annotated[str, typer.Option("--first")]
    second: Annotated[str | None, typer.Option("--second")] = None


@dataclass(frozen=True)
class Outer:
    inner: Inner
    third: Annotated[str | None, typer.Option("--third")] = None


def _flags(app: KluisTyper, verb: str) -> list[tuple[str, str | None]]:
    cmd: Any = typer.main.get_command(app)
    return [(p.opts[0], p.help) for p in cmd.commands[verb].params]


def test_flags_in_azs_order_with_the_kinds_help() -> None:
    app, verbs = _verbs(object_id="Fake identifier.")

    @verbs.command("one", Address.VERSION)
    def one(target: Target[FakeClient], req: Annotated[str, typer.Option("--req")], opt: int = 1) -> Any:
        """Docstring becomes the help."""

    @verbs.command("two", Address.VAULT, prints=False)
    def two(target: Target[FakeClient], attrs: NewAttributes) -> None: ...

    @verbs.command("three")
    def three(target: Target[FakeClient], outer: Outer) -> None: ...

    assert _flags(app, "one") == [
        ("--req", None), ("--vault-name", "Name of the vault."), ("--name", "Name of the fake."),
        ("--id", "Fake identifier."), ("--version", "Fake version (default: latest)."), ("--opt", None),
        ("--data-dir", "Where kluis keeps its state."), ("--output", "json, table, tsv or none."),
    ]  # fmt: skip
    assert [o for o, _ in _flags(app, "two")] == [
        "--vault-name", "--id", "--tags", "--disabled", "--not-before", "--expires", "--data-dir",
    ]  # fmt: skip
    assert ("--disabled", "Create the fake disabled.") in _flags(app, "two")
    assert ("--id", "Vault URL, e.g. https://NAME.vault.azure.net.") in _flags(app, "two")
    # nested groups expand in place; a group's required flag goes first with the verb's required flags
    assert [o for o, _ in _flags(app, "three")] == [
        "--first", "--vault-name", "--name", "--id", "--second", "--third", "--data-dir", "--output",
    ]  # fmt: skip
    assert "Docstring becomes the help." in runner.invoke(app, ["one", "--help"]).output


def test_the_verb_gets_its_target_and_groups_and_its_result_is_printed() -> None:
    app, verbs = _verbs()
    seen: dict[str, Any] = {}

    @verbs.command("show", Address.VERSION, az_args=True)
    def show(target: Target[FakeClient], attrs: NewAttributes, outer: Outer) -> dict[str, Any]:
        seen.update(target=target, attrs=attrs, outer=outer)
        return {"disabled": attrs.is_disabled(), **{k: str(v) for k, v in attrs.dated().items()}}

    args = ["show", "--vault-name", "v", "-n", "x", "-v", "7", "--first", "1", "--third", "3",
            "--tags", "a=1", "b", "--disabled", "--expires", "2030-01-31T12:00:00Z"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    target = seen["target"]
    assert (target.vault_name, target.name, target.version, target.object_id) == ("v", "x", "7", None)
    assert target.need_name and target.kind == FAKE
    assert seen["outer"] == Outer(Inner("1", None), "3")
    assert json.loads(res.output) == {
        "disabled": True, "expires_on": str(datetime(2030, 1, 31, 12, tzinfo=UTC)), "not_before": "None",
        "tags": str({"a": "1", "b": ""}),
    }  # fmt: skip


def test_errors_are_one_error_line() -> None:
    app, verbs = _verbs()

    @verbs.command("boom", Address.VAULT)
    def boom(target: Target[FakeClient]) -> None:
        assert not target.need_name
        raise CliError("it broke")

    res = runner.invoke(app, ["boom"])
    assert res.exit_code == 1 and res.output == "ERROR: it broke\n"


def test_changed_attributes_leave_what_is_not_given() -> None:
    assert ChangedAttributes().dated() == {"tags": None, "not_before": None, "expires_on": None}
    assert ChangedAttributes(tags=[""]).dated()["tags"] == {}  # --tags "" clears them
    with pytest.raises(CliError, match="Invalid date/time"):
        NewAttributes(not_before="soon").dated()
    with pytest.raises(CliError, match="--disabled must be true or false"):
        NewAttributes(disabled="maybe").is_disabled()


def test_target_connects_to_the_named_vault(tmp_path: Path) -> None:
    target = Target(FAKE, lambda: FakeClient, data_dir(tmp_path).path, None, None,
                    "https://v1.vault.azure.net/fakes/f/9", None, need_name=True)  # fmt: skip
    client, ref = target.connect()
    assert isinstance(client, FakeClient) and client.vault_url == "https://v1.vault.azure.net"
    assert ref == ObjectRef("v1", "f", "9")
    with pytest.raises(CliError, match="Give --name"):
        Target(FAKE, lambda: FakeClient, data_dir(tmp_path).path, "v", None, None, None, need_name=True).connect()

"""What every kluis command shares: one ERROR line, exit 1 for expected failures, the data dir, command classes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
import typer
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from typer.testing import CliRunner

from kluis.cli.client import CliError
from kluis.cli.common import KluisTyper, data_dir_of, describe_error, fail, run


class _Resp:
    status_code = 404
    reason = "Not Found"
    headers: dict[str, str] = {}  # noqa: RUF012

    def text(self) -> str:
        return json.dumps({"error": {"code": "KeyNotFound", "message": "A key with (name/id) x was not found."}})


def test_describe_error() -> None:
    err = HttpResponseError(response=_Resp())  # type: ignore[arg-type]
    assert describe_error(err) == "(KeyNotFound) A key with (name/id) x was not found."
    assert describe_error(ValueError("first line\nsecond")) == "first line"
    assert describe_error(ValueError("\n  \n")) == "ValueError"
    assert describe_error(KeyError()) == "KeyError"


def test_fail_writes_one_line_whatever_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    exit_ = fail("a message\nspread over   lines", 3)
    assert isinstance(exit_, typer.Exit) and exit_.exit_code == 3
    assert capsys.readouterr().err == "ERROR: a message spread over lines\n"


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (CliError("no server"), "ERROR: no server"),
        (ValueError("bad value"), "ERROR: bad value"),
        (FileNotFoundError("no such file"), "ERROR: no such file"),
        (HttpResponseError(response=_Resp()), "ERROR: (KeyNotFound) A key with (name/id) x was not found."),  # type: ignore[arg-type]
        (ClientAuthenticationError("bad secret"), "ERROR: Sign-in to kluis failed: bad secret"),
        (ServiceRequestError("refused"), "ERROR: Cannot reach kluis: refused. Is `kluis serve` running?"),
    ],
)
def test_run_turns_expected_failures_into_exit_1(exc: Exception, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    def boom() -> None:
        raise exc

    with pytest.raises(typer.Exit) as err:
        run(boom)
    assert err.value.exit_code == 1
    assert capsys.readouterr().err == line + "\n"


def test_run_passes_results_and_lets_bugs_through() -> None:
    def add(a: int, b: int = 0) -> int:
        return a + b

    assert run(add, 1, b=2) == 3

    def bug() -> None:
        raise KeyError("a bug, not a user error")

    with pytest.raises(KeyError):
        run(bug)


def test_data_dir_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_dir_of(Path("~/kd")).path == tmp_path / "kd"
    monkeypatch.setenv("KLUIS_DATA_DIR", str(tmp_path / "from-env"))
    assert data_dir_of(None).path == tmp_path / "from-env"


def test_kluis_typer_shows_help_bare_and_flags_without_placeholder() -> None:
    app = KluisTyper(help="Demo.")

    @app.command("go")
    def go(loud: Annotated[bool, typer.Option("--loud", help="Shout.")] = False) -> None:
        print("LOUD" if loud else "quiet")

    @app.command("other")
    def other() -> None:
        """Another."""

    runner = CliRunner()
    bare = runner.invoke(app, [], env={"COLUMNS": "200"})
    assert "Usage" in bare.output and "go" in bare.output and "--install-completion" not in bare.output
    help_ = runner.invoke(app, ["go", "--help"], env={"COLUMNS": "200"}).output
    assert "--loud" in help_ and "<bool>" not in help_ and "BOOLEAN" not in help_
    assert runner.invoke(app, ["go", "--loud"]).output == "LOUD\n"

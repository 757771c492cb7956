from __future__ import annotations

import json

import pytest

from kluis.cli.output import Output, emit


def test_json_tsv_table(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"name": "a", "n": 1, "nested": {"x": 1}}, {"name": "b", "n": None}]
    emit(rows, Output.json)
    assert json.loads(capsys.readouterr().out) == rows
    emit(rows, Output.tsv)
    assert capsys.readouterr().out.splitlines() == ["a\t1", "b\t"]
    from rich.console import Console

    console = Console(record=True, width=80)
    emit(rows, Output.table, console)
    text = console.export_text()
    assert "name" in text and "a" in text and "nested" not in text

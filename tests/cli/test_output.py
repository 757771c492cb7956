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


def test_table_shows_iso_times_and_whole_ids(capsys: pytest.CaptureFixture[str]) -> None:
    """Piped (no terminal): the table is as wide as it needs, nothing is cut, Unix seconds read as ISO 8601."""
    kid = "https://a-long-vault-name-here.vault.azure.net/keys/a-long-key-name/0123456789abcdef0123456789abcdef"
    emit([{"kid": kid, "created": 1767225600, "enabled": True, "n": 0}], Output.table)
    out = capsys.readouterr().out
    assert kid in out and "…" not in out
    assert "2026-01-01T00:00:00+00:00" in out and "1767225600" not in out
    emit([{"created": 1767225600}], Output.tsv)  # scripts get the API's value as it is
    assert capsys.readouterr().out == "1767225600\n"

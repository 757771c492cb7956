"""``kluis audit list`` / ``verify`` against the in-process server, and the time forms --since takes."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from kluis.cli.audit import parse_time
from kluis.cli.main import app
from tests.cli.conftest import InProcess


def test_parse_time_forms() -> None:
    assert parse_time("1777000000") == 1_777_000_000_000
    assert parse_time("2026-05-01T00:00:00Z") == parse_time("2026-05-01") == 1_777_593_600_000
    assert parse_time("2026-05-01T02:00:00+02:00") == 1_777_593_600_000
    assert parse_time("2h", now=10_000.0) == (10_000 - 7200) * 1000
    assert parse_time("7d", now=1_000_000.0) == (1_000_000 - 7 * 86400) * 1000
    with pytest.raises(ValueError, match="cannot read the time"):
        parse_time("yesterday")


def _cli(kluis: InProcess, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, [*args, "--data-dir", str(kluis.data_dir.path)])
    return res.exit_code, res.stdout, res.stderr


def test_list_exports_json_lines_with_filters(kluis: InProcess) -> None:
    for name in ("rg-a", "rg-b"):
        assert _cli(kluis, "group", "create", "-n", name)[0] == 0
    code, out, _ = _cli(kluis, "audit", "list", "--operation", "CreateGroup", "--since", "1h", "-o", "json")
    assert code == 0
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["name"] for x in lines] == ["rg-a", "rg-b"] and all(x["status"] == 200 for x in lines)
    code, out, _ = _cli(kluis, "audit", "list", "--operation", "CreateGroup", "--until", "2000-01-01", "-o", "json")
    assert code == 0 and out == ""
    code, out, _ = _cli(kluis, "audit", "list", "--operation", "CreateGroup", "-o", "table")
    assert code == 0 and "CreateGroup" in out and "requestId" in out and "rg-b" in out
    code, _, err = _cli(kluis, "audit", "list", "--since", "soon")
    assert code == 2 and err.startswith("ERROR: cannot read the time")


def test_verify_passes_then_names_the_tampered_record(kluis: InProcess) -> None:
    _cli(kluis, "group", "create", "-n", "rg-a")
    code, out, _ = _cli(kluis, "audit", "verify")
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = _cli(kluis, "audit", "list", "--operation", "CreateGroup", "-o", "json")
    (record,) = [json.loads(x) for x in out.splitlines()]
    batch_id, index = divmod(record["id"], 10_000)  # the row holding it, and its place in the row's body
    conn = sqlite3.connect(kluis.data_dir.database)
    (body,) = conn.execute("SELECT body FROM audit_batches WHERE id = ?", (batch_id,)).fetchone()
    rows = json.loads(body)
    assert rows[index][3] == record["callerAppId"]
    rows[index][3] = "someone-else"
    conn.execute("UPDATE audit_batches SET body = ? WHERE id = ?", (json.dumps(rows).encode(), batch_id))
    conn.commit()
    conn.close()
    code, out, err = _cli(kluis, "audit", "verify")
    first = batch_id * 10_000  # one MAC covers the row: the first record of its batch is named
    assert code == 1 and json.loads(out)["firstBroken"]["id"] == first and first <= record["id"]
    assert err.startswith(f"ERROR: audit chain broken at record {first} ") and "altered" in err


def test_verify_names_a_batch_edited_into_text_instead_of_an_internal_error(kluis: InProcess) -> None:
    """The tester's edit: replace() on the blob stores text. verify used to answer ``ERROR: (InternalError)``
    (``TypeError: can't concat str to bytes``); now exit 1 naming the first record of the edited batch."""
    _cli(kluis, "group", "create", "-n", "rg-a")
    code, out, _ = _cli(kluis, "audit", "list", "--operation", "CreateGroup", "-o", "json")
    (record,) = [json.loads(x) for x in out.splitlines()]
    batch_id = record["id"] // 10_000
    conn = sqlite3.connect(kluis.data_dir.database)
    conn.execute("UPDATE audit_batches SET body = replace(body, ',200,', ',403,') WHERE id = ?", (batch_id,))
    assert conn.execute("SELECT typeof(body) FROM audit_batches WHERE id = ?", (batch_id,)).fetchone() == ("text",)
    conn.commit()
    conn.close()
    code, out, err = _cli(kluis, "audit", "verify")
    first = batch_id * 10_000
    assert code == 1 and json.loads(out)["firstBroken"]["id"] == first, err
    assert err.startswith(f"ERROR: audit chain broken at record {first} ") and "wrong type in body" in err
    code, out, _ = _cli(kluis, "audit", "list", "-o", "json")  # the listing leaves that batch out, no error
    assert code == 0 and first not in [json.loads(x)["id"] for x in out.splitlines()]

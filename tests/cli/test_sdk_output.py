"""What every kind's output shares: plain JSON values, attributes, deletion fields, sorted JSON, flat rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import Enum
from types import SimpleNamespace

import pytest

from kluis.cli.output import Output
from kluis.cli.sdk_output import (
    attributes,
    deletion_columns,
    plain,
    printer,
    properties_of,
    rows_of,
    summary,
    with_deletion,
)

WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


class Colour(Enum):
    red = "Red"


class Deleted(SimpleNamespace):
    pass


def test_plain_values() -> None:
    assert plain(Colour.red) == "Red" and plain(b"\x01\xff") == "Af8=" and plain(WHEN) == "2030-01-02T03:04:05+00:00"
    assert plain([b"\x00", Colour.red, 3]) == ["AA==", "Red", 3] and plain(None) is None


def test_attributes_and_summary() -> None:
    dates = {"created_on": WHEN, "updated_on": WHEN, "expires_on": None, "not_before": None}
    props = SimpleNamespace(**dates, enabled=True, recoverable_days=90, recovery_level="Recoverable", managed=None,
                            name="n", tags={"a": "b"})  # fmt: skip
    attrs = attributes(props, exportable=False)
    assert attrs == {
        "created": "2030-01-02T03:04:05+00:00", "enabled": True, "expires": None, "notBefore": None,
        "recoverableDays": 90, "recoveryLevel": "Recoverable", "updated": "2030-01-02T03:04:05+00:00",
        "exportable": False,
    }  # fmt: skip
    assert summary(props, attrs) == {"attributes": attrs, "managed": None, "name": "n", "tags": {"a": "b"}}


def test_deletion_fields_only_for_deleted_objects() -> None:
    live = SimpleNamespace(properties="p")
    gone = Deleted(properties="q", deleted_date=WHEN, recovery_id="https://v/deletedkeys/k", scheduled_purge_date=None)
    assert properties_of(live, Deleted) is live and properties_of(gone, Deleted) == "q"
    assert with_deletion(live, Deleted, {"x": 1}) == {"x": 1}
    assert with_deletion(gone, Deleted, {}) == {
        "deletedDate": "2030-01-02T03:04:05+00:00", "recoveryId": "https://v/deletedkeys/k", "scheduledPurgeDate": None,
    }  # fmt: skip
    assert deletion_columns({"deletedDate": "d", "scheduledPurgeDate": "s"}, {"Name": "n"}) == {
        "Name": "n", "DeletedDate": "d", "ScheduledPurgeDate": "s",
    }  # fmt: skip
    assert deletion_columns({}, {"Name": "n"}) == {"Name": "n"}


def test_printer_sorts_json_and_flattens_rows(capsys: pytest.CaptureFixture[str]) -> None:
    rows = rows_of(lambda r: {"Upper": r["b"].upper()})
    assert rows([{"b": "x"}, "raw"]) == [{"Upper": "X"}, "raw"] and rows({"b": "y"}) == {"Upper": "Y"}
    show = printer(rows)
    show({"b": "x", "a": {"z": 1, "y": 2}}, Output.json)
    out = capsys.readouterr().out
    assert list(json.loads(out)) == ["a", "b"] and out.index('"y"') < out.index('"z"')
    show([{"b": "x"}, {"b": "y"}], Output.tsv)
    assert capsys.readouterr().out == "X\nY\n"

"""``-o json|table|tsv|none`` like az: JSON by default, a Rich table, or tab-separated values.

Nothing here wraps or cuts: JSON and TSV are plain ``print``; a table is drawn at its natural width
(a terminal narrower than that folds the lines itself), so ids stay whole and copyable.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["Output", "emit"]

# Fields the management API gives as Unix seconds; a table shows them as ISO 8601 (UTC), like az.
_TIME_FIELDS = frozenset({"created", "updated", "now", "expires", "notBefore", "deletedDate", "scheduledPurgeDate"})
_MEASURE_WIDTH = 100_000  # columns to lay a table out in before drawing it at its natural width


class Output(StrEnum):
    json = "json"
    table = "table"
    tsv = "tsv"
    none = "none"


def _cell(key: str, value: Any, table: bool) -> str:
    if value is None:
        return ""
    if table and key in _TIME_FIELDS and isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat()
    return str(value)


def _flat(row: dict[str, Any], table: bool) -> dict[str, str]:
    return {k: _cell(k, v, table) for k, v in row.items() if not isinstance(v, dict | list)}


def emit(data: Any, output: Output, console: Console | None = None) -> None:
    """Print ``data`` (a dict, a list of dicts, or a scalar) to stdout in ``output``'s format.

    ``console`` (tests) draws the table instead of a stdout console of the table's natural width.
    """
    if data is None or output is Output.none:
        return
    if output is Output.json:
        print(json.dumps(data, indent=2))
        return
    table_mode = output is Output.table
    rows = data if isinstance(data, list) else [data]
    flat = [_flat(r, table_mode) if isinstance(r, dict) else {"value": str(r)} for r in rows]
    if not table_mode:
        for r in flat:
            print("\t".join(r.values()))
        return
    columns: list[str] = []
    for r in flat:
        columns.extend(c for c in r if c not in columns)
    table = Table(*columns)
    for r in flat:
        table.add_row(*(r.get(c, "") for c in columns))
    if console is None:
        natural = Console(width=_MEASURE_WIDTH).measure(table).maximum
        console = Console(width=natural)
    console.print(table)

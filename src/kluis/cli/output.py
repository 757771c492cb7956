"""``-o json|table|tsv|none`` like az: JSON by default, a Rich table, or tab-separated values."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["Output", "emit"]


class Output(StrEnum):
    json = "json"
    table = "table"
    tsv = "tsv"
    none = "none"


def _flat(row: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in row.items():
        if isinstance(v, dict | list):
            continue
        out[k] = "" if v is None else str(v)
    return out


def emit(data: Any, output: Output, console: Console | None = None) -> None:
    console = console or Console()
    if data is None or output is Output.none:
        return
    if output is Output.json:
        print(json.dumps(data, indent=2))
        return
    rows = data if isinstance(data, list) else [data]
    flat = [_flat(r) if isinstance(r, dict) else {"value": str(r)} for r in rows]
    if output is Output.tsv:
        for r in flat:
            print("\t".join(r.values()))
        return
    columns: list[str] = []
    for r in flat:
        columns.extend(c for c in r if c not in columns)
    table = Table(*columns)
    for r in flat:
        table.add_row(*(r.get(c, "") for c in columns))
    console.print(table)

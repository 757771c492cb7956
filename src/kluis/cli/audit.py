"""``kluis audit list`` / ``kluis audit verify``: the audit log, through the management API (administrator).

``list`` pages through every matching record, oldest first; ``-o json`` prints one JSON object per
line (an export: ``kluis audit list -o json > audit.jsonl``), ``-o table`` / ``tsv`` the main columns.
``verify`` asks the server to recompute every chain (it holds the MAC key) and exits 1 when a link
is broken, naming the first one.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from kluis.cli.common import DataDirOpt, KluisTyper, OutputOpt, admin_call, fail
from kluis.cli.output import Output, emit

__all__ = ["audit_app", "parse_time"]

audit_app = KluisTyper(help="The audit log: list (export) and verify its hash chains.")

_RELATIVE = re.compile(r"^(\d{1,9})([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TABLE_COLUMNS = (
    "time",
    "operation",
    "status",
    "vault",
    "name",
    "version",
    "callerAppId",
    "clientAddress",
    "requestId",
)


def parse_time(text: str, now: float | None = None) -> int:
    """Unix milliseconds for ``text``: ISO 8601 (``2026-05-01``, ``2026-05-01T12:00:00Z``; no zone
    means UTC), Unix seconds (``1777000000``), or an age (``15m``, ``2h``, ``7d``: that long ago).
    ValueError for anything else."""
    text = text.strip()
    age = _RELATIVE.match(text)
    if age:
        base = time.time() if now is None else now
        return int((base - int(age.group(1)) * _UNIT[age.group(2)]) * 1000)
    if text.isdigit() and len(text) <= 12:
        return int(text) * 1000
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cannot read the time {text!r}: use ISO 8601, Unix seconds or an age like 2h / 7d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _records(data_dir: Path | None, params: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = admin_call(data_dir, "GET", "/audit", None, **params, after=after)
        out.extend(page["value"])
        if page.get("next") is None:
            return out
        after = page["next"]


@audit_app.command("list")
def list_records(
    since: Annotated[
        str | None, typer.Option("--since", help="From (ISO 8601, Unix seconds or an age: 2h, 7d).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before (same forms as --since).")] = None,
    vault: Annotated[str | None, typer.Option("--vault-name", "--vault", help="Only this vault.")] = None,
    caller: Annotated[str | None, typer.Option("--caller", help="Only this caller (app id or object id).")] = None,
    operation: Annotated[str | None, typer.Option("--operation", help="Only this operation, e.g. GetKey.")] = None,
    status: Annotated[int | None, typer.Option("--status", help="Only this HTTP status, e.g. 403.")] = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """List audit records, oldest first (-o json: one JSON object per line, for export)."""
    params: dict[str, Any] = {}
    try:
        if since:
            params["since"] = parse_time(since)
        if until:
            params["until"] = parse_time(until)
    except ValueError as e:
        raise fail(str(e), 2) from None
    for name, value in (("vault", vault), ("caller", caller), ("operation", operation), ("status", status)):
        if value is not None:
            params[name] = value
    records = _records(data_dir, params)
    if output is Output.json:
        for r in records:
            print(json.dumps(r, separators=(",", ":")))
        return
    emit([{c: r.get(c) for c in _TABLE_COLUMNS} for r in records], output)


@audit_app.command("verify")
def verify(data_dir: DataDirOpt = None, output: OutputOpt = Output.json) -> None:
    """Recompute every record's MAC and chain link; exit 1 and name the first broken link if any."""
    report = admin_call(data_dir, "POST", "/audit/verify")
    emit(report, output)
    if not report["ok"]:
        broken = report["firstBroken"]
        raise fail(f"audit chain broken at record {broken['id']} (chain {broken['chain']}, seq {broken['seq']}): "
                   f"{broken['reason']}")  # fmt: skip

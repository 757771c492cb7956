"""Key Vault SDK objects as az prints them, the parts every object kind shares.

JSON is az's camelCase with sorted keys; times are ISO 8601, bytes standard base64, enums their value.
``-o table``/``-o tsv`` print one flat row per object, the columns each kind picks (see
``key_output``/``secret_output``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

from kluis.cli.output import Output, emit

__all__ = [
    "Printer",
    "attributes",
    "deletion_columns",
    "plain",
    "printer",
    "properties_of",
    "rows_of",
    "summary",
    "with_deletion",
]

Printer = Callable[[Any, Output], None]  # prints a verb's result (a dict or a list of dicts) as -o asks


def plain(v: Any) -> Any:
    """An SDK value as JSON: Enum -> its value, bytes -> base64, datetime -> ISO 8601, lists item by item."""
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(v).decode()
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def attributes(props: Any, **extra: Any) -> dict[str, Any]:
    """az's ``attributes`` of a KeyProperties/SecretProperties: dates, enabled, recovery; plus ``extra``."""
    return {
        "created": plain(props.created_on),
        "enabled": props.enabled,
        "expires": plain(props.expires_on),
        "notBefore": plain(props.not_before),
        "recoverableDays": props.recoverable_days,
        "recoveryLevel": props.recovery_level,
        "updated": plain(props.updated_on),
        **extra,
    }


def summary(props: Any, attrs: dict[str, Any]) -> dict[str, Any]:
    """The fields every list item has: attributes, managed, name, tags."""
    return {"attributes": attrs, "managed": props.managed, "name": props.name, "tags": props.tags}


def properties_of(item: Any, deleted_type: type[Any]) -> Any:
    """The properties of a list item: a ``Deleted*`` object carries them in ``.properties``, others are them."""
    return item.properties if isinstance(item, deleted_type) else item


def with_deletion(obj: Any, deleted_type: type[Any], out: dict[str, Any]) -> dict[str, Any]:
    """``out`` plus deletedDate/recoveryId/scheduledPurgeDate when ``obj`` is a ``deleted_type``."""
    if isinstance(obj, deleted_type):
        out["deletedDate"] = plain(obj.deleted_date)
        out["recoveryId"] = obj.recovery_id
        out["scheduledPurgeDate"] = plain(obj.scheduled_purge_date)
    return out


def deletion_columns(row: dict[str, Any], flat: dict[str, Any]) -> dict[str, Any]:
    """``flat`` (a table row) plus DeletedDate/ScheduledPurgeDate when ``row`` is a deleted object's JSON."""
    if "deletedDate" in row:
        flat["DeletedDate"] = row["deletedDate"]
        flat["ScheduledPurgeDate"] = row["scheduledPurgeDate"]
    return flat


def _sorted(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _sorted(data[k]) for k in sorted(data)}
    if isinstance(data, list):
        return [_sorted(v) for v in data]
    return data


def rows_of(row: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Any], Any]:
    """``data`` -> ``row(data)`` for a dict, ``row`` of each dict for a list; anything else unchanged."""

    def rows(data: Any) -> Any:
        if isinstance(data, list):
            return [row(r) if isinstance(r, dict) else r for r in data]
        return row(data) if isinstance(data, dict) else data

    return rows


def printer(rows: Callable[[Any], Any]) -> Printer:
    """Print JSON with sorted keys; for table/tsv, the flat rows ``rows(data)`` gives (see :func:`rows_of`)."""

    def show(data: Any, output: Output) -> None:
        emit(_sorted(data) if output is Output.json else rows(data), output)

    return show

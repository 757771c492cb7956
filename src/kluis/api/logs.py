"""Log formats for ``kluis serve --log-format text|json`` (granian's logging configuration).

``json`` writes one JSON object per line: ``time`` (ISO 8601, UTC, milliseconds), ``level``,
``logger``, ``message``, ``request_id`` when the line is about one request (access lines, unhandled
errors), and ``exc`` with the traceback when there is one. ``--access-log`` turns on the
``kluis.access`` logger (one line per request, at INFO).
"""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["JsonFormatter", "logging_config"]


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module doc)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            out["request_id"] = request_id
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def logging_config(fmt: str, *, access_log: bool) -> dict[str, Any] | None:
    """granian's ``log_dictconfig`` (its defaults plus kluis's loggers), or None for the defaults
    (``text`` without access lines: kluis's warnings reach stderr through Python's last-resort
    handler, as before). ``json`` formats granian's lines too. ValueError for another format."""
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}; use text or json")
    if fmt == "text" and not access_log:
        return None
    from granian.log import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    formatter: dict[str, Any] = (
        {"()": "kluis.api.logs.JsonFormatter"}
        if fmt == "json"
        else {"()": "logging.Formatter", "fmt": "[%(levelname)s] %(name)s: %(message)s"}
    )
    config["formatters"]["kluis"] = formatter
    if fmt == "json":
        config["formatters"]["generic"] = formatter
        config["formatters"]["access"] = formatter
    config["handlers"]["kluis"] = {"formatter": "kluis", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    config["loggers"]["kluis"] = {"handlers": ["kluis"], "level": "WARNING", "propagate": False}
    config["loggers"]["kluis.access"] = {"level": "INFO" if access_log else "WARNING"}
    return config

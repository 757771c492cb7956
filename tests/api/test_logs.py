"""``--log-format json``: one JSON object per line with the request id; granian's config stays valid."""

from __future__ import annotations

import json
import logging
import logging.config
import subprocess
import sys
import textwrap

import pytest

from kluis.api.logs import JsonFormatter, logging_config


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("kluis.access", logging.INFO, __file__, 1, "GetKey %d", (200,), None)
    for k, v in extra.items():
        setattr(record, k, v)
    return record


def test_a_line_is_one_json_object_with_the_request_id() -> None:
    line = JsonFormatter().format(_record(request_id="abc123"))
    assert "\n" not in line
    out = json.loads(line)
    assert out["message"] == "GetKey 200" and out["request_id"] == "abc123"
    assert out["level"] == "INFO" and out["logger"] == "kluis.access" and out["time"].endswith("+00:00")


def test_a_traceback_stays_inside_the_object() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("kluis.api", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    out = json.loads(JsonFormatter().format(record))
    assert "request_id" not in out and "ValueError: boom" in out["exc"]


def test_text_without_access_lines_keeps_granians_defaults() -> None:
    assert logging_config("text", access_log=False) is None
    with pytest.raises(ValueError, match="unknown log format"):
        logging_config("xml", access_log=False)


def test_json_config_applies_and_formats_kluis_and_granian_lines() -> None:
    # dictConfig changes process-wide logging: apply it in a child process, the way granian does
    program = textwrap.dedent(
        """
        import logging, logging.config
        from kluis.api.logs import logging_config
        logging.config.dictConfig(logging_config("json", access_log=True))
        logging.getLogger("kluis.access").info("GetKey 200", extra={"request_id": "r-1"})
        logging.getLogger("kluis.api").info("not shown: below WARNING")
        logging.getLogger("kluis.api").warning("careful")
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(x) for x in done.stderr.splitlines()]
    assert [(x["logger"], x["message"], x.get("request_id")) for x in lines] == [
        ("kluis.access", "GetKey 200", "r-1"),
        ("kluis.api", "careful", None),
    ]

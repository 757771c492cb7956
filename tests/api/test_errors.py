"""The one table from domain errors to HTTP statuses and Azure's error body."""

from __future__ import annotations

import logging

import orjson
import pytest

from kluis.api.errors import HttpError, error_response, json_response
from kluis.domain.errors import (
    BadParameter,
    Conflict,
    Forbidden,
    NotFound,
    VaultError,
)


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (BadParameter("m"), 400, "BadParameter"),
        (Forbidden("m"), 403, "Forbidden"),
        (NotFound("m", code="KeyNotFound"), 404, "KeyNotFound"),
        (Conflict("m"), 409, "Conflict"),
        (VaultError("m"), 500, "InternalError"),
        (HttpError(413, "BadParameter", "m"), 413, "BadParameter"),
        (HttpError(405, "MethodNotAllowed", "m"), 405, "MethodNotAllowed"),
    ],
)
def test_status_and_code(exc: VaultError, status: int, code: str) -> None:
    r = error_response(exc)
    assert r.status_code == status
    assert orjson.loads(r.body) == {"error": {"code": code, "message": "m"}}


def test_inner_error_and_extra_headers() -> None:
    r = error_response(Conflict("taken", inner_code="ObjectIsDeletedButRecoverable"), {"retry-after": "1"})
    assert orjson.loads(r.body) == {
        "error": {"code": "Conflict", "message": "taken", "innererror": {"code": "ObjectIsDeletedButRecoverable"}}
    }
    assert r.headers["retry-after"] == "1" and r.headers["content-type"] == "application/json; charset=utf-8"


def test_an_unexpected_exception_is_a_logged_500_that_tells_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="kluis.api"):
        r = error_response(RuntimeError("secret detail /path/to/db"))
    assert r.status_code == 500
    body = orjson.loads(r.body)
    assert body == {"error": {"code": "InternalError", "message": "The server encountered an internal error."}}
    assert "secret detail" not in r.body.decode()
    assert any(rec.exc_info and "secret detail" in str(rec.exc_info[1]) for rec in caplog.records)


def test_json_response_headers() -> None:
    r = json_response({"a": [1, "x"]}, 202, {"x-extra": "1", "cache-control": "max-age=5"})
    assert r.status_code == 202 and orjson.loads(r.body) == {"a": [1, "x"]}
    assert r.headers["pragma"] == "no-cache" and r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "max-age=5" and r.headers["x-extra"] == "1"  # callers may override
    assert json_response({}).headers["cache-control"] == "no-cache"

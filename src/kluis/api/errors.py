"""The one table that maps domain errors to HTTP statuses and Azure's error body."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from kluis.api.http import Response
from kluis.domain.errors import (
    BadParameter,
    Conflict,
    Forbidden,
    NotFound,
    VaultError,
)

__all__ = ["HttpError", "encoded_response", "error_response", "json_response"]

log = logging.getLogger("kluis.api")

_STATUS: dict[type[VaultError], int] = {
    BadParameter: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
}

_HEADERS = {"cache-control": "no-cache", "pragma": "no-cache", "x-content-type-options": "nosniff"}
_JSON_TYPE = "application/json; charset=utf-8"
_JSON_HEADERS = {**_HEADERS, "content-type": _JSON_TYPE}  # the same headers in the same order, made once


class HttpError(VaultError):
    """An error that only the HTTP layer can name (unknown route, wrong method, body too large)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return encoded_response(orjson.dumps(body), status, headers)


def encoded_response(raw: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer whose body ``raw`` is already encoded (``json_response`` encodes for it)."""
    if not headers:
        return Response.owning(raw, status, _JSON_HEADERS.copy())
    h = dict(_HEADERS)
    h.update(headers)
    return Response(raw, status_code=status, headers=h, media_type=_JSON_TYPE)


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> Response:
    if isinstance(exc, HttpError):
        status = exc.status
    elif isinstance(exc, VaultError):
        status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 500)
    else:
        log.exception("unhandled error", exc_info=exc)
        return json_response(
            {"error": {"code": "InternalError", "message": "The server encountered an internal error."}}, 500
        )
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.inner_code:
        error["innererror"] = {"code": exc.inner_code}
    return json_response({"error": error}, status, headers)

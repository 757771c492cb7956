"""Domain errors: each carries Azure's error ``code`` and a human message.

The domain decides *what* went wrong; only ``kluis.api`` knows which HTTP status that is.
"""

from __future__ import annotations

__all__ = [
    "BadParameter",
    "Conflict",
    "Forbidden",
    "NotFound",
    "VaultError",
]


class VaultError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "InternalError"

    def __init__(self, message: str, *, code: str | None = None, inner_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.inner_code = inner_code


class BadParameter(VaultError):
    """The request is malformed or names something invalid (HTTP 400)."""

    code = "BadParameter"


class Forbidden(VaultError):
    """The caller lacks a permission, or the object's state forbids the operation (HTTP 403)."""

    code = "Forbidden"


class NotFound(VaultError):
    """The object does not exist (HTTP 404); code is e.g. ``KeyNotFound``."""

    code = "NotFound"


class Conflict(VaultError):
    """The name is taken or the object is in a state that conflicts (HTTP 409)."""

    code = "Conflict"

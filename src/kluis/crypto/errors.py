"""The small, flat set of errors raised by :mod:`kluis.crypto`.

The API layer maps each class to one HTTP status/error code, and sends
``message`` to the caller verbatim.  Messages are therefore written for humans
and never contain key material or low-level library details (in particular,
decryption failures are deliberately vague so they cannot act as a padding
oracle).
"""

from __future__ import annotations

__all__ = [
    "CryptoError",
    "InvalidKey",
    "InvalidParameter",
    "OperationFailed",
    "UnsupportedAlgorithm",
]


class CryptoError(Exception):
    """Base class: anything that went wrong inside the crypto layer."""

    message: str

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidKey(CryptoError):
    """Key material or a JWK is malformed or internally inconsistent."""


class UnsupportedAlgorithm(CryptoError):
    """The algorithm is unknown, or not valid for this key type / operation."""


class InvalidParameter(CryptoError):
    """A parameter has the wrong shape: iv/tag/digest length, data size, key size, curve, exponent."""


class OperationFailed(CryptoError):
    """A well-formed request failed cryptographically (bad tag, bad padding, wrong key)."""

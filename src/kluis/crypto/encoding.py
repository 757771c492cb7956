"""Base64url helpers for JWK fields and the Azure wire format.

Azure Key Vault sends base64url *without* padding, but real-world clients (and
hand-written JWKs) add padding or use the standard alphabet, so decoding is
deliberately tolerant of both while still rejecting anything that is not
base64 at all.
"""

from __future__ import annotations

import base64
import binascii
import re

from kluis.crypto.errors import InvalidParameter

__all__ = ["b64url_decode", "b64url_decode_int", "b64url_encode", "b64url_encode_int"]

_TO_STANDARD = str.maketrans("-_", "+/")


_URLSAFE = re.compile(r"[A-Za-z0-9_-]*")


# binascii directly: ``base64.urlsafe_b64encode`` / ``urlsafe_b64decode`` add two Python calls and a
# type check each, on every value of every crypto request.
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def b64url_encode(data: bytes) -> str:
    """Encode ``data`` as base64url without padding (RFC 7515 section 2)."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


def b64url_decode(value: str) -> bytes:
    """Decode base64url, with or without padding, also accepting ``+`` and ``/``.

    Raises :class:`InvalidParameter` when ``value`` is not base64 in either alphabet.
    """
    if not isinstance(value, str):
        raise InvalidParameter("Expected a base64url string")
    if _URLSAFE.fullmatch(value):  # the common case: canonical base64url, no padding or whitespace
        try:  # (every character is in the alphabet, so this equals urlsafe_b64decode)
            return binascii.a2b_base64((value + "=" * (-len(value) % 4)).encode("ascii").translate(_FROM_URLSAFE))
        except (binascii.Error, ValueError):
            raise InvalidParameter("Value is not valid base64url (bad length)") from None
    text = value.strip().rstrip("=").translate(_TO_STANDARD)
    if len(text) % 4 == 1:
        raise InvalidParameter("Value is not valid base64url (bad length)")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise InvalidParameter("Value is not valid base64url") from None


def b64url_encode_int(value: int, length: int | None = None) -> str:
    """Encode a non-negative integer big-endian, minimal or left-padded to ``length`` bytes.

    JWK RSA fields (``n``, ``e``) use the minimal form; EC coordinates use the
    fixed curve length (RFC 7518 section 6.2.1.2).
    """
    if value < 0:
        raise ValueError("cannot encode a negative integer")
    size = max(1, (value.bit_length() + 7) // 8) if length is None else length
    return b64url_encode(value.to_bytes(size, "big"))


def b64url_decode_int(value: str) -> int:
    """Decode a base64url big-endian unsigned integer."""
    return int.from_bytes(b64url_decode(value), "big")

"""Opaque ``$skiptoken`` values for list operations, shaped like Key Vault's (base64 JSON NextMarker).

Clients must treat them as opaque; a token kluis did not issue is a 400, not a silent empty page.
"""

from __future__ import annotations

import json

from kluis.crypto import CryptoError, b64url_decode, b64url_encode
from kluis.domain.errors import BadParameter

__all__ = ["decode_token", "encode_token"]


def encode_token(marker: str) -> str:
    raw = json.dumps({"NextMarker": marker, "TargetLocation": 0}, separators=(",", ":")).encode()
    return b64url_encode(raw)


def decode_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        doc = json.loads(b64url_decode(token))
        marker = doc["NextMarker"]
    except (CryptoError, ValueError, KeyError, TypeError):
        raise BadParameter("The $skiptoken is invalid; use the nextLink returned by the previous page.") from None
    if not isinstance(marker, str):
        raise BadParameter("The $skiptoken is invalid; use the nextLink returned by the previous page.")
    return marker

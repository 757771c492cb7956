"""Compact JWS signed with kluis's token-signing key (ES256), for key-release results.

Relying parties verify it with the JWKS kluis publishes at ``/{tenant}/discovery/v2.0/keys``.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from kluis.crypto.encoding import b64url_encode

__all__ = ["sign_jws"]


def sign_jws(signing_key_der: bytes, key_id: str, payload: dict[str, Any]) -> str:
    key = serialization.load_der_private_key(signing_key_der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("the signing key must be an EC key")
    header = {"alg": "ES256", "kid": key_id, "typ": "JWT"}
    signing_input = (
        b64url_encode(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url_encode(json.dumps(payload, separators=(",", ":")).encode())
    )
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

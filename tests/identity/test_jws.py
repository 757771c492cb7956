"""Compact JWS (ES256) with kluis's token-signing key, verifiable by standard JWT libraries with its JWKS."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kluis.identity.jws import sign_jws
from kluis.identity.tokens import jwks, new_signing_key


def _segment(part: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_standard_libraries_verify_it_with_the_published_key() -> None:
    key = new_signing_key()
    token = sign_jws(key, "kid-1", {"response": {"key": {"kid": "k"}}, "n": 1})
    header, payload, signature = token.split(".")
    assert _segment(header) == {"alg": "ES256", "kid": "kid-1", "typ": "JWT"}
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64  # raw r||s, not DER
    published = jwt.PyJWK(jwks({"kid-1": key})["keys"][0])
    assert jwt.decode(token, published.key, algorithms=["ES256"]) == {"response": {"key": {"kid": "k"}}, "n": 1}
    assert _segment(payload)["n"] == 1


def test_another_key_does_not_verify_it() -> None:
    token = sign_jws(new_signing_key(), "kid-1", {"a": 1})
    other = jwt.PyJWK(jwks({"kid-1": new_signing_key()})["keys"][0])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other.key, algorithms=["ES256"])


def test_only_ec_signing_keys() -> None:
    der = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(TypeError, match="EC key"):
        sign_jws(der, "k", {})
    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert sign_jws(p256, "k", {}).count(".") == 2

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from kluis.crypto import InvalidParameter, KeyType, generate
from kluis.crypto.attestation import runtime_rsa_key, verify_attestation, wrap_for_release
from kluis.crypto.encoding import b64url_encode

AUTHORITY = "https://attest.example"


@pytest.fixture(scope="module")
def authority_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _token(key: Any, alg: str = "RS256", **claims: Any) -> str:
    body = {"iss": AUTHORITY, "exp": int(time.time()) + 300, "nbf": int(time.time()) - 5, **claims}
    return jwt.encode(body, key, algorithm=alg)


def test_valid_rs256_and_es256_tokens(authority_key: rsa.RSAPrivateKey) -> None:
    now = int(time.time())
    claims = verify_attestation(_token(authority_key, x=1), {AUTHORITY: [_pem(authority_key)]}, now=now)
    assert claims["x"] == 1
    ec_key = ec.generate_private_key(ec.SECP256R1())
    assert verify_attestation(_token(ec_key, "ES256"), {AUTHORITY + "/": [_pem(ec_key)]}, now=now)["iss"] == AUTHORITY


def test_rejections(authority_key: rsa.RSAPrivateKey) -> None:
    now = int(time.time())
    trusted = {AUTHORITY: [_pem(authority_key)]}
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for bad in (
        "garbage",
        _token(other),  # signed by an untrusted key
        _token(authority_key, iss="https://evil.example"),
        _token(authority_key, exp=now - 3600),
        jwt.encode({"iss": AUTHORITY, "exp": now + 60}, "secret-key-of-32-bytes-at-least!", algorithm="HS256"),
    ):
        with pytest.raises(InvalidParameter):
            verify_attestation(bad, trusted, now=now)


def test_wrap_for_release_unwraps_with_the_runtime_key() -> None:
    runtime = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = runtime.public_key().public_numbers()
    claims = {
        "x-ms-runtime": {
            "keys": [
                {"kty": "RSA", "n": b64url_encode(pub.n.to_bytes(256, "big")), "e": b64url_encode(b"\x01\x00\x01")}
            ]
        }
    }
    target = runtime_rsa_key(claims)
    material = generate(KeyType.EC)
    for enc, h in (("CKM_RSA_AES_KEY_WRAP", hashes.SHA1()), ("RSA_AES_KEY_WRAP_256", hashes.SHA256())):
        blob = wrap_for_release(material, enc, target)
        aes = runtime.decrypt(blob[:256], padding.OAEP(padding.MGF1(h), h, None))
        assert aes_key_unwrap_with_padding(aes, blob[256:]) == material.to_bytes()
    with pytest.raises(InvalidParameter):
        wrap_for_release(material, "NOPE", target)
    with pytest.raises(InvalidParameter):
        runtime_rsa_key({})

"""PEM private keys (PKCS#1, SEC1, PKCS#8, encrypted or not) as JWK members, for key import.

The CLI's ``kluis keyvault key import --pem-file`` sends a JWK to the server like az does; the
parsing belongs here, next to the rest of the key handling, so only ``crypto`` reads key formats.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kluis.crypto.errors import InvalidKey
from kluis.crypto.keys import KeyMaterial

__all__ = ["private_jwk_from_pem"]


def _uint(value: int, size: int | None = None) -> bytes:
    return value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big")


def private_jwk_from_pem(pem: bytes, password: bytes | None = None) -> dict[str, bytes | str]:
    """JWK members (binary values as bytes, ``kty``/``crv`` as str) of an RSA or EC private key."""
    try:
        key = serialization.load_pem_private_key(pem, password=password or None)
    except TypeError as e:  # password given for a plain key, or missing for an encrypted one
        raise InvalidKey(f"The PEM key could not be read: {e}.") from None
    except ValueError:
        raise InvalidKey("The PEM data is not a private key, or the password is wrong.") from None
    if isinstance(key, rsa.RSAPrivateKey):
        n = key.private_numbers()
        pub = n.public_numbers
        return {
            "kty": "RSA", "n": _uint(pub.n), "e": _uint(pub.e), "d": _uint(n.d), "p": _uint(n.p),
            "q": _uint(n.q), "dp": _uint(n.dmp1), "dq": _uint(n.dmq1), "qi": _uint(n.iqmp),
        }  # fmt: skip
    if isinstance(key, ec.EllipticCurvePrivateKey):
        material = KeyMaterial(key)
        if material.curve is None:
            raise InvalidKey("Unsupported curve (supported: P-256, P-256K, P-384, P-521).")
        size = material.curve.byte_length
        pub_ec = key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": material.curve.value,
            "d": _uint(key.private_numbers().private_value, size),
            "x": _uint(pub_ec.x, size),
            "y": _uint(pub_ec.y, size),
        }
    raise InvalidKey("Unsupported key type (supported: RSA, EC).")

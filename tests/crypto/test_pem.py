"""PEM private keys (PKCS#1, SEC1, PKCS#8; encrypted or not) as JWK members for key import."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from kluis.crypto.errors import InvalidKey
from kluis.crypto.keys import from_jwk
from kluis.crypto.pem import private_jwk_from_pem

FORMATS = [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, fmt: serialization.PrivateFormat) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def _int(data: bytes | str) -> int:
    assert isinstance(data, bytes)
    return int.from_bytes(data, "big")


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize("fmt", FORMATS)
def test_rsa(rsa_key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat) -> None:
    jwk = private_jwk_from_pem(_pem(rsa_key, fmt))
    nums = rsa_key.private_numbers()
    assert jwk["kty"] == "RSA" and _int(jwk["n"]) == nums.public_numbers.n and jwk["e"] == b"\x01\x00\x01"
    assert (_int(jwk["d"]), _int(jwk["p"]), _int(jwk["q"])) == (nums.d, nums.p, nums.q)
    assert (_int(jwk["dp"]), _int(jwk["dq"]), _int(jwk["qi"])) == (nums.dmp1, nums.dmq1, nums.iqmp)


@pytest.mark.parametrize(
    ("curve", "name", "size"),
    [(ec.SECP256R1(), "P-256", 32), (ec.SECP384R1(), "P-384", 48), (ec.SECP521R1(), "P-521", 66),
     (ec.SECP256K1(), "P-256K", 32)],
)  # fmt: skip
@pytest.mark.parametrize("fmt", FORMATS)
def test_ec_coordinates_are_fixed_width(
    curve: ec.EllipticCurve, name: str, size: int, fmt: serialization.PrivateFormat
) -> None:
    key = ec.generate_private_key(curve)
    jwk = private_jwk_from_pem(_pem(key, fmt))
    nums = key.private_numbers()
    assert jwk["kty"] == "EC" and jwk["crv"] == name
    assert all(len(jwk[c]) == size for c in ("d", "x", "y"))
    assert (_int(jwk["d"]), _int(jwk["x"]), _int(jwk["y"])) == (
        nums.private_value,
        nums.public_numbers.x,
        nums.public_numbers.y,
    )


def test_the_result_imports(rsa_key: rsa.RSAPrivateKey) -> None:
    from kluis.crypto.encoding import b64url_encode

    jwk = private_jwk_from_pem(_pem(rsa_key, FORMATS[0]))
    material = from_jwk({k: v if isinstance(v, str) else b64url_encode(v) for k, v in jwk.items()})
    assert material.key_size == 2048


def test_encrypted_pem_needs_the_right_password() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    assert _int(private_jwk_from_pem(pem, b"pw")["d"]) == key.private_numbers().private_value
    with pytest.raises(InvalidKey, match="could not be read"):
        private_jwk_from_pem(pem)  # no password
    with pytest.raises(InvalidKey, match="password is wrong"):
        private_jwk_from_pem(pem, b"wrong")
    with pytest.raises(InvalidKey, match="could not be read"):
        private_jwk_from_pem(_pem(key, FORMATS[0]), b"pw")  # a password for a plain key


def test_not_a_supported_private_key() -> None:
    with pytest.raises(InvalidKey, match="not a private key"):
        private_jwk_from_pem(b"hello")
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(InvalidKey, match="not a private key"):
        private_jwk_from_pem(public)
    with pytest.raises(InvalidKey, match="secp224r1 is not supported"):
        private_jwk_from_pem(_pem(ec.generate_private_key(ec.SECP224R1()), FORMATS[0]))
    with pytest.raises(InvalidKey, match="Unsupported key type"):
        private_jwk_from_pem(_pem(ed25519.Ed25519PrivateKey.generate(), FORMATS[0]))  # type: ignore[arg-type]

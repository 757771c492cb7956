from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kluis.crypto.algorithms import Curve, KeyFamily, KeyType
from kluis.crypto.encoding import b64url_decode, b64url_encode, b64url_encode_int
from kluis.crypto.errors import InvalidKey, InvalidParameter
from kluis.crypto.keys import KeyMaterial, from_jwk, generate


def _rsa_private_jwk(key: KeyMaterial, *, crt: bool = True) -> dict[str, Any]:
    assert isinstance(key.private, rsa.RSAPrivateKey)
    nums = key.private.private_numbers()
    jwk: dict[str, Any] = {"kty": "RSA", **key.public_jwk(), "d": b64url_encode_int(nums.d)}
    if crt:
        jwk |= {
            "p": b64url_encode_int(nums.p),
            "q": b64url_encode_int(nums.q),
            "dp": b64url_encode_int(nums.dmp1),
            "dq": b64url_encode_int(nums.dmq1),
            "qi": b64url_encode_int(nums.iqmp),
        }
    return jwk


def _ec_private_jwk(key: KeyMaterial) -> dict[str, Any]:
    assert isinstance(key.private, ec.EllipticCurvePrivateKey) and key.curve is not None
    d = key.private.private_numbers().private_value
    return {"kty": "EC", **key.public_jwk(), "d": b64url_encode_int(d, key.curve.byte_length)}


# --- generate ---------------------------------------------------------------


def test_generate_defaults(rsa2048: KeyMaterial) -> None:
    assert (rsa2048.family, rsa2048.key_size, rsa2048.curve) == (KeyFamily.RSA, 2048, None)
    assert isinstance(rsa2048.public, rsa.RSAPublicKey)
    assert rsa2048.public.public_numbers().e == 65537

    ec_key = generate(KeyType.EC_HSM)
    assert (ec_key.family, ec_key.curve, ec_key.key_size) == (KeyFamily.EC, Curve.P_256, 256)

    oct_key = generate("oct-HSM")
    assert (oct_key.family, oct_key.key_size, oct_key.public) == (KeyFamily.OCT, 256, None)
    assert isinstance(oct_key.private, bytes) and len(oct_key.private) == 32
    assert generate("oct").private != oct_key.private


def test_generate_sizes(rsa3072: KeyMaterial, ec_keys: dict[Curve, KeyMaterial]) -> None:
    assert rsa3072.key_size == 3072
    assert {c: k.key_size for c, k in ec_keys.items()} == {
        Curve.P_256: 256,
        Curve.P_384: 384,
        Curve.P_521: 521,
        Curve.P_256K: 256,
    }
    k1 = ec_keys[Curve.P_256K].private
    assert isinstance(k1, ec.EllipticCurvePrivateKey)
    assert isinstance(k1.curve, ec.SECP256K1)
    assert [generate(KeyType.OCT, size=b).key_size for b in (128, 192, 256)] == [128, 192, 256]
    assert generate(KeyType.EC, curve="P-384", size=384).curve is Curve.P_384


def test_generate_exponent_3() -> None:
    key = generate(KeyType.RSA, public_exponent=3)
    assert key.public_jwk()["e"] == "Aw"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kty": "RSA", "size": 1024}, "RSA key size 1024 is not supported (allowed: 2048, 3072, 4096)"),
        ({"kty": "RSA", "public_exponent": 5}, "RSA public exponent 5 is not supported (allowed: 3, 65537)"),
        ({"kty": "RSA", "public_exponent": 4}, "RSA public exponent 4 is not supported (allowed: 3, 65537)"),
        ({"kty": "RSA", "curve": "P-256"}, "A curve cannot be specified for RSA keys"),
        ({"kty": "EC", "curve": "P-224"}, "Unknown curve 'P-224' (allowed: P-256, P-384, P-521, P-256K)"),
        ({"kty": "EC", "curve": "P-256", "size": 384}, "Key size 384 does not match curve P-256 (256 bits)"),
        ({"kty": "EC", "public_exponent": 3}, "A public exponent cannot be specified for EC keys"),
        ({"kty": "oct", "size": 512}, "Symmetric key size 512 is not supported (allowed: 128, 192, 256)"),
        ({"kty": "oct", "curve": "P-256"}, "A curve cannot be specified for symmetric keys"),
    ],
)
def test_generate_rejects(kwargs: dict[str, Any], message: str) -> None:
    kty = kwargs.pop("kty")
    with pytest.raises(InvalidParameter) as info:
        generate(kty, **kwargs)
    assert info.value.message == message


def test_generate_unknown_kty() -> None:
    with pytest.raises(InvalidParameter, match="Unknown key type"):
        generate("DSA")


# --- public JWK ---------------------------------------------------------------


def test_rsa_public_jwk(rsa2048: KeyMaterial) -> None:
    jwk = rsa2048.public_jwk()
    assert set(jwk) == {"n", "e"}
    assert jwk["e"] == "AQAB"
    n = b64url_decode(jwk["n"])
    assert len(n) == 256 and n[0] != 0
    assert "=" not in jwk["n"]
    assert isinstance(rsa2048.public, rsa.RSAPublicKey)
    assert int.from_bytes(n, "big") == rsa2048.public.public_numbers().n


@pytest.mark.parametrize("curve", list(Curve))
def test_ec_public_jwk(curve: Curve, ec_keys: dict[Curve, KeyMaterial]) -> None:
    key = ec_keys[curve]
    jwk = key.public_jwk()
    assert set(jwk) == {"crv", "x", "y"}
    assert jwk["crv"] == curve.value
    assert len(b64url_decode(jwk["x"])) == curve.byte_length
    assert len(b64url_decode(jwk["y"])) == curve.byte_length
    assert isinstance(key.public, ec.EllipticCurvePublicKey)
    assert int.from_bytes(b64url_decode(jwk["x"]), "big") == key.public.public_numbers().x


def test_ec_public_jwk_pads_small_coordinates() -> None:
    # Find a key whose x has a leading zero byte (1 in 256 chance per try; bounded loop).
    for _ in range(4000):
        key = generate(KeyType.EC)
        assert isinstance(key.public, ec.EllipticCurvePublicKey)
        if key.public.public_numbers().x < 1 << 248:
            break
    else:  # pragma: no cover - astronomically unlikely
        pytest.skip("no short coordinate found")
    jwk = key.public_jwk()
    assert len(b64url_decode(jwk["x"])) == 32
    assert b64url_decode(jwk["x"])[0] == 0


def test_oct_public_jwk_is_empty(oct_keys: dict[int, KeyMaterial]) -> None:
    assert oct_keys[256].public_jwk() == {}


def test_repr_does_not_leak(oct_keys: dict[int, KeyMaterial], ec_keys: dict[Curve, KeyMaterial]) -> None:
    key = oct_keys[128]
    assert isinstance(key.private, bytes)
    assert key.private.hex() not in repr(key)
    assert repr(key) == "KeyMaterial(family='oct', key_size=128)"
    assert repr(ec_keys[Curve.P_384]) == "KeyMaterial(family='EC', key_size=384, curve='P-384')"


# --- to_bytes / load ----------------------------------------------------------


def test_round_trip_serialisation(
    rsa2048: KeyMaterial, ec_keys: dict[Curve, KeyMaterial], oct_keys: dict[int, KeyMaterial]
) -> None:
    for key in [rsa2048, *ec_keys.values(), *oct_keys.values()]:
        data = key.to_bytes()
        loaded = KeyMaterial.load(key.family, data, curve=key.curve)
        assert loaded.public_jwk() == key.public_jwk()
        assert (loaded.family, loaded.key_size, loaded.curve) == (key.family, key.key_size, key.curve)
        assert loaded.to_bytes() == data


def test_to_bytes_is_pkcs8_der(rsa2048: KeyMaterial) -> None:
    parsed = serialization.load_der_private_key(rsa2048.to_bytes(), password=None)
    assert isinstance(parsed, rsa.RSAPrivateKey)


def test_load_accepts_kty_names(rsa2048: KeyMaterial) -> None:
    assert KeyMaterial.load("RSA-HSM", rsa2048.to_bytes()).key_size == 2048


def test_load_rejects_wrong_material(rsa2048: KeyMaterial, ec_keys: dict[Curve, KeyMaterial]) -> None:
    with pytest.raises(InvalidKey, match="not an EC private key"):
        KeyMaterial.load("EC", rsa2048.to_bytes())
    with pytest.raises(InvalidKey, match="could not be parsed"):
        KeyMaterial.load("RSA", b"\x30\x03garbage")
    with pytest.raises(InvalidKey, match="expected P-256"):
        KeyMaterial.load("EC", ec_keys[Curve.P_384].to_bytes(), curve=Curve.P_256)
    with pytest.raises(InvalidKey, match="16, 24 or 32 bytes"):
        KeyMaterial.load("oct", b"short")


# --- from_jwk: RSA ------------------------------------------------------------


def test_rsa_import_with_crt(rsa2048: KeyMaterial) -> None:
    key = from_jwk(_rsa_private_jwk(rsa2048))
    assert key.public_jwk() == rsa2048.public_jwk()
    assert key.to_bytes() == rsa2048.to_bytes()


def test_rsa_import_without_primes(rsa2048: KeyMaterial) -> None:
    key = from_jwk(_rsa_private_jwk(rsa2048, crt=False))
    assert key.public_jwk() == rsa2048.public_jwk()
    assert isinstance(key.private, rsa.RSAPrivateKey) and isinstance(rsa2048.private, rsa.RSAPrivateKey)
    assert key.private.private_numbers().d == rsa2048.private.private_numbers().d


def test_rsa_import_with_primes_but_no_crt_exponents(rsa2048: KeyMaterial) -> None:
    jwk = _rsa_private_jwk(rsa2048)
    for name in ("dp", "dq", "qi"):
        del jwk[name]
    assert from_jwk(jwk).to_bytes() == rsa2048.to_bytes()
    del jwk["q"]  # only one prime: the other is n / p
    assert from_jwk(jwk).public_jwk() == rsa2048.public_jwk()


def test_rsa_import_tolerates_padding_and_standard_alphabet(rsa2048: KeyMaterial) -> None:
    jwk = _rsa_private_jwk(rsa2048)
    padded = {k: base64.b64encode(b64url_decode(v)).decode() if k != "kty" else v for k, v in jwk.items()}
    assert from_jwk(padded | {"kty": "RSA-HSM"}).public_jwk() == rsa2048.public_jwk()


def test_rsa_import_missing_d(rsa2048: KeyMaterial) -> None:
    jwk = _rsa_private_jwk(rsa2048)
    del jwk["d"]
    with pytest.raises(InvalidKey) as info:
        from_jwk(jwk)
    assert info.value.message == "RSA private key material is required for import (missing 'd')"


def test_rsa_import_inconsistent(rsa2048: KeyMaterial, rsa2048_other: KeyMaterial) -> None:
    other = _rsa_private_jwk(rsa2048_other)
    mixed = _rsa_private_jwk(rsa2048) | {"d": other["d"]}
    with pytest.raises(InvalidKey, match="RSA key is invalid"):
        from_jwk(mixed)
    no_crt = _rsa_private_jwk(rsa2048, crt=False) | {"d": other["d"]}
    with pytest.raises(InvalidKey, match="'d' does not match"):
        from_jwk(no_crt)
    bad_dp = _rsa_private_jwk(rsa2048) | {"dp": other["dp"]}
    with pytest.raises(InvalidKey, match="inconsistent"):
        from_jwk(bad_dp)
    bad_p = _rsa_private_jwk(rsa2048) | {"p": other["p"]}
    with pytest.raises(InvalidKey, match="prime factors"):
        from_jwk(bad_p)


def test_rsa_import_rejects_small_modulus() -> None:
    small = KeyMaterial(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(InvalidParameter, match="RSA key size 1024 is not supported"):
        from_jwk(_rsa_private_jwk(small))


def test_import_bad_base64(rsa2048: KeyMaterial) -> None:
    with pytest.raises(InvalidKey) as info:
        from_jwk(_rsa_private_jwk(rsa2048) | {"n": "not base64!"})
    assert info.value.message == "JWK member 'n' is not valid base64url"


@pytest.mark.parametrize(
    ("jwk", "message"),
    [
        ({}, "JWK is missing required member 'kty'"),
        ({"kty": "RSA", "e": "AQAB", "d": "AQAB"}, "JWK is missing required member 'n'"),
        ({"kty": "RSA", "n": 5, "e": "AQAB", "d": "AQAB"}, "JWK member 'n' must be a base64url string"),
        ({"kty": "EC", "x": "AA", "y": "AA", "d": "AA"}, "JWK is missing required member 'crv'"),
        ({"kty": "oct"}, "oct private key material is required for import (missing 'k')"),
    ],
)
def test_import_malformed(jwk: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidKey) as info:
        from_jwk(jwk)
    assert info.value.message == message


# --- from_jwk: EC and oct -----------------------------------------------------


@pytest.mark.parametrize("curve", list(Curve))
def test_ec_import(curve: Curve, ec_keys: dict[Curve, KeyMaterial]) -> None:
    key = from_jwk(_ec_private_jwk(ec_keys[curve]))
    assert key.curve is curve
    assert key.public_jwk() == ec_keys[curve].public_jwk()


def test_ec_import_mismatch(ec_keys: dict[Curve, KeyMaterial]) -> None:
    jwk = _ec_private_jwk(ec_keys[Curve.P_256])
    other = generate(KeyType.EC)
    jwk["d"] = _ec_private_jwk(other)["d"]
    with pytest.raises(InvalidKey) as info:
        from_jwk(jwk)
    assert info.value.message == "EC key is invalid: private key 'd' does not match the public point (x, y)"


def test_ec_import_missing_d_and_bad_scalar(ec_keys: dict[Curve, KeyMaterial]) -> None:
    jwk = _ec_private_jwk(ec_keys[Curve.P_384])
    with pytest.raises(InvalidKey, match="private key material is required"):
        from_jwk({k: v for k, v in jwk.items() if k != "d"})
    with pytest.raises(InvalidKey, match="out of range"):
        from_jwk(jwk | {"d": "AA"})
    with pytest.raises(InvalidParameter, match="Unknown curve"):
        from_jwk(jwk | {"crv": "P-192"})


def test_oct_import() -> None:
    raw = bytes(range(24))
    key = from_jwk({"kty": "oct-HSM", "k": b64url_encode(raw)})
    assert (key.family, key.key_size, key.private) == (KeyFamily.OCT, 192, raw)


def test_oct_import_wrong_length() -> None:
    with pytest.raises(InvalidParameter) as info:
        from_jwk({"kty": "oct", "k": b64url_encode(b"x" * 20)})
    assert info.value.message == "Symmetric key must be 16, 24 or 32 bytes long (got 20 bytes)"

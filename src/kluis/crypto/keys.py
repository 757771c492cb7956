"""Key material: generation, JWK import/export of public parts, and (de)serialisation for sealing.

:class:`KeyMaterial` is the only thing the rest of kluis holds on to.  It
always carries the private part: kluis is the vault, so every key it knows it
owns.  The public JWK is derived from it on demand; symmetric keys are never
exported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kluis.crypto.algorithms import Curve, KeyFamily, KeyType, family_of
from kluis.crypto.encoding import b64url_decode, b64url_encode_int
from kluis.crypto.errors import InvalidKey, InvalidParameter

__all__ = [
    "AES_KEY_SIZES",
    "RSA_KEY_SIZES",
    "RSA_PUBLIC_EXPONENTS",
    "KeyMaterial",
    "PrivateKey",
    "PublicKey",
    "from_jwk",
    "generate",
]

#: RSA modulus sizes kluis creates and imports (Azure Key Vault's set).
RSA_KEY_SIZES: tuple[int, ...] = (2048, 3072, 4096)
#: Public exponents OpenSSL (and therefore ``cryptography``) will generate.
RSA_PUBLIC_EXPONENTS: tuple[int, ...] = (3, 65537)
#: AES key sizes in bits.
AES_KEY_SIZES: tuple[int, ...] = (128, 192, 256)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | bytes
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_CURVES: Mapping[Curve, type[ec.EllipticCurve]] = MappingProxyType(
    {
        Curve.P_256: ec.SECP256R1,
        Curve.P_384: ec.SECP384R1,
        Curve.P_521: ec.SECP521R1,
        Curve.P_256K: ec.SECP256K1,
    }
)
_CURVE_BY_NAME: Mapping[str, Curve] = MappingProxyType({cls().name: crv for crv, cls in _CURVES.items()})


def _curve_of(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> Curve:
    try:
        return _CURVE_BY_NAME[key.curve.name]
    except KeyError:
        raise InvalidKey(f"EC curve {key.curve.name} is not supported") from None


def _allowed(values: tuple[int, ...]) -> str:
    return ", ".join(str(v) for v in values)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class KeyMaterial:
    """One private key: an RSA or EC private key object, or raw AES/HMAC bytes.

    Made from the private part alone (``KeyMaterial(private)``); the rest is derived once and read-only:
    ``family``; ``key_size`` in bits (RSA modulus, EC curve order 256/384/521, or AES key length);
    ``curve`` (EC keys only); ``public``, the public key object (None for symmetric keys). TypeError for
    another kind of key object, InvalidKey for a curve or an AES key length kluis does not support.
    """

    private: PrivateKey
    family: KeyFamily = field(init=False)
    key_size: int = field(init=False)
    curve: Curve | None = field(init=False)
    public: PublicKey | None = field(init=False)

    def __post_init__(self) -> None:
        private = self.private
        curve: Curve | None = None
        public: PublicKey | None = None
        if isinstance(private, rsa.RSAPrivateKey):
            family, size, public = KeyFamily.RSA, private.key_size, private.public_key()
        elif isinstance(private, ec.EllipticCurvePrivateKey):
            curve = _curve_of(private)
            family, size, public = KeyFamily.EC, curve.bits, private.public_key()
        elif isinstance(private, bytes):
            if len(private) * 8 not in AES_KEY_SIZES:
                raise InvalidKey(f"Symmetric key must be 16, 24 or 32 bytes long (got {len(private)} bytes)")
            family, size = KeyFamily.OCT, len(private) * 8
        else:
            raise TypeError(f"unsupported key object {type(private).__name__}")
        derived = {"family": family, "key_size": size, "curve": curve, "public": public}
        for name, value in derived.items():  # a frozen dataclass is written once, here
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        # Never include key bytes: reprs end up in logs and tracebacks.
        extra = f", curve={self.curve.value!r}" if self.curve else ""
        return f"KeyMaterial(family={self.family.value!r}, key_size={self.key_size}{extra})"

    def public_jwk(self) -> dict[str, str]:
        """Public JWK members only (no kty/kid/key_ops: the caller owns those).

        RSA: ``n`` and ``e`` minimal big-endian; EC: ``crv``, ``x``, ``y`` padded
        to the curve length; oct: ``{}`` because symmetric keys never leave kluis.
        """
        pub = self.public
        if isinstance(pub, rsa.RSAPublicKey):
            nums = pub.public_numbers()
            return {"n": b64url_encode_int(nums.n), "e": b64url_encode_int(nums.e)}
        if isinstance(pub, ec.EllipticCurvePublicKey):
            assert self.curve is not None
            point = pub.public_numbers()
            size = self.curve.byte_length
            return {
                "crv": self.curve.value,
                "x": b64url_encode_int(point.x, size),
                "y": b64url_encode_int(point.y, size),
            }
        return {}

    def to_bytes(self) -> bytes:
        """Private serialisation for sealing: PKCS#8 DER (RSA/EC) or the raw key (oct)."""
        key = self.private
        if isinstance(key, bytes):
            return key
        return key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def load(cls, family: str, data: bytes, *, curve: Curve | None = None) -> KeyMaterial:
        """Inverse of :meth:`to_bytes`, optimised for the hot path (every crypto request).

        RSA keys are loaded with ``unsafe_skip_rsa_key_validation=True``: the
        bytes come out of an AES-GCM sealed blob that only kluis could have
        produced (from a key it generated or fully validated on import), so
        their integrity is already guaranteed.  Full validation (primality
        checks) costs ~40 ms per load versus ~5 µs without.  Never use this for
        bytes that did not come from :meth:`to_bytes` via the sealer.
        """
        fam = family_of(family)
        if fam is KeyFamily.OCT:
            return cls(bytes(data))
        try:
            key = serialization.load_der_private_key(
                data, password=None, unsafe_skip_rsa_key_validation=fam is KeyFamily.RSA
            )
        except (ValueError, TypeError):
            raise InvalidKey(f"Stored {fam} key material could not be parsed") from None
        expected = rsa.RSAPrivateKey if fam is KeyFamily.RSA else ec.EllipticCurvePrivateKey
        if not isinstance(key, expected):
            raise InvalidKey(f"Stored key material is not an {fam} private key")
        material = cls(key)
        if curve is not None and material.curve is not Curve.parse(curve):
            raise InvalidKey(f"Stored EC key is on curve {material.curve}, expected {curve}")
        return material


def generate(
    kty: KeyType | str,
    *,
    size: int | None = None,
    curve: Curve | str | None = None,
    public_exponent: int | None = None,
) -> KeyMaterial:
    """Create a fresh key.  Defaults: RSA-2048/65537, EC P-256, AES-256.

    ``size`` is in bits.  For EC it is optional and, when given, must match
    the curve (256 for P-256/P-256K, 384, 521).
    """
    family = KeyType.parse(kty).family
    if family is KeyFamily.RSA:
        if curve is not None:
            raise InvalidParameter("A curve cannot be specified for RSA keys")
        bits = 2048 if size is None else size
        if bits not in RSA_KEY_SIZES:
            raise InvalidParameter(f"RSA key size {bits} is not supported (allowed: {_allowed(RSA_KEY_SIZES)})")
        exponent = 65537 if public_exponent is None else public_exponent
        if exponent not in RSA_PUBLIC_EXPONENTS:
            raise InvalidParameter(
                f"RSA public exponent {exponent} is not supported (allowed: {_allowed(RSA_PUBLIC_EXPONENTS)})"
            )
        return KeyMaterial(rsa.generate_private_key(public_exponent=exponent, key_size=bits))

    if public_exponent is not None:
        raise InvalidParameter(f"A public exponent cannot be specified for {family} keys")
    if family is KeyFamily.EC:
        crv = Curve.P_256 if curve is None else Curve.parse(curve)
        if size is not None and size != crv.bits:
            raise InvalidParameter(f"Key size {size} does not match curve {crv} ({crv.bits} bits)")
        return KeyMaterial(ec.generate_private_key(_CURVES[crv]()))

    if curve is not None:
        raise InvalidParameter("A curve cannot be specified for symmetric keys")
    bits = 256 if size is None else size
    if bits not in AES_KEY_SIZES:
        raise InvalidParameter(f"Symmetric key size {bits} is not supported (allowed: {_allowed(AES_KEY_SIZES)})")
    return KeyMaterial(os.urandom(bits // 8))


# ---------------------------------------------------------------------------
# JWK import (Azure ImportKey).  Unlike KeyMaterial.load this is untrusted
# input, so everything is validated in full.


def _member(jwk: Mapping[str, Any], name: str) -> str | None:
    value = jwk.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidKey(f"JWK member '{name}' must be a base64url string")
    return value


def _bytes(jwk: Mapping[str, Any], name: str, *, private: bool = False) -> bytes:
    value = _member(jwk, name)
    if value is None or value == "":
        if private:
            raise InvalidKey(f"{_kty_label(jwk)} private key material is required for import (missing '{name}')")
        raise InvalidKey(f"JWK is missing required member '{name}'")
    return _decode(name, value)


def _decode(name: str, value: str) -> bytes:
    try:
        return b64url_decode(value)
    except InvalidParameter:
        raise InvalidKey(f"JWK member '{name}' is not valid base64url") from None


def _int(jwk: Mapping[str, Any], name: str, *, private: bool = False) -> int:
    return int.from_bytes(_bytes(jwk, name, private=private), "big")


def _optional_int(jwk: Mapping[str, Any], name: str) -> int | None:
    value = _member(jwk, name)
    if value is None or value == "":
        return None
    return int.from_bytes(_decode(name, value), "big")


def _kty_label(jwk: Mapping[str, Any]) -> str:
    kty = jwk.get("kty")
    return str(kty) if isinstance(kty, str) else "Key"


def from_jwk(jwk: Mapping[str, Any]) -> KeyMaterial:
    """Import a JWK that includes its private part (Azure ImportKey).

    Fully validates the key: RSA keys go through OpenSSL's consistency checks
    (missing CRT parameters are computed, missing primes recovered from
    ``n, e, d``), EC private scalars must reproduce the given public point.
    """
    if not isinstance(jwk, Mapping):
        raise InvalidKey("JWK must be a JSON object")
    kty = jwk.get("kty")
    if not isinstance(kty, str):
        raise InvalidKey("JWK is missing required member 'kty'")
    family = KeyType.parse(kty).family
    if family is KeyFamily.RSA:
        return _rsa_from_jwk(jwk)
    if family is KeyFamily.EC:
        return _ec_from_jwk(jwk)
    k = _bytes(jwk, "k", private=True)
    if len(k) * 8 not in AES_KEY_SIZES:
        raise InvalidParameter(f"Symmetric key must be 16, 24 or 32 bytes long (got {len(k)} bytes)")
    return KeyMaterial(k)


def _rsa_from_jwk(jwk: Mapping[str, Any]) -> KeyMaterial:
    n = _int(jwk, "n")
    e = _int(jwk, "e")
    d = _int(jwk, "d", private=True)
    if n.bit_length() not in RSA_KEY_SIZES:
        raise InvalidParameter(f"RSA key size {n.bit_length()} is not supported (allowed: {_allowed(RSA_KEY_SIZES)})")
    if e < 3 or e % 2 == 0 or e >= n or not 1 < d < n:
        raise InvalidKey("RSA key is invalid: public exponent or private exponent out of range")
    p = _optional_int(jwk, "p")
    q = _optional_int(jwk, "q")
    if p is None and q is None:
        try:
            p, q = rsa.rsa_recover_prime_factors(n, e, d)
        except (ValueError, ArithmeticError):
            raise InvalidKey("RSA key is invalid: 'd' does not match 'n' and 'e'") from None
    else:
        known = p if p is not None else q
        assert known is not None
        if known <= 1 or n % known != 0:
            raise InvalidKey("RSA key is invalid: prime factors do not match the modulus")
        p, q = (known, n // known) if p is not None else (n // known, known)
    if p * q != n or p <= 1 or q <= 1:
        raise InvalidKey("RSA key is invalid: prime factors do not match the modulus")
    dp = _optional_int(jwk, "dp")
    dq = _optional_int(jwk, "dq")
    qi = _optional_int(jwk, "qi")
    try:
        numbers = rsa.RSAPrivateNumbers(
            p=p,
            q=q,
            d=d,
            dmp1=rsa.rsa_crt_dmp1(d, p) if dp is None else dp,
            dmq1=rsa.rsa_crt_dmq1(d, q) if dq is None else dq,
            iqmp=rsa.rsa_crt_iqmp(p, q) if qi is None else qi,
            public_numbers=rsa.RSAPublicNumbers(e=e, n=n),
        )
        key = numbers.private_key()  # full validation, on purpose
    except (ValueError, ArithmeticError):
        raise InvalidKey("RSA key is invalid: its parameters are inconsistent") from None
    return KeyMaterial(key)


def _ec_from_jwk(jwk: Mapping[str, Any]) -> KeyMaterial:
    crv_value = jwk.get("crv")
    if not isinstance(crv_value, str):
        raise InvalidKey("JWK is missing required member 'crv'")
    curve = Curve.parse(crv_value)
    x = _int(jwk, "x")
    y = _int(jwk, "y")
    d = _int(jwk, "d", private=True)
    try:
        key = ec.derive_private_key(d, _CURVES[curve]())
    except ValueError:
        raise InvalidKey(f"EC key is invalid: 'd' is out of range for curve {curve}") from None
    point = key.public_key().public_numbers()
    if (point.x, point.y) != (x, y):
        raise InvalidKey("EC key is invalid: private key 'd' does not match the public point (x, y)")
    return KeyMaterial(key)

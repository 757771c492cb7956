"""ECDSA over digests, with the JOSE raw ``r||s`` signature format (RFC 7518 section 3.4)."""

from __future__ import annotations

import functools

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, utils

from kluis.crypto.algorithms import Curve, SignatureAlgorithm, hash_for

__all__ = ["der_to_raw", "raw_to_der", "sign", "verify"]


def der_to_raw(der: bytes, curve: Curve) -> bytes:
    """DER ``ECDSA-Sig-Value`` -> ``r||s``, each left-padded to the curve byte length."""
    r, s = utils.decode_dss_signature(der)
    size = curve.byte_length
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def raw_to_der(raw: bytes, curve: Curve) -> bytes | None:
    """``r||s`` -> DER, or None when the length is wrong for the curve."""
    size = curve.byte_length
    if len(raw) != 2 * size:
        return None
    r = int.from_bytes(raw[:size], "big")
    s = int.from_bytes(raw[size:], "big")
    return utils.encode_dss_signature(r, s)


@functools.lru_cache(maxsize=8)
def _ecdsa(alg: SignatureAlgorithm) -> ec.ECDSA:
    """One immutable signature-algorithm object per JOSE algorithm, not one per request."""
    return ec.ECDSA(utils.Prehashed(hash_for(alg)))


def sign(private: ec.EllipticCurvePrivateKey, curve: Curve, alg: SignatureAlgorithm, digest: bytes) -> bytes:
    der = private.sign(digest, _ecdsa(alg))
    return der_to_raw(der, curve)


def verify(
    public: ec.EllipticCurvePublicKey,
    curve: Curve,
    alg: SignatureAlgorithm,
    digest: bytes,
    signature: bytes,
) -> bool:
    der = raw_to_der(signature, curve)
    if der is None:
        return False
    try:
        public.verify(der, digest, _ecdsa(alg))
    except (InvalidSignature, ValueError):
        return False
    return True

"""ECDSA over digests with JOSE's raw r||s signatures (RFC 7518 section 3.4)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from kluis.crypto._ec import der_to_raw, raw_to_der, sign, verify
from kluis.crypto.algorithms import Curve, SignatureAlgorithm
from kluis.crypto.keys import KeyMaterial

CASES = [
    (Curve.P_256, SignatureAlgorithm.ES256, hashes.SHA256()),
    (Curve.P_384, SignatureAlgorithm.ES384, hashes.SHA384()),
    (Curve.P_521, SignatureAlgorithm.ES512, hashes.SHA512()),
    (Curve.P_256K, SignatureAlgorithm.ES256K, hashes.SHA256()),
]


@pytest.mark.parametrize(("curve", "alg", "hash_"), CASES, ids=[c[1].value for c in CASES])
def test_sign_is_raw_r_s_that_standard_ecdsa_accepts(
    ec_keys: dict[Curve, KeyMaterial], curve: Curve, alg: SignatureAlgorithm, hash_: hashes.HashAlgorithm
) -> None:
    key = ec_keys[curve]
    private, public = key.private, key.public
    assert isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey)
    h = hashes.Hash(hash_)
    h.update(b"message")
    digest = h.finalize()
    raw = sign(private, curve, alg, digest)
    assert len(raw) == 2 * curve.byte_length  # fixed width, both halves left-padded
    der = raw_to_der(raw, curve)
    assert der is not None
    public.verify(der, b"message", ec.ECDSA(hash_))  # an independent verifier over the message itself
    assert verify(public, curve, alg, digest, raw)


def test_verify_is_false_never_an_error(ec_keys: dict[Curve, KeyMaterial]) -> None:
    key = ec_keys[Curve.P_256]
    private, public = key.private, key.public
    assert isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey)
    digest = hashlib.sha256(b"m").digest()
    raw = sign(private, Curve.P_256, SignatureAlgorithm.ES256, digest)
    other = hashlib.sha256(b"other").digest()
    assert not verify(public, Curve.P_256, SignatureAlgorithm.ES256, other, raw)
    assert not verify(public, Curve.P_256, SignatureAlgorithm.ES256, digest, raw[:-1])  # wrong length
    assert not verify(public, Curve.P_256, SignatureAlgorithm.ES256, digest, bytes(64))  # r = s = 0


def test_der_and_raw_convert_both_ways() -> None:
    der = utils.encode_dss_signature(1, 2**255)
    raw = der_to_raw(der, Curve.P_256)
    assert raw == (1).to_bytes(32, "big") + (2**255).to_bytes(32, "big")
    assert raw_to_der(raw, Curve.P_256) == der
    assert raw_to_der(raw, Curve.P_384) is None  # 64 bytes is not a P-384 signature
    assert len(der_to_raw(utils.encode_dss_signature(5, 7), Curve.P_521)) == 132


def test_a_der_signature_is_not_accepted_as_raw(ec_keys: dict[Curve, KeyMaterial]) -> None:
    key = ec_keys[Curve.P_256]
    private, public = key.private, key.public
    assert isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey)
    digest = hashlib.sha256(b"m").digest()
    der = private.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    assert not verify(public, Curve.P_256, SignatureAlgorithm.ES256, digest, der)

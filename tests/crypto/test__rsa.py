"""RSA primitives: size limits per padding, vague decryption failures, signatures standard verifiers accept."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kluis.crypto._rsa import decrypt, encrypt, max_plaintext_size, sign, verify
from kluis.crypto.algorithms import EncryptionAlgorithm as E
from kluis.crypto.algorithms import SignatureAlgorithm as S
from kluis.crypto.errors import InvalidParameter, OperationFailed
from kluis.crypto.keys import KeyMaterial


def _pair(key: KeyMaterial) -> tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey]:
    assert isinstance(key.private, rsa.RSAPrivateKey) and isinstance(key.public, rsa.RSAPublicKey)
    return key.private, key.public


def test_max_plaintext_size_follows_rfc8017() -> None:
    assert max_plaintext_size(E.RSA1_5, 2048) == 256 - 11
    assert max_plaintext_size(E.RSA_OAEP, 2048) == 256 - 2 * 20 - 2  # SHA-1
    assert max_plaintext_size(E.RSA_OAEP_256, 3072) == 384 - 2 * 32 - 2  # SHA-256


@pytest.mark.parametrize("alg", [E.RSA_OAEP, E.RSA_OAEP_256, E.RSA1_5])
def test_encrypt_up_to_the_limit_and_not_beyond(rsa2048: KeyMaterial, alg: E) -> None:
    private, public = _pair(rsa2048)
    limit = max_plaintext_size(alg, 2048)
    data = bytes(range(256))[:limit]
    assert decrypt(private, alg, encrypt(public, alg, data)) == data
    with pytest.raises(InvalidParameter, match=f"maximum {limit}"):
        encrypt(public, alg, data + b"x")


def test_oaep_uses_the_documented_hashes(rsa2048: KeyMaterial) -> None:
    private, public = _pair(rsa2048)
    sha256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert private.decrypt(encrypt(public, E.RSA_OAEP_256, b"m"), sha256) == b"m"
    sha1 = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    assert decrypt(private, E.RSA_OAEP, public.encrypt(b"m", sha1)) == b"m"


def test_decrypt_failures(rsa2048: KeyMaterial, rsa2048_other: KeyMaterial) -> None:
    private, public = _pair(rsa2048)
    with pytest.raises(InvalidParameter, match="expected 256 bytes"):
        decrypt(private, E.RSA_OAEP, bytes(255))
    ct = encrypt(public, E.RSA_OAEP_256, b"m")
    with pytest.raises(OperationFailed, match=r"^Decryption failed$"):
        decrypt(_pair(rsa2048_other)[0], E.RSA_OAEP_256, ct)  # the wrong key says nothing more


@pytest.mark.parametrize(
    ("alg", "hash_", "pad"),
    [
        (S.RS256, hashes.SHA256(), "pkcs1"),
        (S.RS512, hashes.SHA512(), "pkcs1"),
        (S.PS256, hashes.SHA256(), "pss"),
        (S.PS384, hashes.SHA384(), "pss"),
    ],
)
def test_signatures_over_digests_verify_over_the_message(
    rsa2048: KeyMaterial, alg: S, hash_: hashes.HashAlgorithm, pad: str
) -> None:
    private, public = _pair(rsa2048)
    h = hashes.Hash(hash_)
    h.update(b"message")
    digest = h.finalize()
    sig = sign(private, alg, digest)
    scheme = (
        padding.PKCS1v15() if pad == "pkcs1" else padding.PSS(mgf=padding.MGF1(hash_), salt_length=hash_.digest_size)
    )
    public.verify(sig, b"message", scheme, hash_)  # raises if not a standard signature
    assert verify(public, alg, digest, sig)
    assert not verify(public, alg, digest, sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not verify(public, alg, bytes(len(digest)), sig)


def test_rsnull_signs_the_bytes_as_given(rsa2048: KeyMaterial) -> None:
    private, public = _pair(rsa2048)
    payload = b"any caller-made bytes, no DigestInfo"
    sig = sign(private, S.RSNULL, payload)
    assert public.recover_data_from_signature(sig, padding.PKCS1v15(), None) == payload
    assert verify(public, S.RSNULL, payload, sig)
    assert not verify(public, S.RSNULL, payload[:-1] + b"!", sig)
    for bad in (b"", bytes(256 - 10)):
        with pytest.raises(InvalidParameter, match="RSNULL"):
            sign(private, S.RSNULL, bad)


def test_verify_with_the_wrong_key_is_false(rsa2048: KeyMaterial, rsa2048_other: KeyMaterial) -> None:
    private, _ = _pair(rsa2048)
    digest = hashlib.sha256(b"m").digest()
    assert not verify(_pair(rsa2048_other)[1], S.RS256, digest, sign(private, S.RS256, digest))

"""RSA primitives: OAEP / PKCS#1 v1.5 encryption and PKCS#1 v1.5 / PSS signatures over digests."""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from kluis.crypto.algorithms import EncryptionAlgorithm, SignatureAlgorithm, hash_for
from kluis.crypto.errors import InvalidParameter, OperationFailed

__all__ = ["decrypt", "encrypt", "max_plaintext_size", "sign", "verify"]

_E = EncryptionAlgorithm
_S = SignatureAlgorithm
_PKCS1_OVERHEAD = 11


def _cipher_padding(alg: EncryptionAlgorithm) -> padding.AsymmetricPadding:
    if alg is _E.RSA1_5:
        return padding.PKCS1v15()
    h = hash_for(alg)  # RSA-OAEP: SHA-1 / MGF1-SHA1, RSA-OAEP-256: SHA-256 / MGF1-SHA256
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def max_plaintext_size(alg: EncryptionAlgorithm, key_size: int) -> int:
    """Largest message RSA can encrypt with this padding (RFC 8017 sections 7.1 and 7.2)."""
    k = key_size // 8
    if alg is _E.RSA1_5:
        return k - _PKCS1_OVERHEAD
    return k - 2 * hash_for(alg).digest_size - 2


def encrypt(public: rsa.RSAPublicKey, alg: EncryptionAlgorithm, plaintext: bytes) -> bytes:
    limit = max_plaintext_size(alg, public.key_size)
    if len(plaintext) > limit:
        raise InvalidParameter(
            f"Plaintext is too long for algorithm {alg} with a {public.key_size}-bit key "
            f"({len(plaintext)} bytes, maximum {limit})"
        )
    return public.encrypt(plaintext, _cipher_padding(alg))


def decrypt(private: rsa.RSAPrivateKey, alg: EncryptionAlgorithm, ciphertext: bytes) -> bytes:
    """Decrypt; every failure is the same vague :class:`OperationFailed` (no padding oracle).

    Note: OpenSSL >= 3.2 uses *implicit rejection* for RSA1_5, so a bad
    ciphertext or wrong key yields random-looking bytes instead of an error;
    that is the Bleichenbacher/Marvin countermeasure, not a bug.
    """
    k = (private.key_size + 7) // 8
    if len(ciphertext) != k:
        raise InvalidParameter(
            f"Ciphertext length {len(ciphertext)} does not match the {private.key_size}-bit key (expected {k} bytes)"
        )
    try:
        return private.decrypt(ciphertext, _cipher_padding(alg))
    except ValueError:
        raise OperationFailed("Decryption failed") from None


def _signature_padding(alg: SignatureAlgorithm, h: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
    if alg in (_S.PS256, _S.PS384, _S.PS512):
        return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
    return padding.PKCS1v15()


def _prehashed(alg: SignatureAlgorithm) -> tuple[padding.AsymmetricPadding, utils.Prehashed]:
    h = hash_for(alg)
    return _signature_padding(alg, h), utils.Prehashed(h)


def _check_rsnull_digest(digest: bytes, key_size: int) -> None:
    limit = key_size // 8 - _PKCS1_OVERHEAD
    if not 0 < len(digest) <= limit:
        raise InvalidParameter(
            f"Digest length {len(digest)} is invalid for algorithm RSNULL with a {key_size}-bit key "
            f"(expected 1 to {limit} bytes)"
        )


def sign(private: rsa.RSAPrivateKey, alg: SignatureAlgorithm, digest: bytes) -> bytes:
    """Sign a digest the caller already computed (its length is checked by the caller)."""
    if alg is _S.RSNULL:
        # Raw PKCS#1 v1.5: the caller's bytes are padded as-is, without a DigestInfo prefix.
        _check_rsnull_digest(digest, private.key_size)
        return private.sign(digest, padding.PKCS1v15(), utils.NoDigestInfo())
    pad, prehashed = _prehashed(alg)
    return private.sign(digest, pad, prehashed)


def verify(public: rsa.RSAPublicKey, alg: SignatureAlgorithm, digest: bytes, signature: bytes) -> bool:
    try:
        if alg is _S.RSNULL:
            _check_rsnull_digest(digest, public.key_size)
            # Recover the padded payload (no DigestInfo) and compare in constant time.
            recovered = public.recover_data_from_signature(signature, padding.PKCS1v15(), None)
            return hmac.compare_digest(recovered, digest)
        pad, prehashed = _prehashed(alg)
        public.verify(signature, digest, pad, prehashed)
    except (InvalidSignature, ValueError):
        return False
    return True

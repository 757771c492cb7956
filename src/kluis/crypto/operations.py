"""The cryptographic operations Azure Key Vault exposes: encrypt, decrypt, wrap, unwrap, sign, verify.

Each function first asks :func:`~kluis.crypto.algorithms.supports` whether the
key may do this, so misuse fails early with a precise message, then
dispatches to the family's primitives.  Azure semantics worth knowing:

* ``sign``/``verify`` take a *digest* that the caller computed, not the message
  (except HS*, which MACs the given value, and RSNULL, which signs raw bytes).
* ES* signatures are raw ``r||s`` (JOSE), not DER.
* AES-GCM returns the tag separately from the ciphertext, and generates the IV
  when the caller does not send one.
"""

from __future__ import annotations

import functools
import hmac as _consttime
import os
from dataclasses import dataclass
from typing import TypedDict, Unpack

from cryptography.hazmat.primitives import hmac
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kluis.crypto import _aes, _ec, _rsa
from kluis.crypto.algorithms import (
    AesMode,
    Curve,
    EncryptionAlgorithm,
    KeyFamily,
    KeyOperation,
    SignatureAlgorithm,
    digest_size_for,
    hash_for,
    parse_algorithm,
    supports,
)
from kluis.crypto.errors import InvalidKey, InvalidParameter
from kluis.crypto.keys import KeyMaterial

__all__ = [
    "CipherParams",
    "DecipherParams",
    "EncryptResult",
    "decrypt",
    "encrypt",
    "sign",
    "unwrap_key",
    "verify",
    "wrap_key",
]

_E = EncryptionAlgorithm
_S = SignatureAlgorithm


@dataclass(slots=True)  # not frozen: built on every encryption, and a frozen __init__ costs more
class EncryptResult:
    """Ciphertext plus whatever the caller needs to decrypt it later (iv, GCM tag, aad). Never edited."""

    ciphertext: bytes
    iv: bytes | None = None
    tag: bytes | None = None
    aad: bytes | None = None


def _check(key: KeyMaterial, op: KeyOperation, alg: str) -> EncryptionAlgorithm | SignatureAlgorithm:
    return _checked(key.family, op, alg, key.curve, key.key_size)


@functools.lru_cache(maxsize=1024)
def _checked(
    family: str, op: KeyOperation, alg: str, curve: Curve | None, key_size: int
) -> EncryptionAlgorithm | SignatureAlgorithm:
    """The capability check, remembered: it depends only on these small values, and parsing the
    enums on every request cost more than an ECDSA signature. Failures raise and are not cached."""
    supports(family, op, alg, curve=curve, key_size=key_size)
    return parse_algorithm(op, alg)


def _cipher_alg(key: KeyMaterial, op: KeyOperation, alg: str) -> EncryptionAlgorithm:
    parsed = _check(key, op, alg)
    assert isinstance(parsed, EncryptionAlgorithm)
    return parsed


def _signature_alg(key: KeyMaterial, op: KeyOperation, alg: str) -> SignatureAlgorithm:
    parsed = _check(key, op, alg)
    assert isinstance(parsed, SignatureAlgorithm)
    return parsed


def _unused(alg: str, **params: bytes | None) -> None:
    """Reject parameters an algorithm does not take (empty values count as absent)."""
    for name, value in params.items():
        if value:
            raise InvalidParameter(f"Algorithm {alg} does not use the '{name}' parameter")


def _oct(key: KeyMaterial) -> bytes:
    if not isinstance(key.private, bytes):
        raise InvalidKey("Key is not a symmetric key")
    return key.private


# The RSA and EC branches below assert their key object's class: a KeyMaterial's family is derived from
# that class (kluis.crypto.keys), so the assertion only tells the type checker what the family implies.


# --- encrypt / decrypt ------------------------------------------------------


def _encrypt(
    key: KeyMaterial, alg: EncryptionAlgorithm, plaintext: bytes, iv: bytes | None, aad: bytes | None
) -> EncryptResult:
    if key.family is KeyFamily.RSA:
        _unused(alg, iv=iv, aad=aad)
        assert isinstance(key.public, rsa.RSAPublicKey)
        return EncryptResult(_rsa.encrypt(key.public, alg, plaintext))
    secret = _oct(key)
    if alg.aes_mode is AesMode.GCM:
        nonce = os.urandom(_aes.GCM_IV_SIZE) if iv is None else iv
        ciphertext, tag = _aes.gcm_encrypt(secret, alg, plaintext, nonce, aad)
        return EncryptResult(ciphertext, iv=nonce, tag=tag, aad=aad)
    _unused(alg, aad=aad)
    ciphertext = _aes.cbc_encrypt(secret, alg, plaintext, iv, pad=alg.aes_mode is AesMode.CBC_PAD)
    return EncryptResult(ciphertext, iv=iv)


def _decrypt(
    key: KeyMaterial,
    alg: EncryptionAlgorithm,
    ciphertext: bytes,
    iv: bytes | None,
    aad: bytes | None,
    tag: bytes | None,
) -> bytes:
    if key.family is KeyFamily.RSA:
        _unused(alg, iv=iv, aad=aad, tag=tag)
        assert isinstance(key.private, rsa.RSAPrivateKey)
        return _rsa.decrypt(key.private, alg, ciphertext)
    secret = _oct(key)
    if alg.aes_mode is AesMode.GCM:
        return _aes.gcm_decrypt(secret, alg, ciphertext, iv, tag, aad)
    _unused(alg, aad=aad, tag=tag)
    return _aes.cbc_decrypt(secret, alg, ciphertext, iv, pad=alg.aes_mode is AesMode.CBC_PAD)


class CipherParams(TypedDict, total=False):
    """The optional keyword parameters of :func:`encrypt` and :func:`wrap_key` (absent or None: not given).

    ``iv``: AES-CBC's 16-byte IV (required), or AES-GCM's nonce (generated when absent); ``aad``: AES-GCM's
    additional authenticated data. An algorithm that does not use one rejects it (InvalidParameter)."""

    iv: bytes | None
    aad: bytes | None


class DecipherParams(CipherParams, total=False):
    """The optional keyword parameters of :func:`decrypt` and :func:`unwrap_key`: those encrypting takes
    (the values it used) and ``tag``, AES-GCM's 16-byte authentication tag."""

    tag: bytes | None


def encrypt(key: KeyMaterial, alg: str, plaintext: bytes, **params: Unpack[CipherParams]) -> EncryptResult:
    """Encrypt ``plaintext``.  GCM generates a 12-byte iv when none is given; CBC requires one."""
    parsed = _cipher_alg(key, KeyOperation.ENCRYPT, alg)
    return _encrypt(key, parsed, plaintext, params.get("iv"), params.get("aad"))


def decrypt(key: KeyMaterial, alg: str, ciphertext: bytes, **params: Unpack[DecipherParams]) -> bytes:
    """Decrypt ``ciphertext``; any cryptographic failure raises one generic ``OperationFailed``."""
    parsed = _cipher_alg(key, KeyOperation.DECRYPT, alg)
    return _decrypt(key, parsed, ciphertext, params.get("iv"), params.get("aad"), params.get("tag"))


# --- wrap / unwrap ----------------------------------------------------------


def wrap_key(key: KeyMaterial, alg: str, key_bytes: bytes, **params: Unpack[CipherParams]) -> EncryptResult:
    """Wrap ``key_bytes``: RSA encryption, AES key wrap (RFC 3394/5649), or AES GCM/CBC."""
    parsed = _cipher_alg(key, KeyOperation.WRAP_KEY, alg)
    if parsed.aes_mode is AesMode.KEY_WRAP:
        _unused(parsed, iv=params.get("iv"), aad=params.get("aad"))
        pad = parsed is _E.CKM_AES_KEY_WRAP_PAD
        return EncryptResult(_aes.key_wrap(_oct(key), parsed, key_bytes, pad=pad))
    return _encrypt(key, parsed, key_bytes, params.get("iv"), params.get("aad"))


def unwrap_key(key: KeyMaterial, alg: str, wrapped: bytes, **params: Unpack[DecipherParams]) -> bytes:
    """Inverse of :func:`wrap_key`."""
    parsed = _cipher_alg(key, KeyOperation.UNWRAP_KEY, alg)
    if parsed.aes_mode is AesMode.KEY_WRAP:
        _unused(parsed, iv=params.get("iv"), aad=params.get("aad"), tag=params.get("tag"))
        pad = parsed is _E.CKM_AES_KEY_WRAP_PAD
        return _aes.key_unwrap(_oct(key), parsed, wrapped, pad=pad)
    return _decrypt(key, parsed, wrapped, params.get("iv"), params.get("aad"), params.get("tag"))


# --- sign / verify ----------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _digest_size(alg: SignatureAlgorithm) -> int:
    """``digest_size_for(alg)``, remembered (it parses the name and makes a hash object each time)."""
    return digest_size_for(alg)


def _check_digest(alg: SignatureAlgorithm, digest: bytes) -> None:
    expected = _digest_size(alg)
    if len(digest) != expected:
        raise InvalidParameter(
            f"Digest length {len(digest)} does not match algorithm {alg} (expected {expected} bytes)"
        )


def _hmac(key: KeyMaterial, alg: SignatureAlgorithm, value: bytes) -> bytes:
    mac = hmac.HMAC(_oct(key), hash_for(alg))
    mac.update(value)
    return mac.finalize()


def sign(key: KeyMaterial, alg: str, digest: bytes) -> bytes:
    """Sign a caller-computed digest (RS*/PS*/ES*), raw bytes (RSNULL) or a value (HS*)."""
    parsed = _signature_alg(key, KeyOperation.SIGN, alg)
    if key.family is KeyFamily.OCT:
        return _hmac(key, parsed, digest)
    if parsed is not _S.RSNULL:
        _check_digest(parsed, digest)
    if key.family is KeyFamily.RSA:
        assert isinstance(key.private, rsa.RSAPrivateKey)
        return _rsa.sign(key.private, parsed, digest)
    assert key.curve is not None and isinstance(key.private, ec.EllipticCurvePrivateKey)
    return _ec.sign(key.private, key.curve, parsed, digest)


def verify(key: KeyMaterial, alg: str, digest: bytes, signature: bytes) -> bool:
    """True if ``signature`` is valid; False for a wrong or malformed signature.

    Only the public key is used (HS* excepted, which is symmetric by nature).
    """
    parsed = _signature_alg(key, KeyOperation.VERIFY, alg)
    if key.family is KeyFamily.OCT:
        return _consttime.compare_digest(_hmac(key, parsed, digest), signature)
    if parsed is not _S.RSNULL:
        _check_digest(parsed, digest)
    if key.family is KeyFamily.RSA:
        assert isinstance(key.public, rsa.RSAPublicKey)
        return _rsa.verify(key.public, parsed, digest, signature)
    assert key.curve is not None and isinstance(key.public, ec.EllipticCurvePublicKey)
    return _ec.verify(key.public, key.curve, parsed, digest, signature)

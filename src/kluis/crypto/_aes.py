"""AES primitives for oct keys: GCM, CBC (with and without PKCS#7) and key wrap.

Each function checks the shape of its inputs (iv/tag length, block alignment)
and raises :class:`InvalidParameter` with a precise message; anything that
fails *cryptographically* becomes one generic :class:`OperationFailed` so that
callers learn nothing about where decryption went wrong.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import keywrap
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.padding import PKCS7

from kluis.crypto.errors import InvalidParameter, OperationFailed

__all__ = [
    "BLOCK_SIZE",
    "DECRYPTION_FAILED",
    "GCM_IV_SIZE",
    "GCM_TAG_SIZE",
    "cbc_decrypt",
    "cbc_encrypt",
    "gcm_decrypt",
    "gcm_encrypt",
    "key_unwrap",
    "key_wrap",
]

BLOCK_SIZE = 16
GCM_IV_SIZE = 12
GCM_TAG_SIZE = 16
DECRYPTION_FAILED = "Decryption failed: the data could not be decrypted with this key and parameters"
_UNWRAP_FAILED = "Key unwrap failed: the data could not be unwrapped with this key"


def _check_iv(iv: bytes | None, size: int, alg: str) -> bytes:
    if iv is None:
        raise InvalidParameter(f"Algorithm {alg} requires an iv of {size} bytes")
    if len(iv) != size:
        raise InvalidParameter(f"IV length {len(iv)} is invalid for algorithm {alg} (expected {size} bytes)")
    return iv


def gcm_encrypt(key: bytes, alg: str, plaintext: bytes, iv: bytes, aad: bytes | None) -> tuple[bytes, bytes]:
    """Return ``(ciphertext, tag)``; the tag is split off because Azure returns it separately."""
    _check_iv(iv, GCM_IV_SIZE, alg)
    sealed = AESGCM(key).encrypt(iv, plaintext, aad)
    return sealed[:-GCM_TAG_SIZE], sealed[-GCM_TAG_SIZE:]


def gcm_decrypt(
    key: bytes, alg: str, ciphertext: bytes, iv: bytes | None, tag: bytes | None, aad: bytes | None
) -> bytes:
    nonce = _check_iv(iv, GCM_IV_SIZE, alg)
    if tag is None:
        raise InvalidParameter(f"Algorithm {alg} requires an authentication tag of {GCM_TAG_SIZE} bytes")
    if len(tag) != GCM_TAG_SIZE:
        raise InvalidParameter(
            f"Authentication tag length {len(tag)} is invalid for algorithm {alg} (expected {GCM_TAG_SIZE} bytes)"
        )
    try:
        return AESGCM(key).decrypt(nonce, ciphertext + tag, aad)
    except InvalidTag:
        raise OperationFailed(DECRYPTION_FAILED) from None


def cbc_encrypt(key: bytes, alg: str, plaintext: bytes, iv: bytes | None, *, pad: bool) -> bytes:
    nonce = _check_iv(iv, BLOCK_SIZE, alg)
    if pad:
        padder = PKCS7(BLOCK_SIZE * 8).padder()
        plaintext = padder.update(plaintext) + padder.finalize()
    elif len(plaintext) % BLOCK_SIZE:
        raise InvalidParameter(
            f"Plaintext length {len(plaintext)} is not a multiple of {BLOCK_SIZE} bytes, "
            f"which algorithm {alg} requires (use {alg}PAD for padding)"
        )
    encryptor = Cipher(algorithms.AES(key), modes.CBC(nonce)).encryptor()
    return encryptor.update(plaintext) + encryptor.finalize()


def cbc_decrypt(key: bytes, alg: str, ciphertext: bytes, iv: bytes | None, *, pad: bool) -> bytes:
    nonce = _check_iv(iv, BLOCK_SIZE, alg)
    if len(ciphertext) % BLOCK_SIZE or (pad and not ciphertext):
        rule = "a non-zero multiple" if pad else "a multiple"
        raise InvalidParameter(
            f"Ciphertext length {len(ciphertext)} is invalid for algorithm {alg} (must be {rule} of {BLOCK_SIZE} bytes)"
        )
    decryptor = Cipher(algorithms.AES(key), modes.CBC(nonce)).decryptor()
    plaintext = decryptor.update(ciphertext) + decryptor.finalize()
    if not pad:
        return plaintext
    unpadder = PKCS7(BLOCK_SIZE * 8).unpadder()
    try:
        return unpadder.update(plaintext) + unpadder.finalize()
    except ValueError:
        raise OperationFailed(DECRYPTION_FAILED) from None


def key_wrap(key: bytes, alg: str, key_bytes: bytes, *, pad: bool) -> bytes:
    """RFC 3394 (``pad=False``) or RFC 5649 (``pad=True``) AES key wrap."""
    if pad:
        if not key_bytes:
            raise InvalidParameter(f"Algorithm {alg} cannot wrap an empty key")
        return keywrap.aes_key_wrap_with_padding(key, key_bytes)
    if len(key_bytes) < 16 or len(key_bytes) % 8:
        raise InvalidParameter(
            f"Key length {len(key_bytes)} cannot be wrapped with algorithm {alg} "
            "(must be at least 16 bytes and a multiple of 8; use CKM_AES_KEY_WRAP_PAD otherwise)"
        )
    return keywrap.aes_key_wrap(key, key_bytes)


def key_unwrap(key: bytes, alg: str, wrapped: bytes, *, pad: bool) -> bytes:
    minimum = 16 if pad else 24
    if len(wrapped) < minimum or len(wrapped) % 8:
        raise InvalidParameter(
            f"Wrapped key length {len(wrapped)} is invalid for algorithm {alg} "
            f"(must be at least {minimum} bytes and a multiple of 8)"
        )
    try:
        if pad:
            return keywrap.aes_key_unwrap_with_padding(key, wrapped)
        return keywrap.aes_key_unwrap(key, wrapped)
    except keywrap.InvalidUnwrap:
        raise OperationFailed(_UNWRAP_FAILED) from None

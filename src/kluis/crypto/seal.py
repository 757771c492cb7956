"""Envelope encryption of key material at rest.

Every private key kluis stores is sealed with AES-256-GCM under one
key-encryption key (KEK).  The caller passes a ``context`` (e.g.
``b"kluis/key/<vault>/<name>/<version>"``) that is bound in as associated
data, so a sealed blob copied to another row, or another vault, will not
unseal.  Blob layout: ``version (1 byte) || nonce (12) || ciphertext || tag (16)``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kluis.crypto.errors import OperationFailed

__all__ = ["KEK_SIZE", "Sealer", "new_kek"]

KEK_SIZE = 32
_VERSION = b"\x01"
_NONCE_SIZE = 12
_TAG_SIZE = 16
_CORRUPT = "sealed data is corrupt or was sealed under another key"


def new_kek() -> bytes:
    """A fresh random 256-bit key-encryption key."""
    return os.urandom(KEK_SIZE)


class Sealer:
    """Seals and unseals blobs under one KEK; safe to share between threads."""

    __slots__ = ("_aead", "_kek")

    def __init__(self, kek: bytes) -> None:
        if not isinstance(kek, bytes) or len(kek) != KEK_SIZE:
            raise ValueError(f"the key-encryption key must be exactly {KEK_SIZE} bytes")
        self._kek = kek
        self._aead = AESGCM(kek)

    def __repr__(self) -> str:
        return "Sealer(kek=<redacted>)"

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        # Random 96-bit nonces: NIST SP 800-38D 8.3 allows at most 2**32 seals under one key with
        # random IVs. kluis seals once per stored version, backup and setting, far below that bound.
        nonce = os.urandom(_NONCE_SIZE)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def unseal(self, blob: bytes, *, context: bytes) -> bytes:
        if len(blob) < 1 + _NONCE_SIZE + _TAG_SIZE or blob[:1] != _VERSION:
            raise OperationFailed(_CORRUPT)
        nonce = blob[1 : 1 + _NONCE_SIZE]
        try:
            return self._aead.decrypt(nonce, blob[1 + _NONCE_SIZE :], context)
        except InvalidTag:
            raise OperationFailed(_CORRUPT) from None

    def derive(self, label: bytes) -> bytes:
        """A 32-byte sub-key for another purpose (e.g. backup blobs), via HKDF-SHA256.

        Different labels give independent keys, so a sub-key never doubles as the KEK.
        """
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kluis/derive/" + label)
        return hkdf.derive(self._kek)

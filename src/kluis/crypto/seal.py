"""Envelope encryption of key material at rest, under data keys.

Every private key, symmetric key and secret value kluis stores is sealed with AES-256-GCM under a
*data key* (DEK). The database keeps data keys only wrapped by the key-encryption key (KEK, see
:mod:`kluis.crypto.kek`), which never enters it. The caller passes a ``context`` (e.g.
``b"kluis/key/<vault>/<name>/<version>"``) that is bound in as associated data, so a sealed blob
copied to another row, or another vault, will not unseal.

Blob layouts:

- version 1: ``0x01 || nonce (12) || ciphertext || tag (16)``: sealed under one key with no id.
  Databases from before data keys hold these, sealed directly under their file KEK; that key's
  bytes are registered as a data key on upgrade and passed here as ``v1_key``. Backup blobs and
  single-key sealers (``Sealer(key)``) still use this layout.
- version 2: ``0x02 || data-key id (4, big-endian) || nonce (12) || ciphertext || tag (16)``.

Unsealing is one dict lookup more than before: the unwrapped data keys live in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kluis.crypto.errors import OperationFailed

__all__ = ["DEK_SIZE", "KEK_SIZE", "Sealer", "derive_key", "new_dek", "new_kek"]

KEK_SIZE = 32
DEK_SIZE = 32
_V1 = 1
_V2 = 2
_ID_SIZE = 4
_NONCE_SIZE = 12
_TAG_SIZE = 16
_CORRUPT = "sealed data is corrupt or was sealed under another key"


def new_kek() -> bytes:
    """A fresh random 256-bit key-encryption key."""
    return os.urandom(KEK_SIZE)


def new_dek() -> bytes:
    """A fresh random 256-bit data key."""
    return os.urandom(DEK_SIZE)


def derive_key(key: bytes, label: bytes) -> bytes:
    """A 32-byte sub-key of ``key`` for the purpose ``label``, via HKDF-SHA256 (one-way; labels independent)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kluis/derive/" + label)
    return hkdf.derive(key)


def _aead(key: bytes) -> AESGCM:
    if not isinstance(key, bytes) or len(key) != KEK_SIZE:
        raise ValueError(f"a sealing key must be exactly {KEK_SIZE} bytes")
    return AESGCM(key)


class Sealer:
    """Seals and unseals blobs; safe to share between threads.

    ``Sealer(key)`` seals version-1 blobs under ``key`` alone (backup envelopes, tests).
    ``Sealer(key, key_id=n, others={...}, v1_key=..., resolve=...)`` seals version-2 blobs under
    data key ``n`` and unseals version-2 blobs under any data key it knows by id (``key`` as ``n``,
    ``others``, and ids ``resolve(id)`` returns the unwrapped key for, asked once per unknown id),
    and version-1 blobs under ``v1_key``. Raises ValueError for a key that is not 32 bytes;
    :class:`OperationFailed` for a blob that does not unseal.
    """

    __slots__ = ("_aead", "_header", "_key", "_keys", "_resolve", "_v1")

    def __init__(
        self,
        key: bytes,
        *,
        key_id: int | None = None,
        others: Mapping[int, bytes] | None = None,
        v1_key: bytes | None = None,
        resolve: Callable[[int], bytes | None] | None = None,
    ) -> None:
        self._key = key
        self._aead = _aead(key)
        self._keys: dict[int, AESGCM] = {}
        self._resolve = resolve
        if key_id is None:
            self._header = bytes([_V1])
            self._v1: AESGCM | None = self._aead
        else:
            if not 0 < key_id < 2 ** (8 * _ID_SIZE):
                raise ValueError(f"a data key id must be 1..{2 ** (8 * _ID_SIZE) - 1}, not {key_id}")
            self._header = bytes([_V2]) + key_id.to_bytes(_ID_SIZE, "big")
            self._keys = {i: _aead(k) for i, k in (others or {}).items()}
            self._keys[key_id] = self._aead
            self._v1 = _aead(v1_key) if v1_key is not None else None

    def __repr__(self) -> str:
        return "Sealer(key=<redacted>)"

    @property
    def key_id(self) -> int | None:
        """The id of the data key new blobs are sealed under (None: version-1 blobs, no id)."""
        return int.from_bytes(self._header[1:], "big") if len(self._header) > 1 else None

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        # Random 96-bit nonces: NIST SP 800-38D 8.3 allows at most 2**32 seals under one key with
        # random IVs. kluis seals once per stored version, backup and setting, far below that bound.
        nonce = os.urandom(_NONCE_SIZE)
        return self._header + nonce + self._aead.encrypt(nonce, plaintext, context)

    def unseal(self, blob: bytes, *, context: bytes) -> bytes:
        version = blob[0] if blob else 0
        if version == _V2 and len(blob) >= 1 + _ID_SIZE + _NONCE_SIZE + _TAG_SIZE:
            key_id = int.from_bytes(blob[1 : 1 + _ID_SIZE], "big")
            aead = self._keys.get(key_id) or self._find(key_id)
            start = 1 + _ID_SIZE
        elif version == _V1 and len(blob) >= 1 + _NONCE_SIZE + _TAG_SIZE:
            aead = self._v1
            start = 1
        else:
            raise OperationFailed(_CORRUPT)
        if aead is None:
            raise OperationFailed(_CORRUPT)
        nonce = blob[start : start + _NONCE_SIZE]
        try:
            return aead.decrypt(nonce, blob[start + _NONCE_SIZE :], context)
        except InvalidTag:
            raise OperationFailed(_CORRUPT) from None

    def _find(self, key_id: int) -> AESGCM | None:
        """A data key this sealer was not given (made after it was built): asked of ``resolve`` once."""
        if self._resolve is None or not self._keys:
            return None
        key = self._resolve(key_id)
        if key is None:
            return None
        aead = _aead(key)
        self._keys = {**self._keys, key_id: aead}  # replaced whole: readers on other threads see old or new
        return aead

    def derive(self, label: bytes) -> bytes:
        """A 32-byte sub-key of the sealing key for another purpose, via HKDF-SHA256 (:func:`derive_key`).

        Different labels give independent keys, so a sub-key never doubles as the sealing key.
        """
        return derive_key(self._key, label)

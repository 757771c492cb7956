"""kluis.crypto: keys, algorithms and cryptographic operations, built on pyca ``cryptography`` only.

No HTTP, no storage: callers hand in :class:`KeyMaterial` and bytes, and get
bytes or one of the :mod:`~kluis.crypto.errors` back.
"""

from __future__ import annotations

from kluis.crypto.algorithms import (
    Curve,
    EncryptionAlgorithm,
    KeyFamily,
    KeyOperation,
    KeyType,
    SignatureAlgorithm,
    algorithms_for,
    digest_size_for,
    hash_for,
    supports,
)
from kluis.crypto.encoding import b64url_decode, b64url_encode
from kluis.crypto.errors import (
    CryptoError,
    InvalidKey,
    InvalidParameter,
    OperationFailed,
    UnsupportedAlgorithm,
)
from kluis.crypto.keys import KeyMaterial, from_jwk, generate
from kluis.crypto.operations import (
    EncryptResult,
    decrypt,
    encrypt,
    sign,
    unwrap_key,
    verify,
    wrap_key,
)
from kluis.crypto.pool import KeyPool
from kluis.crypto.seal import Sealer, new_kek

__all__ = [
    "CryptoError",
    "Curve",
    "EncryptResult",
    "EncryptionAlgorithm",
    "InvalidKey",
    "InvalidParameter",
    "KeyFamily",
    "KeyMaterial",
    "KeyOperation",
    "KeyPool",
    "KeyType",
    "OperationFailed",
    "Sealer",
    "SignatureAlgorithm",
    "UnsupportedAlgorithm",
    "algorithms_for",
    "b64url_decode",
    "b64url_encode",
    "decrypt",
    "digest_size_for",
    "encrypt",
    "from_jwk",
    "generate",
    "hash_for",
    "new_kek",
    "sign",
    "supports",
    "unwrap_key",
    "verify",
    "wrap_key",
]

"""Cryptographic operations on a stored key: encrypt, decrypt, wrap, unwrap, sign, verify.

The caller's permission was checked by the authorization point before these run. Each checks,
through ``KeyService.usable``: that the key and version exist, that the version is enabled, that
its ``key_ops`` allow the operation, and that it is inside its nbf/exp window (decrypt, unwrap and
verify stay allowed outside it, as Key Vault documents, so data protected earlier can still be
read). Then the crypto layer checks the algorithm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kluis.crypto import CryptoError, EncryptResult, operations
from kluis.domain.errors import BadParameter
from kluis.domain.keys.service import KeyService
from kluis.store import VaultRecord

__all__ = ["KeyOperations", "OperationResult"]

_ENCRYPTING = frozenset({"encrypt", "wrapKey"})


@dataclass(slots=True)  # not frozen: built on every operation, and a frozen __init__ costs more
class OperationResult:
    """What an operation answers: the version used (``name`` in its stored casing), the output
    ``value``, and for an encryption the ``iv``, GCM ``tag`` and ``aad`` it used. Never edited."""

    name: str
    version: str
    value: bytes
    iv: bytes | None = None
    tag: bytes | None = None
    aad: bytes | None = None


class KeyOperations:
    def __init__(self, keys: KeyService) -> None:
        self._keys = keys

    def cipher(
        self,
        op: str,
        vault: VaultRecord,
        name: str,
        version: str | None,
        alg: str,
        value: bytes,
        *,
        iv: bytes | None = None,
        aad: bytes | None = None,
        tag: bytes | None = None,
    ) -> OperationResult:
        """encrypt, decrypt, wrapKey or unwrapKey (``op``, Azure's key_ops spelling) with the named
        version (None: the latest). Encrypting answers the ciphertext with the IV, tag and AAD the
        algorithm made (GCM, CBC); decrypting answers the plaintext. BadParameter for an algorithm
        the key cannot do, malformed input or (decrypting) data that does not authenticate."""
        v, material = self._keys.usable(vault, name, version, op)
        try:
            if op in _ENCRYPTING:
                fn = operations.wrap_key if op == "wrapKey" else operations.encrypt
                res: EncryptResult = fn(material, alg, value, iv=iv, aad=aad)
                return OperationResult(v.name, v.version, res.ciphertext, res.iv, res.tag, res.aad)
            undo = operations.unwrap_key if op == "unwrapKey" else operations.decrypt
            return OperationResult(v.name, v.version, undo(material, alg, value, iv=iv, aad=aad, tag=tag))
        except CryptoError as e:  # OperationFailed (data that does not authenticate) included
            raise BadParameter(e.message) from None

    def sign(self, vault: VaultRecord, name: str, version: str | None, alg: str, digest: bytes) -> OperationResult:
        """sign (keys/sign): signs a digest the caller computed."""
        v, material = self._keys.usable(vault, name, version, "sign")
        try:
            sig = operations.sign(material, alg, digest)
        except CryptoError as e:
            raise BadParameter(e.message) from None
        return OperationResult(v.name, v.version, sig)

    def verify(
        self,
        vault: VaultRecord,
        name: str,
        version: str | None,
        alg: str,
        digest: bytes,
        signature: bytes,
    ) -> bool:
        """verify (keys/verify)."""
        _, material = self._keys.usable(vault, name, version, "verify")
        try:
            return operations.verify(material, alg, digest, signature)
        except CryptoError as e:
            raise BadParameter(e.message) from None

    @staticmethod
    def random_bytes(count: object) -> bytes:
        """GetRandomBytes: 1 to 128 bytes from the OS's CSPRNG."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 128:
            raise BadParameter("GetRandomBytesRequest: count cannot be greater than 128 or less than 1")
        return os.urandom(count)

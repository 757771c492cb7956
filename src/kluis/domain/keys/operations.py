"""Cryptographic operations on a stored key: encrypt, decrypt, wrap, unwrap, sign, verify.

Each one checks, in order: the caller's permission, that the key and version exist, that the
version is enabled, that its ``key_ops`` allow the operation, and that it is inside its
nbf/exp window (decrypt, unwrap and verify stay allowed outside it, as Key Vault documents,
so data protected earlier can still be read). Then the crypto layer checks the algorithm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import orjson

from kluis.crypto import CryptoError, EncryptResult, OperationFailed, operations
from kluis.domain.clock import Clock
from kluis.domain.errors import BadParameter, Forbidden
from kluis.domain.keys.service import KeyService, key_not_found
from kluis.domain.permissions import Caller, require
from kluis.store import Store, VaultRecord

__all__ = ["KeyOperations", "OperationResult"]

_TIME_EXEMPT = frozenset({"decrypt", "unwrapKey", "verify"})


@dataclass(frozen=True)
class OperationResult:
    name: str
    version: str
    value: bytes
    iv: bytes | None = None
    tag: bytes | None = None
    aad: bytes | None = None


class KeyOperations:
    def __init__(self, store: Store, clock: Clock, keys: KeyService) -> None:
        self._store = store
        self._clock = clock
        self._keys = keys

    def _load(self, vault: VaultRecord, caller: Caller, name: str, version: str | None, op: str):  # type: ignore[no-untyped-def]
        with self._store.read() as tx:
            require(tx.get_policy(vault.vault_id, caller.object_id), vault, caller, "keys", op)
            key = tx.get_key(vault.vault_id, name)
            if key is None or key.deleted_at is not None:
                raise key_not_found(name)
            v = tx.get_version(vault.vault_id, name, version or key.latest_version)
        if v is None:
            raise key_not_found(name, version)
        if not v.enabled:
            raise Forbidden(f"Operation {op} is not allowed on a disabled key.", inner_code="KeyDisabled")
        if op not in orjson.loads(v.key_ops):
            raise Forbidden(f"Operation {op} is not permitted on this key.", inner_code="KeyOperationForbidden")
        if op not in _TIME_EXEMPT:
            now = self._clock.now()
            if v.nbf is not None and now < v.nbf:
                raise Forbidden(
                    f"Operation {op} is not allowed on a key that is not yet valid.",
                    inner_code="KeyNotYetValid",
                )
            if v.exp is not None and now >= v.exp:
                raise Forbidden(f"Operation {op} is not allowed on an expired key.", inner_code="KeyExpired")
        return key.name, v, self._keys.material(vault.vault_id, v)

    def encrypt(
        self,
        vault: VaultRecord,
        caller: Caller,
        name: str,
        version: str | None,
        alg: str,
        value: bytes,
        *,
        iv: bytes | None = None,
        aad: bytes | None = None,
        wrap: bool = False,
    ) -> OperationResult:
        """encrypt (keys/encrypt) or wrapKey (keys/wrapKey)."""
        op = "wrapKey" if wrap else "encrypt"
        key_name, v, material = self._load(vault, caller, name, version, op)
        try:
            fn = operations.wrap_key if wrap else operations.encrypt
            res: EncryptResult = fn(material, alg, value, iv=iv, aad=aad)
        except CryptoError as e:
            raise BadParameter(e.message) from None
        return OperationResult(key_name, v.version, res.ciphertext, res.iv, res.tag, res.aad)

    def decrypt(
        self,
        vault: VaultRecord,
        caller: Caller,
        name: str,
        version: str | None,
        alg: str,
        value: bytes,
        *,
        iv: bytes | None = None,
        aad: bytes | None = None,
        tag: bytes | None = None,
        unwrap: bool = False,
    ) -> OperationResult:
        """decrypt (keys/decrypt) or unwrapKey (keys/unwrapKey)."""
        op = "unwrapKey" if unwrap else "decrypt"
        key_name, v, material = self._load(vault, caller, name, version, op)
        try:
            fn = operations.unwrap_key if unwrap else operations.decrypt
            out = fn(material, alg, value, iv=iv, aad=aad, tag=tag)
        except OperationFailed as e:
            raise BadParameter(e.message) from None
        except CryptoError as e:
            raise BadParameter(e.message) from None
        return OperationResult(key_name, v.version, out)

    def sign(
        self, vault: VaultRecord, caller: Caller, name: str, version: str | None, alg: str, digest: bytes
    ) -> OperationResult:
        """sign (keys/sign): signs a digest the caller computed."""
        key_name, v, material = self._load(vault, caller, name, version, "sign")
        try:
            sig = operations.sign(material, alg, digest)
        except CryptoError as e:
            raise BadParameter(e.message) from None
        return OperationResult(key_name, v.version, sig)

    def verify(
        self,
        vault: VaultRecord,
        caller: Caller,
        name: str,
        version: str | None,
        alg: str,
        digest: bytes,
        signature: bytes,
    ) -> bool:
        """verify (keys/verify)."""
        _, _, material = self._load(vault, caller, name, version, "verify")
        try:
            return operations.verify(material, alg, digest, signature)
        except CryptoError as e:
            raise BadParameter(e.message) from None

    def random_bytes(self, vault: VaultRecord, caller: Caller, count: object) -> bytes:
        """GetRandomBytes: no named permission, but the caller must have some access to the vault."""
        with self._store.read() as tx:
            policy = tx.get_policy(vault.vault_id, caller.object_id)
        if policy is None or not (policy.keys or policy.secrets or policy.certificates):
            require(None, vault, caller, "keys", "get")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 128:
            raise BadParameter("GetRandomBytesRequest: count cannot be greater than 128 or less than 1")
        return os.urandom(count)

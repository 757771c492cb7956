"""Key release (keys/release): an exportable key, to an attested environment its policy admits.

The caller's ``release`` permission was checked by the authorization point. Checks, in order:
the key exists and is enabled (a key outside its nbf/exp window may still be released, as Azure
documents); it is exportable with a release policy; the attestation token verifies against a
trusted authority configured by the administrator (``kluis attestation add``); the token's claims
satisfy the key's release policy; then the key is wrapped for the RSA key inside the token. The
HTTP layer signs the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kluis.crypto import CryptoError, b64url_decode
from kluis.crypto.attestation import load_trusted_key, runtime_rsa_key, verify_attestation, wrap_for_release
from kluis.domain.clock import Clock
from kluis.domain.errors import BadParameter, Forbidden, NotFound
from kluis.domain.keys.service import KeyService
from kluis.domain.views import ObjectView
from kluis.store import Store, VaultRecord

__all__ = ["AttestationAuthorities", "KeyRelease", "Released", "policy_allows"]

_SETTING = "attestation-authorities"


class AttestationAuthorities:
    """The attestation authorities an administrator trusts, with their token-signing keys (PEM)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def all(self) -> dict[str, list[str]]:
        with self._store.read() as tx:
            raw = tx.get_setting(_SETTING)
        return dict(json.loads(raw)) if raw else {}

    def set(self, authority: str, pems: list[str]) -> dict[str, list[str]]:
        if not authority.startswith("https://"):
            raise BadParameter("An attestation authority is an https:// URL (the tokens' iss claim).")
        if not pems:
            raise BadParameter("Give at least one PEM public key or certificate for the authority.")
        for pem in pems:
            try:
                load_trusted_key(pem.encode())
            except CryptoError as e:
                raise BadParameter(e.message) from None
        with self._store.write() as tx:
            raw = tx.get_setting(_SETTING)
            current: dict[str, list[str]] = json.loads(raw) if raw else {}
            current[authority.rstrip("/")] = pems
            tx.put_setting(_SETTING, json.dumps(current).encode())
        return current

    def delete(self, authority: str) -> None:
        with self._store.write() as tx:
            raw = tx.get_setting(_SETTING)
            current: dict[str, list[str]] = json.loads(raw) if raw else {}
            if current.pop(authority.rstrip("/"), None) is None:
                raise NotFound(f"No trusted attestation authority '{authority}'.")
            tx.put_setting(_SETTING, json.dumps(current).encode())


def _claim(claims: Any, path: str) -> tuple[bool, Any]:
    node = claims
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _condition(cond: Any, claims: dict[str, Any], issuer: str) -> bool:
    if not isinstance(cond, dict):
        raise BadParameter("The key's release policy is malformed.")
    if "anyOf" in cond or "allOf" in cond:
        authority = cond.get("authority")
        if authority is not None and str(authority).rstrip("/") != issuer:
            return False
        if "anyOf" in cond:
            return any(_condition(c, claims, issuer) for c in cond["anyOf"])
        return all(_condition(c, claims, issuer) for c in cond["allOf"])
    if "claim" not in cond:
        raise BadParameter("The key's release policy has a condition without a claim.")
    present, value = _claim(claims, str(cond["claim"]))
    if "equals" in cond:
        return present and value == cond["equals"]
    if "notEquals" in cond:
        return present and value != cond["notEquals"]
    if "exists" in cond:
        return present == bool(cond["exists"])
    raise BadParameter("The key's release policy uses an unsupported operator (use equals, notEquals or exists).")


def policy_allows(policy: dict[str, Any], claims: dict[str, Any]) -> bool:
    """Evaluate the release-policy grammar (anyOf/allOf of authorities and claim conditions)."""
    issuer = str(claims.get("iss", "")).rstrip("/")
    if "anyOf" not in policy and "allOf" not in policy:
        raise BadParameter("The key's release policy must have anyOf or allOf.")
    return _condition(policy, claims, issuer)


@dataclass
class Released:
    view: ObjectView
    wrapped: bytes
    enc: str


class KeyRelease:
    def __init__(self, store: Store, clock: Clock, keys: KeyService) -> None:
        self._store = store
        self._clock = clock
        self._keys = keys
        self.authorities = AttestationAuthorities(store)

    def release(self, vault: VaultRecord, name: str, version: str | None, target: Any, enc: str | None) -> Released:
        obj, v = self._keys.lifecycle.read(vault, name, version)
        self._keys.lifecycle.check_usable(v, "release", self._clock.now())
        view = self._keys.lifecycle.view(vault, obj, v)
        if not view.exportable or not view.release_policy:
            raise Forbidden(
                f"Key {name} is not exportable; only exportable keys with a release policy can be released."
            )
        if not isinstance(target, str) or not target:
            raise BadParameter("The 'target' property (an attestation token) is required.")
        enc = enc or "CKM_RSA_AES_KEY_WRAP"
        trusted = {k: [p.encode() for p in pems] for k, pems in self.authorities.all().items()}
        try:
            claims = verify_attestation(target, trusted, now=self._clock.now())
        except CryptoError as e:
            raise BadParameter(e.message) from None
        try:
            policy = json.loads(b64url_decode(view.release_policy.get("data") or ""))
        except (CryptoError, ValueError):
            raise BadParameter("The key's release policy is not valid base64url JSON.") from None
        if not isinstance(policy, dict) or not policy_allows(policy, claims):
            raise Forbidden(
                "The attestation token does not satisfy the key's release policy.", inner_code="AccessDenied"
            )
        try:
            wrapped = wrap_for_release(self._keys.material(v), enc, runtime_rsa_key(claims))
        except CryptoError as e:
            raise BadParameter(e.message) from None
        return Released(view, wrapped, enc)

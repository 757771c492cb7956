"""kluis as its own token issuer: ES256 access tokens shaped like Entra ID's.

The SDKs treat access tokens as opaque strings, but they do send them on every
request, so kluis verifies a token per request. Verification is made cheap by
caching the claims of tokens that already verified, keyed by the token itself
(exact string equality: hashing it with SHA-256 first cost more than the rest of
a cache hit, ~20,000 instructions for a 1 KB token); a cache hit still re-checks
the time window and the audience, so the cache can only save work, never widen
what is accepted.

Tokens are issued with PyJWT. Verification is a short, strict check on top of
``cryptography`` rather than a general JWT library's configurable one: kluis only
ever issues one shape of token (ES256, known ``kid``), so anything else
(``alg: none``, HMAC algorithms, ``crit`` or ``b64`` headers, JWE) is rejected up
front rather than configured away.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from kluis.crypto.encoding import b64url_decode, b64url_encode
from kluis.crypto.errors import CryptoError

__all__ = [
    "Claims",
    "InvalidToken",
    "KeyLike",
    "Principal",
    "TokenIssuer",
    "TokenVerifier",
    "audience_from_scope",
    "jwks",
    "load_public_key",
    "new_signing_key",
    "public_key_der",
]

KeyLike: TypeAlias = bytes | ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey

ALGORITHM = "ES256"
_COORD_BYTES = 32  # P-256
_MAX_TOKEN_LENGTH = 16 * 1024
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_REQUIRED_CLAIMS = ("aud", "iss", "exp", "nbf", "iat", "tid", "oid", "appid")
# Scopes MSAL may add to user flows; they never name a resource.
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})


@dataclass(frozen=True)
class Principal:
    """Who a token is issued to: an application registered in kluis."""

    object_id: str
    app_id: str
    tenant_id: str
    display_name: str = ""


@dataclass(frozen=True)
class Claims:
    """The verified facts the authorization layer needs from a token."""

    object_id: str
    app_id: str
    tenant_id: str
    audience: str
    issuer: str
    expires_at: int
    not_before: int = 0
    issued_at: int = 0
    token_id: str = ""


class InvalidToken(Exception):
    """A token was rejected; ``reason`` is safe to show to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_signing_key() -> bytes:
    """A fresh P-256 private key as PKCS#8 DER (the caller stores it sealed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_public_key(key: KeyLike) -> ec.EllipticCurvePublicKey:
    """Accept a P-256 public key, private key, or their DER/PEM encodings.

    Accepting the private PKCS#8 DER lets a single-process server build a
    verifier straight from its signing key without a separate export step.
    """
    loaded: object = key
    if isinstance(key, bytes):
        loaded = _parse_key_bytes(key)
    if isinstance(loaded, ec.EllipticCurvePrivateKey):
        loaded = loaded.public_key()
    if not isinstance(loaded, ec.EllipticCurvePublicKey) or not isinstance(loaded.curve, ec.SECP256R1):
        raise ValueError("token keys must be P-256 (ES256) keys")
    return loaded


def public_key_der(signing_key_der: bytes) -> bytes:
    """SubjectPublicKeyInfo DER of a signing key, for storing alongside it."""
    return load_public_key(signing_key_der).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class TokenIssuer:
    """Mints access tokens that look like Entra ID v1 app-only tokens."""

    def __init__(self, signing_key_der: bytes, *, tenant_id: str, key_id: str) -> None:
        key = serialization.load_der_private_key(signing_key_der, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("the signing key must be a P-256 private key")
        self._key = key
        self.tenant_id = tenant_id
        self.key_id = key_id

    @property
    def issuer(self) -> str:
        return _issuer_for(self.tenant_id)

    def issue(
        self, principal: Principal, *, audience: str, lifetime: int = 3600, now: int | None = None
    ) -> tuple[str, int]:
        """Return ``(jwt, expires_on)`` with ``expires_on`` in epoch seconds."""
        if lifetime <= 0:
            raise ValueError("lifetime must be positive")
        issued = int(time.time()) if now is None else int(now)
        expires = issued + int(lifetime)
        payload: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer,
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "tid": self.tenant_id,
            "oid": principal.object_id,
            "sub": principal.object_id,
            "appid": principal.app_id,
            "azp": principal.app_id,
            "ver": "1.0",
            "idtyp": "app",
            "uti": secrets.token_urlsafe(16),
        }
        if principal.display_name:
            payload["app_displayname"] = principal.display_name
        token = jwt.encode(payload, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id, "typ": "JWT"})
        return token, expires


class TokenVerifier:
    """Checks kluis-issued tokens, caching successful verifications."""

    def __init__(
        self,
        public_keys: Mapping[str, KeyLike],
        *,
        tenant_id: str,
        leeway: int = 60,
        cache_size: int = 10000,
    ) -> None:
        self._keys = {kid: load_public_key(key) for kid, key in public_keys.items()}
        self.tenant_id = tenant_id
        self.issuer = _issuer_for(tenant_id)
        self.leeway = leeway
        self._cache_size = max(0, cache_size)
        self._cache: OrderedDict[str, Claims] = OrderedDict()  # token -> claims, at most cache_size (~1 KB each)
        self._lock = threading.Lock()

    @classmethod
    def from_signing_key(
        cls, signing_key_der: bytes, *, tenant_id: str, key_id: str, leeway: int = 60, cache_size: int = 10000
    ) -> TokenVerifier:
        return cls({key_id: signing_key_der}, tenant_id=tenant_id, leeway=leeway, cache_size=cache_size)

    def verify(self, token: str, *, audiences: Collection[str], now: int | None = None) -> Claims:
        """Return the token's claims or raise :class:`InvalidToken`."""
        moment = int(time.time()) if now is None else int(now)
        wanted = _wanted(audiences) if isinstance(audiences, frozenset) else _wanted(frozenset(audiences))
        with self._lock:
            cached = self._cache.get(token) if isinstance(token, str) else None
        if cached is None:
            claims = self._verify_uncached(token)
            self._check_dynamic(claims, wanted, moment)
            self._remember(token, claims, moment)
            return claims
        self._check_dynamic(cached, wanted, moment)
        return cached

    def cache_len(self) -> int:
        with self._lock:
            return len(self._cache)

    # -- internals ---------------------------------------------------------

    def _check_dynamic(self, claims: Claims, wanted: frozenset[str], now: int) -> None:
        """Checks that depend on the caller or the clock, so run on every hit."""
        if now >= claims.expires_at + self.leeway:
            raise InvalidToken("token expired")
        if now + self.leeway < claims.not_before:
            raise InvalidToken("token not yet valid")
        audience = claims.audience
        if (audience[:-1] if audience.endswith("/") else audience) not in wanted:  # _norm_audience, inline
            raise InvalidToken("audience mismatch")

    def _remember(self, token: str, claims: Claims, now: int) -> None:
        if self._cache_size == 0:
            return
        with self._lock:
            self._cache[token] = claims
            self._cache.move_to_end(token)
            # Tokens share a lifetime, so insertion order is close to expiry
            # order: dropping expired entries from the front, then the oldest,
            # keeps this O(1) amortised instead of scanning the whole cache.
            while self._cache:
                oldest_key, oldest = next(iter(self._cache.items()))
                expired = now >= oldest.expires_at + self.leeway
                if not expired and len(self._cache) <= self._cache_size:
                    break
                del self._cache[oldest_key]

    def _verify_uncached(self, token: str) -> Claims:
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed token")
        parts = token.split(".")
        if len(parts) != 3 or not all(_B64URL.match(p) for p in parts):
            raise InvalidToken("malformed token")
        header = _json_segment(parts[0])
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise InvalidToken("malformed token")
        if alg != ALGORITHM:
            raise InvalidToken(f"unsupported algorithm {alg!r}; only ES256 tokens are accepted")
        if "crit" in header or "b64" in header or "enc" in header:
            raise InvalidToken("malformed token")
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("unknown signing key")
        signature = _b64decode(parts[2])
        if len(signature) != 2 * _COORD_BYTES:
            raise InvalidToken("invalid signature")
        r = int.from_bytes(signature[:_COORD_BYTES], "big")
        s = int.from_bytes(signature[_COORD_BYTES:], "big")
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        try:
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise InvalidToken("invalid signature") from None
        return self._claims_from_payload(_json_segment(parts[1]))

    def _claims_from_payload(self, payload: dict[str, Any]) -> Claims:
        for name in _REQUIRED_CLAIMS:
            if name not in payload:
                raise InvalidToken(f"malformed token: missing claim {name!r}")
        strings = {k: payload[k] for k in ("aud", "iss", "tid", "oid", "appid")}
        if not all(isinstance(v, str) and v for v in strings.values()):
            raise InvalidToken("malformed token")
        times = {k: payload[k] for k in ("exp", "nbf", "iat")}
        if not all(_is_time(v) for v in times.values()):
            raise InvalidToken("malformed token: exp, nbf and iat must be seconds between 1970 and 9999")
        if strings["iss"] != self.issuer:
            raise InvalidToken("issuer mismatch")
        if strings["tid"] != self.tenant_id:
            raise InvalidToken("tenant mismatch")
        uti = payload.get("uti")
        return Claims(
            object_id=strings["oid"],
            app_id=strings["appid"],
            tenant_id=strings["tid"],
            audience=strings["aud"],
            issuer=strings["iss"],
            expires_at=int(times["exp"]),
            not_before=int(times["nbf"]),
            issued_at=int(times["iat"]),
            token_id=uti if isinstance(uti, str) else "",
        )


def jwks(public_keys: Mapping[str, KeyLike]) -> dict[str, Any]:
    """The JWKS document served at the openid-configuration ``jwks_uri``."""
    keys: list[dict[str, str]] = []
    for kid, key in public_keys.items():
        numbers = load_public_key(key).public_numbers()
        keys.append(
            {
                "kty": "EC",
                "crv": "P-256",
                "x": b64url_encode(numbers.x.to_bytes(_COORD_BYTES, "big")),
                "y": b64url_encode(numbers.y.to_bytes(_COORD_BYTES, "big")),
                "kid": kid,
                "use": "sig",
                "alg": ALGORITHM,
            }
        )
    return {"keys": keys}


def audience_from_scope(scope_or_resource: str) -> str:
    """Map an OAuth2 v2 scope (or a v1 resource) to the token audience.

    ``https://vault.azure.net/.default`` means "whatever this app may do on
    ``https://vault.azure.net``", so the audience is the resource part.
    """
    items = scope_or_resource.split()
    if not items:
        return ""
    chosen = next((s for s in items if s.endswith("/.default")), None)
    if chosen is None:
        chosen = next((s for s in items if s.lower() not in _OIDC_SCOPES), items[0])
    if chosen.endswith("/.default"):
        chosen = chosen[: -len("/.default")]
    return _norm_audience(chosen)


# --- helpers -----------------------------------------------------------------


def _parse_key_bytes(data: bytes) -> object:
    loaders = (
        serialization.load_der_public_key,
        serialization.load_pem_public_key,
    )
    for load_public in loaders:
        try:
            return load_public(data)
        except (ValueError, TypeError):
            pass
    for load_private in (serialization.load_der_private_key, serialization.load_pem_private_key):
        try:
            return load_private(data, None)
        except (ValueError, TypeError):
            pass
    raise ValueError("unrecognised key encoding")


# The last second .NET's DateTime (and so Entra ID) can express: 9999-12-31T23:59:59Z.
MAX_UNIX_TIME = 253402300799


def _is_time(value: object) -> bool:
    """A JSON number of epoch seconds in 0..MAX_UNIX_TIME (False for bool, NaN, infinities, huge ints)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 <= value <= MAX_UNIX_TIME  # NaN compares False


def _issuer_for(tenant_id: str) -> str:
    return f"https://sts.windows.net/{tenant_id}/"


@functools.lru_cache(maxsize=256)
def _wanted(audiences: frozenset[str]) -> frozenset[str]:
    """The accepted audiences, normalised (a host's set is the same object on every request: remembered)."""
    return frozenset(_norm_audience(a) for a in audiences)


def _norm_audience(audience: str) -> str:
    return audience[:-1] if audience.endswith("/") else audience


def _b64decode(segment: str) -> bytes:
    try:
        return b64url_decode(segment)
    except CryptoError:
        raise InvalidToken("malformed token") from None


def _json_segment(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment))
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("malformed token") from None
    if not isinstance(value, dict):
        raise InvalidToken("malformed token")
    return value

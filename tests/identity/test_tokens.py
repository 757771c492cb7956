from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kluis.identity.tokens import (
    Claims,
    InvalidToken,
    Principal,
    TokenIssuer,
    TokenVerifier,
    audience_from_scope,
    jwks,
    new_signing_key,
    public_key_der,
)

TENANT = "11111111-2222-3333-4444-555555555555"
KID = "k1"
AUD = "https://vault.azure.net"
NOW = 1_900_000_000
PRINCIPAL = Principal(object_id="oid-1", app_id="app-1", tenant_id=TENANT, display_name="ci")


@pytest.fixture(scope="module")
def key() -> bytes:
    return new_signing_key()


@pytest.fixture
def issuer(key: bytes) -> TokenIssuer:
    return TokenIssuer(key, tenant_id=TENANT, key_id=KID)


@pytest.fixture
def verifier(key: bytes) -> TokenVerifier:
    return TokenVerifier.from_signing_key(key, tenant_id=TENANT, key_id=KID)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    h, p, s = token.split(".")

    def load(x: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
        return value

    return load(h), load(p), s


def _reason(verifier: TokenVerifier, token: str, **kwargs: Any) -> str:
    kwargs.setdefault("audiences", [AUD])
    kwargs.setdefault("now", NOW)
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token, **kwargs)
    return info.value.reason


def test_round_trip(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, expires_on = issuer.issue(PRINCIPAL, audience=AUD, now=NOW)
    assert expires_on == NOW + 3600
    claims = verifier.verify(token, audiences=[AUD + "/"], now=NOW + 10)
    assert claims == Claims(
        object_id="oid-1",
        app_id="app-1",
        tenant_id=TENANT,
        audience=AUD,
        issuer=f"https://sts.windows.net/{TENANT}/",
        expires_at=NOW + 3600,
        not_before=NOW,
        issued_at=NOW,
        token_id=claims.token_id,
    )
    assert claims.token_id


def test_token_shape(issuer: TokenIssuer) -> None:
    token, _ = issuer.issue(PRINCIPAL, audience=AUD, lifetime=600, now=NOW)
    header, payload, _ = _segments(token)
    assert header == {"alg": "ES256", "kid": KID, "typ": "JWT"}
    assert payload["iss"] == issuer.issuer == f"https://sts.windows.net/{TENANT}/"
    assert payload["exp"] == NOW + 600 and payload["nbf"] == payload["iat"] == NOW
    assert payload["sub"] == payload["oid"] == "oid-1"
    assert payload["azp"] == payload["appid"] == "app-1"
    assert payload["tid"] == TENANT
    assert payload["ver"] == "1.0" and payload["idtyp"] == "app"
    assert payload["uti"] != _segments(issuer.issue(PRINCIPAL, audience=AUD, now=NOW)[0])[1]["uti"]


def test_expired_and_not_yet_valid(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, exp = issuer.issue(PRINCIPAL, audience=AUD, now=NOW)
    assert verifier.verify(token, audiences=[AUD], now=exp + 59)  # within leeway
    assert _reason(verifier, token, now=exp + 60) == "token expired"
    assert _reason(verifier, token, now=NOW - 61) == "token not yet valid"


def test_wrong_audience(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _ = issuer.issue(PRINCIPAL, audience="https://management.azure.com", now=NOW)
    assert _reason(verifier, token) == "audience mismatch"
    assert _reason(verifier, token, audiences=[]) == "audience mismatch"


def test_wrong_tenant(key: bytes, verifier: TokenVerifier) -> None:
    other = TokenIssuer(key, tenant_id="other-tenant", key_id=KID)
    token, _ = other.issue(PRINCIPAL, audience=AUD, now=NOW)
    assert _reason(verifier, token) == "issuer mismatch"


def test_tenant_claim_mismatch(key: bytes, verifier: TokenVerifier) -> None:
    private = serialization.load_der_private_key(key, None)
    payload = {
        "aud": AUD,
        "iss": f"https://sts.windows.net/{TENANT}/",
        "tid": "other",
        "oid": "o",
        "appid": "a",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 100,
    }
    token = jwt.encode(payload, private, algorithm="ES256", headers={"kid": KID})  # type: ignore[arg-type]
    assert _reason(verifier, token) == "tenant mismatch"
    del payload["oid"]
    token = jwt.encode(payload, private, algorithm="ES256", headers={"kid": KID})  # type: ignore[arg-type]
    assert _reason(verifier, token).startswith("malformed token")


def test_other_key_and_unknown_kid(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    other = TokenIssuer(new_signing_key(), tenant_id=TENANT, key_id=KID)
    token, _ = other.issue(PRINCIPAL, audience=AUD, now=NOW)
    assert _reason(verifier, token) == "invalid signature"
    stranger = TokenIssuer(new_signing_key(), tenant_id=TENANT, key_id="nope")
    token, _ = stranger.issue(PRINCIPAL, audience=AUD, now=NOW)
    assert _reason(verifier, token) == "unknown signing key"


def test_tampered(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _ = issuer.issue(PRINCIPAL, audience=AUD, now=NOW)
    h, p, s = token.split(".")
    flipped = s[:10] + ("A" if s[10] != "A" else "B") + s[11:]
    assert _reason(verifier, f"{h}.{p}.{flipped}") == "invalid signature"
    _, payload, _ = _segments(token)
    payload["oid"] = "admin"
    forged = f"{h}.{_b64(json.dumps(payload).encode())}.{s}"
    assert _reason(verifier, forged) == "invalid signature"


def test_alg_none(verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    token, _ = issuer.issue(PRINCIPAL, audience=AUD, now=NOW)
    _, p, _ = token.split(".")
    header = _b64(json.dumps({"alg": "none", "kid": KID, "typ": "JWT"}).encode())
    assert "unsupported algorithm" in _reason(verifier, f"{header}.{p}.")


def test_hs256_with_public_key(key: bytes, verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    public_pem = (
        serialization.load_der_private_key(key, None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    token, _ = issuer.issue(PRINCIPAL, audience=AUD, now=NOW)
    p = token.split(".")[1]
    header = _b64(json.dumps({"alg": "HS256", "kid": KID, "typ": "JWT"}).encode())
    sig = _b64(hmac.new(public_pem, f"{header}.{p}".encode(), hashlib.sha256).digest())
    assert "unsupported algorithm" in _reason(verifier, f"{header}.{p}.{sig}")


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "a.b", "a.b.c", "a.b.c.d", "!!.??.##", "e30.e30.", "W10.e30.AAAA", "x" * 20000],
)
def test_garbage(verifier: TokenVerifier, garbage: str) -> None:
    assert _reason(verifier, garbage) == "malformed token"


def test_cache_hit(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, exp = issuer.issue(PRINCIPAL, audience=AUD, now=NOW)
    first = verifier.verify(token, audiences=[AUD], now=NOW)
    assert verifier.cache_len() == 1
    second = verifier.verify(token, audiences=[AUD], now=NOW + 5)
    assert second is first
    assert verifier.cache_len() == 1
    # A hit must still apply the audience and the clock.
    assert _reason(verifier, token, audiences=["https://other"]) == "audience mismatch"
    assert _reason(verifier, token, now=exp + 3600) == "token expired"
    assert _reason(verifier, token, now=NOW - 3600) == "token not yet valid"
    assert verifier.verify(token, audiences=[AUD], now=NOW + 1) is first


def test_rejections_are_not_cached(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _ = issuer.issue(PRINCIPAL, audience=AUD, now=NOW)
    h, p, s = token.split(".")
    bad = f"{h}.{p}.{s[:-2]}AA"
    assert _reason(verifier, bad) == "invalid signature"
    assert _reason(verifier, bad) == "invalid signature"
    _reason(verifier, token, now=NOW + 7200)  # expired on first sight: not remembered
    assert verifier.cache_len() == 0


def test_cache_is_bounded(key: bytes, issuer: TokenIssuer) -> None:
    verifier = TokenVerifier({KID: key}, tenant_id=TENANT, cache_size=5)
    tokens = [issuer.issue(PRINCIPAL, audience=AUD, now=NOW)[0] for _ in range(12)]
    for t in tokens:
        verifier.verify(t, audiences=[AUD], now=NOW)
    assert verifier.cache_len() == 5
    # Entries that expired are evicted on the next insert.
    late, _ = issuer.issue(PRINCIPAL, audience=AUD, now=NOW + 7200)
    verifier.verify(late, audiences=[AUD], now=NOW + 7200)
    assert verifier.cache_len() == 1
    # Evicted tokens still verify (just uncached).
    assert verifier.verify(tokens[0], audiences=[AUD], now=NOW).object_id == "oid-1"


def test_verifier_accepts_key_forms(key: bytes, issuer: TokenIssuer) -> None:
    token, _ = issuer.issue(PRINCIPAL, audience=AUD, now=NOW)
    private = serialization.load_der_private_key(key, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    for form in (
        key,
        public_key_der(key),
        private.public_key(),
        private,
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    ):
        v = TokenVerifier({KID: form}, tenant_id=TENANT)
        assert v.verify(token, audiences=[AUD], now=NOW).tenant_id == TENANT
    with pytest.raises(ValueError):
        TokenVerifier({KID: b"not a key"}, tenant_id=TENANT)
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValueError):
        TokenVerifier({KID: p384}, tenant_id=TENANT)


def test_jwks_verifies_with_pyjwt(key: bytes, issuer: TokenIssuer) -> None:
    doc = jwks({KID: public_key_der(key)})
    (entry,) = doc["keys"]
    assert {k: entry[k] for k in ("kty", "crv", "kid", "use", "alg")} == {
        "kty": "EC",
        "crv": "P-256",
        "kid": KID,
        "use": "sig",
        "alg": "ES256",
    }
    token, _ = issuer.issue(PRINCIPAL, audience=AUD)
    public = jwt.PyJWK(entry).key
    decoded = jwt.decode(token, public, algorithms=["ES256"], audience=AUD)
    assert decoded["oid"] == "oid-1"


@pytest.mark.parametrize(
    ("scope", "audience"),
    [
        ("https://vault.azure.net/.default", "https://vault.azure.net"),
        ("https://localhost:8443/.default", "https://localhost:8443"),
        ("https://vault.azure.net//.default", "https://vault.azure.net"),
        ("https://vault.azure.net/", "https://vault.azure.net"),
        ("https://vault.azure.net", "https://vault.azure.net"),
        ("openid profile https://vault.azure.net/.default offline_access", "https://vault.azure.net"),
        ("openid https://a.example/", "https://a.example"),
        ("api://x y", "api://x"),
        ("", ""),
    ],
)
def test_audience_from_scope(scope: str, audience: str) -> None:
    assert audience_from_scope(scope) == audience

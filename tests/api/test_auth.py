"""Challenge authentication: no token or a bad one is a 401 with the challenge; a good one is the caller."""

from __future__ import annotations

import orjson
import pytest

from kluis.api.auth import authenticate, challenge
from kluis.api.hosts import HostResolver
from kluis.api.http import Response
from kluis.domain.authorization import Caller
from kluis.identity.tokens import Principal, TokenIssuer, TokenVerifier, new_signing_key

TENANT = "11111111-2222-3333-4444-555555555555"
NOW = 1_800_000_000
HOST = HostResolver().resolve("myvault.vault.azure.net")


@pytest.fixture(scope="module")
def keys() -> tuple[TokenIssuer, TokenVerifier]:
    key = new_signing_key()
    return (
        TokenIssuer(key, tenant_id=TENANT, key_id="kid1"),
        TokenVerifier.from_signing_key(key, tenant_id=TENANT, key_id="kid1"),
    )


def _token(issuer: TokenIssuer, audience: str = "https://vault.azure.net", now: int = NOW) -> str:
    return issuer.issue(Principal("oid-1", "app-1", TENANT), audience=audience, now=now)[0]


def _error(r: Response) -> dict[str, str]:
    error: dict[str, str] = orjson.loads(r.body)["error"]
    return error


def test_challenge_names_the_tenant_and_resource() -> None:
    r = challenge(HostResolver().resolve("v.localhost:8443"), TENANT, "no token")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="https://localhost:8443"'
    )
    assert _error(r) == {"code": "Unauthorized", "message": "no token"}
    assert _error(challenge(HOST, TENANT, "m", code="Other"))["code"] == "Other"


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer"])
def test_no_bearer_token_is_challenged(keys: tuple[TokenIssuer, TokenVerifier], header: str | None) -> None:
    r = authenticate(header, HOST, keys[1], TENANT, NOW)
    assert isinstance(r, Response) and r.status_code == 401
    assert _error(r)["message"].startswith("AKV10000")
    assert 'resource="https://vault.azure.net"' in r.headers["www-authenticate"]


def test_invalid_tokens_are_401(keys: tuple[TokenIssuer, TokenVerifier]) -> None:
    issuer, verifier = keys
    other = TokenIssuer(new_signing_key(), tenant_id=TENANT, key_id="kid1")
    for token, now in (
        ("not.a.token", NOW),
        (_token(other), NOW),  # signed by someone else
        (_token(issuer, audience="https://management.azure.com"), NOW),  # for another resource
        (_token(issuer), NOW + 2 * 3600),  # expired
    ):
        r = authenticate(f"Bearer {token}", HOST, verifier, TENANT, now)
        assert isinstance(r, Response) and r.status_code == 401, token
        assert _error(r)["message"].startswith("AKV10022: Invalid token:")


def test_a_valid_token_is_the_caller(keys: tuple[TokenIssuer, TokenVerifier]) -> None:
    issuer, verifier = keys
    caller = authenticate(f"bearer  {_token(issuer)} ", HOST, verifier, TENANT, NOW)  # scheme is case-insensitive
    assert caller == Caller(object_id="oid-1", app_id="app-1", tenant_id=TENANT)


def test_a_remembered_caller_never_skips_verification(keys: tuple[TokenIssuer, TokenVerifier]) -> None:
    issuer, verifier = keys
    token = _token(issuer)
    first = authenticate(f"Bearer {token}", HOST, verifier, TENANT, NOW)
    again = authenticate(f"Bearer {token}", HOST, verifier, TENANT, NOW + 1)
    assert isinstance(first, Caller) and again is first  # the same token's Caller, remembered
    expired = authenticate(f"Bearer {token}", HOST, verifier, TENANT, NOW + 2 * 3600)  # still checked every time
    assert isinstance(expired, Response) and expired.status_code == 401
    other = issuer.issue(Principal("oid-2", "app-2", TENANT), audience="https://vault.azure.net", now=NOW)[0]
    caller = authenticate(f"Bearer {other}", HOST, verifier, TENANT, NOW)
    assert caller == Caller(object_id="oid-2", app_id="app-2", tenant_id=TENANT)

"""Challenge authentication: every data-plane request needs a valid bearer token.

An unauthenticated request is answered 401 with the challenge *before its body is read*:
the SDKs first send each request with an empty body to learn where to get a token, and take
any other answer as final.
"""

from __future__ import annotations

from kluis.api.errors import json_response
from kluis.api.hosts import HostInfo
from kluis.api.http import Response
from kluis.domain.authorization import Caller
from kluis.identity.tokens import Claims, InvalidToken, TokenVerifier

__all__ = ["authenticate", "challenge"]

_CALLER_MEMO = 4096  # entries
# The Caller of each verified token's Claims object (the verifier's cache hands out the same Claims
# for the same token), by identity; an entry holds its Claims, so its id cannot be reused meanwhile.
_callers: dict[int, tuple[Claims, Caller]] = {}


def _caller(claims: Claims) -> Caller:
    """The Caller a token's claims name (remembered per Claims object: one fewer object per request)."""
    hit = _callers.get(id(claims))
    if hit is not None and hit[0] is claims:
        return hit[1]
    caller = Caller(object_id=claims.object_id, app_id=claims.app_id, tenant_id=claims.tenant_id)
    if len(_callers) >= _CALLER_MEMO:
        _callers.clear()
    _callers[id(claims)] = (claims, caller)
    return caller


def challenge(host: HostInfo, tenant_id: str, message: str, *, code: str = "Unauthorized") -> Response:
    header = f'Bearer authorization="https://login.microsoftonline.com/{tenant_id}", resource="{host.resource}"'
    return json_response({"error": {"code": code, "message": message}}, 401, headers={"www-authenticate": header})


def authenticate(
    authorization: str | None, host: HostInfo, verifier: TokenVerifier, tenant_id: str, now: int
) -> Caller | Response:
    """The verified caller, or the 401 response to send. The token is verified on every call (the
    verifier's cache of verified tokens re-checks expiry, not-before and audience on every hit)."""
    if not authorization or authorization[:7].lower() != "bearer ":  # not the whole 1 KB header lowered
        return challenge(host, tenant_id, "AKV10000: Request is missing a Bearer or PoP token.")
    token = authorization[7:].strip()
    try:
        claims: Claims = verifier.verify(token, audiences=host.audiences, now=now)
    except InvalidToken as e:
        return challenge(host, tenant_id, f"AKV10022: Invalid token: {e.reason}.")
    return _caller(claims)

"""kluis as its own token issuer: the endpoints azure-identity and MSAL call.

- OpenID configuration + client-credentials token endpoint, for ``/{tenant}/...`` (what MSAL uses
  for ``login.microsoftonline.com``, reached through the proxy) and ``/adfs/...`` (an ``adfs``
  tenant makes MSAL skip instance discovery, so ``AZURE_AUTHORITY_HOST`` can point straight at kluis).
- Instance discovery (``/common/discovery/instance``) for other authority hosts.
- The App Service managed-identity endpoint (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``).
Errors use Entra's OAuth shape (``error`` / ``error_description``), which MSAL reports verbatim.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

from kluis.api.context import RequestContext
from kluis.api.errors import json_response
from kluis.api.http import Request, Response
from kluis.api.routes import Auth, Route
from kluis.api.runtime import Runtime
from kluis.api.throttle import SignInGuard
from kluis.domain.model import PrincipalRecord
from kluis.identity.secrets import check_secret
from kluis.identity.tokens import Principal, audience_from_scope, jwks

__all__ = ["ROUTES"]

TOKEN_LIFETIME = 3600


def _oauth_error(status: int, error: str, code: int, description: str) -> Response:
    return json_response(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description}",
            "error_codes": [code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
        status,
    )


def _openid_configuration(base: str, tenant: str, runtime: Runtime, *, v2: bool) -> dict[str, Any]:
    """OpenID configuration as Entra publishes it, for the authority that was asked for.

    Entra names every endpoint under the tenant segment of the request: ``/organizations/v2.0/...``
    answers ``.../organizations/oauth2/v2.0/token``, a tenant id answers under that id. The v2.0
    document's ``issuer`` is ``https://<host>/<tenant id>/v2.0``, with the literal ``{tenantid}``
    for the multi-tenant names ``common`` / ``organizations``; the v1 document's is
    ``https://sts.windows.net/<tenant id>/``. Access tokens for the vault keep the v1 issuer either
    way: Key Vault's resource accepts v1 tokens, which is what Entra issues for it whichever
    endpoint was used. ``adfs`` is ADFS's shape (issuer ``.../adfs``, no v2.0 paths).
    """
    adfs = tenant == "adfs"
    root = f"{base}/{tenant}"
    if adfs:
        token, authorize, keys, issuer = (
            f"{root}/oauth2/token",
            f"{root}/oauth2/authorize",
            f"{root}/discovery/keys",
            root,
        )
    elif v2:
        multi = tenant.lower() in ("common", "organizations")
        token, authorize, keys = (
            f"{root}/oauth2/v2.0/token",
            f"{root}/oauth2/v2.0/authorize",
            f"{root}/discovery/v2.0/keys",
        )
        issuer = f"{base}/{{tenantid}}/v2.0" if multi else f"{base}/{runtime.tenant_id}/v2.0"
    else:
        token, authorize, keys = f"{root}/oauth2/token", f"{root}/oauth2/authorize", f"{root}/discovery/keys"
        issuer = runtime.issuer.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": authorize,
        "token_endpoint": token,
        "jwks_uri": keys,
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "response_types_supported": ["token"],
        # What kluis's token endpoint accepts (``_token``): the client-credentials grant only.
        "grant_types_supported": ["client_credentials"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["openid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
    }


def _known_tenant(tenant: str, runtime: Runtime) -> bool:
    return tenant.lower() in (runtime.tenant_id, "adfs", "organizations", "common")


async def _token(request: Request, runtime: Runtime, tenant: str, guard: SignInGuard | None = None) -> Response:
    """Client-credentials grant: client_id + client_secret (form or HTTP basic) for a scope/resource.

    Failed authentications are counted per (client id, client address) by ``guard``; past its free
    failures the answers to that pair are delayed (not refused), so a client signing in from another
    address is never locked out by someone guessing its secret."""
    if not _known_tenant(tenant, runtime):
        return _oauth_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
    raw = await request.body()  # bounded by the route's body limit (16 KiB) and timeout before any parsing
    form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    grant = form.get("grant_type", "")
    if grant != "client_credentials":
        return _oauth_error(
            400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'."
        )
    client_id = form.get("client_id", "")
    secret = form.get("client_secret", "")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic ") and not secret:
        try:
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return _oauth_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
    if not client_id:
        return _oauth_error(400, "invalid_request", 900144, "The request body must contain 'client_id'.")
    scope = form.get("scope") or form.get("resource") or ""
    if not scope:
        return _oauth_error(400, "invalid_scope", 1002012, "The provided value for scope is not valid.")
    if form.get("client_assertion"):
        return _oauth_error(
            400,
            "invalid_client",
            700027,
            "Client assertions are not supported by kluis; use a client secret.",
        )
    address = request.client  # the peer IP (kluis.api.app._peer)
    if guard is not None:
        wait = guard.delay(client_id, address)
        if wait > 0:
            await asyncio.sleep(wait)
    principal = runtime.management.principal_by_app_id(client_id)
    authenticated = principal is not None and bool(secret) and check_secret(secret, principal.secret_hash)
    if not authenticated and guard is not None:
        guard.failed(client_id, address)
    if principal is None:
        return _oauth_error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{runtime.tenant_id}'.",
        )
    if not authenticated:
        return _oauth_error(
            401,
            "invalid_client",
            7000215,
            f"Invalid client secret provided. Ensure the secret being sent in the request is the client "
            f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
        )
    token, audience, expires_on, expires_in = _issue(runtime, principal, scope)
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": token,
    }
    if "resource" in form and "scope" not in form:  # v1 shape
        body.update({"expires_on": str(expires_on), "resource": audience})
    return json_response(body)


def _issue(runtime: Runtime, principal: PrincipalRecord, scope: str) -> tuple[str, str, int, int]:
    """An access token for ``principal`` and the audience ``scope`` names: (token, audience, expires_on,
    expires_in). Tokens live on real time, not the server clock that ``kluis time set`` moves: time
    travel is for object lifecycles, and a token a client cached must stay valid while it thinks so."""
    audience = audience_from_scope(scope)
    now = int(time.time())
    token, expires_on = runtime.issuer.issue(
        Principal(principal.object_id, principal.app_id, runtime.tenant_id, principal.display_name),
        audience=audience,
        lifetime=TOKEN_LIFETIME,
        now=now,
    )
    return token, audience, expires_on, max(expires_on - now, 1)


async def _managed_identity(request: Request, runtime: Runtime) -> Response:
    """App Service managed identity (api-version 2019-08-01): ``X-IDENTITY-HEADER`` is the credential.

    kluis's identity header is ``<appId>:<secret>`` of a service principal, so the "managed
    identity" is a real principal with its own access policies.
    """
    q = request.query_params
    header = request.headers.get("x-identity-header") or request.headers.get("secret") or ""
    if q.get("api-version") not in ("2019-08-01", "2017-09-01"):
        return json_response({"statusCode": 400, "message": "api-version must be 2019-08-01."}, 400)
    resource = q.get("resource") or ""
    if not resource:
        return json_response({"statusCode": 400, "message": "The 'resource' query parameter is required."}, 400)
    app_id, _, secret = header.partition(":")
    principal = runtime.management.principal_by_app_id(app_id) if app_id else None
    if principal is None or not check_secret(secret, principal.secret_hash):
        return json_response({"statusCode": 401, "message": "The X-IDENTITY-HEADER is missing or invalid."}, 401)
    wanted = q.get("client_id") or q.get("clientid")
    if wanted and wanted not in (principal.app_id, principal.object_id):
        return json_response(
            {"statusCode": 400, "message": f"No managed identity with client_id '{wanted}' for this header."},
            400,
        )
    token, _, expires_on, expires_in = _issue(runtime, principal, resource)
    return json_response(
        {
            "access_token": token,
            "expires_on": str(expires_on),
            "expires_in": str(expires_in),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": principal.app_id,
        }
    )


def _discovery(base: str, runtime: Runtime, request: Request) -> Response:
    host = base.split("://", 1)[1]
    return json_response(
        {
            "tenant_discovery_endpoint": f"{base}/{runtime.tenant_id}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [
                {
                    "preferred_network": host,
                    "preferred_cache": host,
                    "aliases": [host, "login.microsoftonline.com", "login.windows.net"],
                }
            ],
        }
    )


def _openid(ctx: RequestContext, *, v2: bool) -> Response:
    tenant = ctx.params.get("tenant") or ""
    if not _known_tenant(tenant, ctx.runtime):
        return _oauth_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
    lowered = tenant.lower()
    # The tenant as asked for: common / organizations / adfs keep their name, the id its canonical form.
    named = lowered if lowered in ("adfs", "common", "organizations") else ctx.runtime.tenant_id
    return json_response(_openid_configuration(ctx.base, named, ctx.runtime, v2=v2 and named != "adfs"))


async def openid_configuration(ctx: RequestContext) -> Response:
    """GET /{tenant}/v2.0/.well-known/openid-configuration."""
    return _openid(ctx, v2=True)


async def openid_configuration_v1(ctx: RequestContext) -> Response:
    """GET /{tenant}/.well-known/openid-configuration (v1 endpoints; ADFS uses this path)."""
    return _openid(ctx, v2=False)


async def token(ctx: RequestContext) -> Response:
    return await _token(ctx.request, ctx.runtime, ctx.params.get("tenant") or "", ctx.sign_ins)


async def managed_identity(ctx: RequestContext) -> Response:
    return await _managed_identity(ctx.request, ctx.runtime)


async def discovery(ctx: RequestContext) -> Response:
    return _discovery(ctx.base, ctx.runtime, ctx.request)


async def signing_keys(ctx: RequestContext) -> Response:
    return json_response(jwks({ctx.runtime.key_id: ctx.runtime.signing_key_der}))


def _open(method: str, pattern: str, handler: Any, operation: str) -> Route:
    return Route(method, pattern, handler, operation, None, "identity", Auth.NONE)


# fmt: off
ROUTES: list[Route] = [
    _open("GET", "/msi/token", managed_identity, "ManagedIdentityToken"),
    _open("GET", "/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, "OpenIdConfiguration"),
    _open("GET", "/{tenant}/.well-known/openid-configuration", openid_configuration_v1, "OpenIdConfiguration"),
    _open("POST", "/{tenant}/oauth2/v2.0/token", token, "Token"),
    _open("POST", "/{tenant}/oauth2/token", token, "Token"),
    _open("GET", "/{tenant}/discovery/instance", discovery, "InstanceDiscovery"),
    _open("GET", "/{tenant}/discovery/v2.0/keys", signing_keys, "Keys"),
    _open("GET", "/{tenant}/discovery/keys", signing_keys, "Keys"),
]
# fmt: on

"""Secrets data plane: one handler per Azure operation, and the route-table rows that reach them.

Handlers translate wire <-> domain only. By the time one runs, the dispatcher has verified the
token, resolved the vault and asked the authorization point for the row's permission
(``SecretPermission``); the domain (``kluis.domain.secrets`` on the shared lifecycle) decides
existence, state and limits.
"""

from __future__ import annotations

from kluis.api.context import RequestContext
from kluis.api.errors import encoded_response, json_response
from kluis.api.http import Response
from kluis.api.lifecycle import Family, lifecycle_routes
from kluis.api.routes import Route
from kluis.api.wire import (
    EncodedBundles,
    secret_bundle,
    secret_changes,
    secret_item,
)
from kluis.domain.authorization import SecretPermission as P
from kluis.domain.errors import BadParameter

__all__ = ["ROUTES", "SECRETS"]

SECRETS = Family("Secret", "secret", "secrets", secret_bundle, secret_item, P)  # bundles: no value
_BUNDLES = EncodedBundles(secret_bundle)  # get secret's answers without the value, while unchanged


async def set_secret(ctx: RequestContext) -> Response:
    """SetSecret, PUT /secrets/{name}: a new version each time; answers the value."""
    body = await ctx.body()
    if "value" not in body or body["value"] is None:
        raise BadParameter("The 'value' property (the secret's value, a string) is required.")
    secret = ctx.runtime.secrets.set_secret(ctx.vault, ctx.name, body["value"], secret_changes(body))
    ctx.written_version = secret.view.version
    return json_response(secret_bundle(ctx.base, secret.view, secret.value))


async def get_secret(ctx: RequestContext) -> Response:
    """GetSecret, GET /secrets/{name}/{version?}: the value and attributes."""
    secret = ctx.runtime.secrets.get_secret(ctx.vault, ctx.name, ctx.version)
    return encoded_response(_BUNDLES.with_value(secret.value, _BUNDLES.encode(ctx.base, secret.view)))


async def update_secret(ctx: RequestContext) -> Response:
    """UpdateSecret, PATCH /secrets/{name}/{version?}: attributes, tags, contentType; no value."""
    body = await ctx.body()
    view = ctx.runtime.secrets.update_secret(ctx.vault, ctx.name, ctx.version, secret_changes(body))
    ctx.written_version = view.version  # without {version} in the path: the latest, which it names
    return json_response(secret_bundle(ctx.base, view))


# fmt: off
ROUTES: list[Route] = [
    *lifecycle_routes(SECRETS),
    Route("PUT", "/secrets/{name}/", set_secret, "SetSecret", P.SET, "secret"),
    Route("GET", "/secrets/{name}/{version?}", get_secret, "GetSecret", P.GET, "secret"),
    Route("PATCH", "/secrets/{name}/{version?}", update_secret, "UpdateSecret", P.SET, "secret"),
]
# fmt: on

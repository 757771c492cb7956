"""Secrets data plane: one handler per Azure operation, and the route-table rows that reach them.

Handlers translate wire <-> domain only. By the time one runs, the dispatcher has verified the
token, resolved the vault and asked the authorization point for the row's permission
(``SecretPermission``); the domain (``kluis.domain.secrets`` on the shared lifecycle) decides
existence, state and limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kluis.api.context import RequestContext
from kluis.api.errors import json_response
from kluis.api.http import Response
from kluis.api.routes import Route
from kluis.api.wire import (
    b64,
    b64_field,
    deleted_secret_bundle,
    page_body,
    secret_bundle,
    secret_changes,
    secret_item,
)
from kluis.domain.authorization import SecretPermission as P
from kluis.domain.errors import BadParameter
from kluis.domain.views import ObjectView, Page

__all__ = ["ROUTES"]


async def set_secret(ctx: RequestContext) -> Response:
    """SetSecret, PUT /secrets/{name}: a new version each time; answers the value."""
    body = await ctx.body()
    if "value" not in body or body["value"] is None:
        raise BadParameter("The 'value' property (the secret's value, a string) is required.")
    secret = ctx.runtime.secrets.set_secret(ctx.vault, ctx.name, body["value"], secret_changes(body))
    return json_response(secret_bundle(ctx.base, secret.view, secret.value))


async def get_secret(ctx: RequestContext) -> Response:
    """GetSecret, GET /secrets/{name}/{version?}: the value and attributes."""
    secret = ctx.runtime.secrets.get_secret(ctx.vault, ctx.name, ctx.version)
    return json_response(secret_bundle(ctx.base, secret.view, secret.value))


async def update_secret(ctx: RequestContext) -> Response:
    """UpdateSecret, PATCH /secrets/{name}/{version?}: attributes, tags, contentType; no value."""
    body = await ctx.body()
    view = ctx.runtime.secrets.update_secret(ctx.vault, ctx.name, ctx.version, secret_changes(body))
    return json_response(secret_bundle(ctx.base, view))


async def delete_secret(ctx: RequestContext) -> Response:
    """DeleteSecret, DELETE /secrets/{name}: soft delete; a DeletedSecretBundle without the value."""
    view = ctx.runtime.secrets.lifecycle.delete(ctx.vault, ctx.name)
    return json_response(deleted_secret_bundle(ctx.base, view))


async def _list(
    ctx: RequestContext,
    path: str,
    fetch: Callable[[int | None, str | None], Page[ObjectView]],
    item: Callable[[ObjectView], dict[str, Any]],
) -> Response:
    maxresults = ctx.query_int("maxresults")
    page = fetch(maxresults, ctx.request.query_params.get("$skiptoken"))
    return json_response(page_body([item(v) for v in page.items], page, ctx.next_link(path, page, maxresults)))


async def list_secrets(ctx: RequestContext) -> Response:
    """GetSecrets, GET /secrets: versionless ids, no values."""
    life = ctx.runtime.secrets.lifecycle
    return await _list(
        ctx,
        "/secrets",
        lambda m, t: life.list(ctx.vault, deleted=False, maxresults=m, token=t),
        lambda v: secret_item(ctx.base, v, versioned=False),
    )


async def list_versions(ctx: RequestContext) -> Response:
    """GetSecretVersions, GET /secrets/{name}/versions: an empty page for a name that never existed."""
    life = ctx.runtime.secrets.lifecycle
    return await _list(
        ctx,
        f"/secrets/{ctx.name}/versions",
        lambda m, t: life.list_versions(ctx.vault, ctx.name, maxresults=m, token=t),
        lambda v: secret_item(ctx.base, v, versioned=True),
    )


async def list_deleted(ctx: RequestContext) -> Response:
    """GetDeletedSecrets, GET /deletedsecrets."""
    life = ctx.runtime.secrets.lifecycle
    return await _list(
        ctx,
        "/deletedsecrets",
        lambda m, t: life.list(ctx.vault, deleted=True, maxresults=m, token=t),
        lambda v: secret_item(ctx.base, v, versioned=False),
    )


async def get_deleted(ctx: RequestContext) -> Response:
    """GetDeletedSecret, GET /deletedsecrets/{name}."""
    view = ctx.runtime.secrets.lifecycle.get_deleted(ctx.vault, ctx.name)
    return json_response(deleted_secret_bundle(ctx.base, view))


async def purge_deleted(ctx: RequestContext) -> Response:
    """PurgeDeletedSecret, DELETE /deletedsecrets/{name}: 204, no body."""
    ctx.runtime.secrets.lifecycle.purge(ctx.vault, ctx.name)
    return Response(status_code=204)


async def recover_deleted(ctx: RequestContext) -> Response:
    """RecoverDeletedSecret, POST /deletedsecrets/{name}/recover: the latest version, no value."""
    return json_response(secret_bundle(ctx.base, ctx.runtime.secrets.lifecycle.recover(ctx.vault, ctx.name)))


async def backup_secret(ctx: RequestContext) -> Response:
    """BackupSecret, POST /secrets/{name}/backup."""
    return json_response({"value": b64(ctx.runtime.secret_backup.backup(ctx.vault, ctx.name))})


async def restore_secret(ctx: RequestContext) -> Response:
    """RestoreSecret, POST /secrets/restore: Conflict when the name is in use."""
    body = await ctx.body()
    blob = b64_field(body, "value", required=True) or b""
    return json_response(secret_bundle(ctx.base, ctx.runtime.secret_backup.restore(ctx.vault, blob)))


# fmt: off
ROUTES: list[Route] = [
    Route("GET", "/secrets/", list_secrets, "GetSecrets", P.LIST, "secret"),
    Route("POST", "/secrets/restore", restore_secret, "RestoreSecret", P.RESTORE, "secret"),
    Route("PUT", "/secrets/{name}/", set_secret, "SetSecret", P.SET, "secret"),
    Route("GET", "/secrets/{name}/{version?}", get_secret, "GetSecret", P.GET, "secret"),
    Route("PATCH", "/secrets/{name}/{version?}", update_secret, "UpdateSecret", P.SET, "secret"),
    Route("DELETE", "/secrets/{name}/", delete_secret, "DeleteSecret", P.DELETE, "secret"),
    Route("POST", "/secrets/{name}/backup", backup_secret, "BackupSecret", P.BACKUP, "secret"),
    Route("GET", "/secrets/{name}/versions", list_versions, "GetSecretVersions", P.LIST, "secret"),
    Route("GET", "/deletedsecrets/", list_deleted, "GetDeletedSecrets", P.LIST, "secret"),
    Route("GET", "/deletedsecrets/{name}/", get_deleted, "GetDeletedSecret", P.GET, "secret"),
    Route("DELETE", "/deletedsecrets/{name}/", purge_deleted, "PurgeDeletedSecret", P.PURGE, "secret"),
    Route("POST", "/deletedsecrets/{name}/recover", recover_deleted, "RecoverDeletedSecret", P.RECOVER, "secret"),
]
# fmt: on

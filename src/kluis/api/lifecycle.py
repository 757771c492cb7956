"""The lifecycle operations every object kind answers the same way, written once for the wire.

List, list versions, list deleted, get deleted, delete, purge, recover, backup and restore only
differ between keys and secrets in names, permissions and the bundle shape. A family describes
those in a ``Family`` and gets its handlers and route-table rows from ``lifecycle_routes``; its
own module keeps only what is its own (create, import, crypto for keys; set and get for secrets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kluis.api.context import RequestContext
from kluis.api.errors import json_response
from kluis.api.http import Response
from kluis.api.routes import RESTORE_BODY_LIMIT, Handler, Route
from kluis.api.runtime import Runtime
from kluis.api.wire import b64, b64_field, deleted_fields, page_body
from kluis.domain.authorization import KeyPermission, SecretPermission
from kluis.domain.backup import ObjectBackup
from kluis.domain.lifecycle import Lifecycle
from kluis.domain.views import ObjectView, Page

__all__ = ["Family", "lifecycle_routes"]

Bundle = Callable[[str, ObjectView], dict[str, Any]]
Item = Callable[[str, ObjectView, bool], dict[str, Any]]


@dataclass(frozen=True)
class Family:
    """What differs between kinds: ``title`` for operation names ("Key": GetKeys, DeleteKey ...),
    ``kind`` ("key": the runtime's lifecycle and backup of that kind), the collection ("keys") and
    its deleted twin ("deletedkeys"), how a version and a list item look on the wire, and the
    kind's permission enum."""

    title: str
    kind: str
    collection: str
    bundle: Bundle  # a version as GET answers it, without secret material
    item: Item  # (base, view, versioned) -> a list item
    permissions: type[KeyPermission] | type[SecretPermission]

    @property
    def deleted_collection(self) -> str:
        return f"deleted{self.collection}"

    def lifecycle(self, runtime: Runtime) -> Lifecycle:
        return runtime.lifecycles[self.kind]

    def backup(self, runtime: Runtime) -> ObjectBackup:
        return runtime.backups[self.kind]


Fetch = Callable[[Lifecycle, RequestContext, int | None, str | None], Page[ObjectView]]


def _lister(f: Family, fetch: Fetch, path: Callable[[str], str], *, versioned: bool) -> Handler:
    """A list handler: ``fetch(lifecycle, ctx, maxresults, $skiptoken)`` gives the page, ``path(stored
    name)`` the nextLink's path (ids use the stored casing, never the request's)."""

    async def handler(ctx: RequestContext) -> Response:
        maxresults = ctx.query_int("maxresults")
        page = fetch(f.lifecycle(ctx.runtime), ctx, maxresults, ctx.request.query_params.get("$skiptoken"))
        items = [f.item(ctx.base, v, versioned) for v in page.items]
        name = page.items[0].name if page.items else ctx.name
        return json_response(page_body(items, page, ctx.next_link(path(name), page, maxresults)))

    return handler


def _handlers(f: Family) -> dict[str, Handler]:
    # Get<Kind>s, Get<Kind>Versions (an empty page for a name that never existed), GetDeleted<Kind>s
    list_objects = _lister(f, lambda life, c, m, t: life.list(c.vault, deleted=False, maxresults=m, token=t),
                           lambda _: f"/{f.collection}", versioned=False)  # fmt: skip
    list_versions = _lister(f, lambda life, c, m, t: life.list_versions(c.vault, c.name, maxresults=m, token=t),
                            lambda name: f"/{f.collection}/{name}/versions", versioned=True)  # fmt: skip
    list_deleted = _lister(f, lambda life, c, m, t: life.list(c.vault, deleted=True, maxresults=m, token=t),
                           lambda _: f"/{f.deleted_collection}", versioned=False)  # fmt: skip

    async def get_deleted(ctx: RequestContext) -> Response:
        """GetDeleted<Kind>, GET /deleted<collection>/{name}."""
        view = f.lifecycle(ctx.runtime).get_deleted(ctx.vault, ctx.name)
        return json_response(deleted_fields(ctx.base, view, f.bundle(ctx.base, view)))

    async def delete(ctx: RequestContext) -> Response:
        """Delete<Kind>, DELETE /<collection>/{name}: soft delete, answers the deleted bundle."""
        view = f.lifecycle(ctx.runtime).delete(ctx.vault, ctx.name)
        return json_response(deleted_fields(ctx.base, view, f.bundle(ctx.base, view)))

    async def purge(ctx: RequestContext) -> Response:
        """PurgeDeleted<Kind>, DELETE /deleted<collection>/{name}: 204, no body."""
        f.lifecycle(ctx.runtime).purge(ctx.vault, ctx.name)
        return Response(status_code=204)

    async def recover(ctx: RequestContext) -> Response:
        """RecoverDeleted<Kind>, POST /deleted<collection>/{name}/recover: the latest version."""
        view = f.lifecycle(ctx.runtime).recover(ctx.vault, ctx.name)
        ctx.written_version = view.version
        return json_response(f.bundle(ctx.base, view))

    async def backup(ctx: RequestContext) -> Response:
        """Backup<Kind>, POST /<collection>/{name}/backup: an opaque, sealed blob."""
        return json_response({"value": b64(f.backup(ctx.runtime).backup(ctx.vault, ctx.name))})

    async def restore(ctx: RequestContext) -> Response:
        """Restore<Kind>, POST /<collection>/restore: Conflict when the name is in use."""
        blob = b64_field(await ctx.body(), "value", required=True) or b""
        view = f.backup(ctx.runtime).restore(ctx.vault, blob)
        ctx.written_name, ctx.written_version = view.name, view.version  # the route names neither
        return json_response(f.bundle(ctx.base, view))

    return {
        "list": list_objects, "versions": list_versions, "deleted": list_deleted, "get_deleted": get_deleted,
        "delete": delete, "purge": purge, "recover": recover, "backup": backup, "restore": restore,
    }  # fmt: skip


def lifecycle_routes(f: Family) -> list[Route]:
    """The rows of the shared lifecycle operations for one family."""
    h, p, t, c, d = _handlers(f), f.permissions, f.title, f.collection, f.deleted_collection
    restore_limit = RESTORE_BODY_LIMIT  # a backup blob of up to 500 versions
    # fmt: off
    return [
        Route("GET", f"/{c}/", h["list"], f"Get{t}s", p("list"), f.kind),
        Route("GET", f"/{c}/{{name}}/versions", h["versions"], f"Get{t}Versions", p("list"), f.kind),
        Route("DELETE", f"/{c}/{{name}}/", h["delete"], f"Delete{t}", p("delete"), f.kind),
        Route("POST", f"/{c}/{{name}}/backup", h["backup"], f"Backup{t}", p("backup"), f.kind),
        Route("POST", f"/{c}/restore", h["restore"], f"Restore{t}", p("restore"), f.kind, body_limit=restore_limit),
        Route("GET", f"/{d}/", h["deleted"], f"GetDeleted{t}s", p("list"), f.kind),
        Route("GET", f"/{d}/{{name}}/", h["get_deleted"], f"GetDeleted{t}", p("get"), f.kind),
        Route("DELETE", f"/{d}/{{name}}/", h["purge"], f"PurgeDeleted{t}", p("purge"), f.kind),
        Route("POST", f"/{d}/{{name}}/recover", h["recover"], f"RecoverDeleted{t}", p("recover"), f.kind),
    ]
    # fmt: on

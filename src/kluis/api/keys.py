"""Keys data plane: one handler per Azure operation, routed from ``/keys`` and ``/deletedkeys``.

Handlers translate wire <-> domain only; the domain checks permissions, existence and state.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from kluis.api.errors import HttpError, json_response
from kluis.api.hosts import HostInfo
from kluis.api.http import Request, Response
from kluis.api.runtime import Runtime
from kluis.api.wire import (
    b64,
    b64_field,
    changes_from_body,
    deleted_bundle,
    int_field,
    key_bundle,
    key_item,
    page_body,
    str_field,
)
from kluis.domain.errors import BadParameter
from kluis.domain.permissions import Caller
from kluis.domain.views import KeyView, Page
from kluis.identity.jws import sign_jws
from kluis.store import VaultRecord

__all__ = ["MAX_BODY", "RequestContext", "route_deleted_keys", "route_keys", "route_rng"]

MAX_BODY = 1024 * 1024


@dataclass
class RequestContext:
    runtime: Runtime
    request: Request
    host: HostInfo
    vault: VaultRecord
    caller: Caller
    api_version: str

    @property
    def base(self) -> str:
        return self.host.base_url

    async def body(self) -> dict[str, Any]:
        length = self.request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            raise HttpError(413, "BadParameter", f"The request body is larger than {MAX_BODY} bytes.")
        raw = await self.request.body()
        if len(raw) > MAX_BODY:
            raise HttpError(413, "BadParameter", f"The request body is larger than {MAX_BODY} bytes.")
        if not raw.strip():
            raise BadParameter("The request body is missing; this operation needs a JSON object.")
        try:
            body = orjson.loads(raw)
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            raise BadParameter("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise BadParameter("The request body must be a JSON object.")
        return body

    def query_int(self, name: str) -> int | None:
        raw = self.request.query_params.get(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise BadParameter(f"The '{name}' query parameter must be an integer.") from None

    def next_link(self, path: str, page: Page[Any], maxresults: int | None) -> str | None:
        if page.next_token is None:
            return None
        query: dict[str, str] = {"api-version": self.api_version, "$skiptoken": page.next_token}
        if maxresults is not None:
            query["maxresults"] = str(maxresults)
        return f"{self.base}{path}?{urlencode(query)}"


Handler = Callable[[RequestContext, list[str]], Awaitable[Response]]


# -- handlers -----------------------------------------------------------------------------------
async def create_key(ctx: RequestContext, name: str) -> Response:
    """CreateKey, POST /keys/{name}/create (keys/create)."""
    body = await ctx.body()
    view = ctx.runtime.keys.create_key(
        ctx.vault,
        ctx.caller,
        name,
        kty=str_field(body, "kty", required=True) or "",
        size=int_field(body, "key_size"),
        curve=str_field(body, "crv"),
        public_exponent=int_field(body, "public_exponent"),
        changes=changes_from_body(body),
    )
    return json_response(key_bundle(ctx.base, view))


async def import_key(ctx: RequestContext, name: str) -> Response:
    """ImportKey, PUT /keys/{name} (keys/import)."""
    body = await ctx.body()
    jwk = body.get("key")
    if not isinstance(jwk, dict):
        raise BadParameter("The 'key' property (a JSON Web Key) is required.")
    hsm = body.get("Hsm", body.get("hsm"))
    if hsm is not None and not isinstance(hsm, bool):
        raise BadParameter("The 'Hsm' property must be true or false.")
    view = ctx.runtime.keys.import_key(ctx.vault, ctx.caller, name, jwk, hsm=hsm, changes=changes_from_body(body))
    return json_response(key_bundle(ctx.base, view))


async def get_key(ctx: RequestContext, name: str, version: str | None) -> Response:
    """GetKey, GET /keys/{name}/{version?} (keys/get)."""
    return json_response(key_bundle(ctx.base, ctx.runtime.keys.get_key(ctx.vault, ctx.caller, name, version)))


async def update_key(ctx: RequestContext, name: str, version: str | None) -> Response:
    """UpdateKey, PATCH /keys/{name}/{version?} (keys/update)."""
    body = await ctx.body()
    view = ctx.runtime.keys.update_key(ctx.vault, ctx.caller, name, version, changes_from_body(body))
    return json_response(key_bundle(ctx.base, view))


async def delete_key(ctx: RequestContext, name: str) -> Response:
    """DeleteKey, DELETE /keys/{name} (keys/delete)."""
    return json_response(deleted_bundle(ctx.base, ctx.runtime.keys.delete_key(ctx.vault, ctx.caller, name)))


async def _list(
    ctx: RequestContext,
    path: str,
    fetch: Callable[[int | None, str | None], Page[KeyView]],
    item: Callable[[KeyView], dict[str, Any]],
) -> Response:
    maxresults = ctx.query_int("maxresults")
    page = fetch(maxresults, ctx.request.query_params.get("$skiptoken"))
    return json_response(page_body([item(v) for v in page.items], page, ctx.next_link(path, page, maxresults)))


async def list_keys(ctx: RequestContext) -> Response:
    """GetKeys, GET /keys (keys/list): versionless ids."""
    return await _list(
        ctx,
        "/keys",
        lambda m, t: ctx.runtime.keys.list_keys(ctx.vault, ctx.caller, maxresults=m, token=t),
        lambda v: key_item(ctx.base, v, versioned=False),
    )


async def list_versions(ctx: RequestContext, name: str) -> Response:
    """GetKeyVersions, GET /keys/{name}/versions (keys/list)."""
    return await _list(
        ctx,
        f"/keys/{name}/versions",
        lambda m, t: ctx.runtime.keys.list_versions(ctx.vault, ctx.caller, name, maxresults=m, token=t),
        lambda v: key_item(ctx.base, v, versioned=True),
    )


async def list_deleted(ctx: RequestContext) -> Response:
    """GetDeletedKeys, GET /deletedkeys (keys/list)."""
    return await _list(
        ctx,
        "/deletedkeys",
        lambda m, t: ctx.runtime.keys.list_deleted_keys(ctx.vault, ctx.caller, maxresults=m, token=t),
        lambda v: key_item(ctx.base, v, versioned=False),
    )


async def backup_key(ctx: RequestContext, name: str) -> Response:
    """BackupKey, POST /keys/{name}/backup (keys/backup)."""
    return json_response({"value": b64(ctx.runtime.backup.backup(ctx.vault, ctx.caller, name))})


async def restore_key(ctx: RequestContext) -> Response:
    """RestoreKey, POST /keys/restore (keys/restore)."""
    body = await ctx.body()
    blob = b64_field(body, "value", required=True) or b""
    return json_response(key_bundle(ctx.base, ctx.runtime.backup.restore(ctx.vault, ctx.caller, blob)))


async def rotate_key(ctx: RequestContext, name: str) -> Response:
    """RotateKey, POST /keys/{name}/rotate (keys/rotate)."""
    return json_response(key_bundle(ctx.base, ctx.runtime.keys.rotate_key(ctx.vault, ctx.caller, name)))


async def rotation_policy(ctx: RequestContext, name: str, method: str) -> Response:
    """Get/UpdateKeyRotationPolicy, GET|PUT /keys/{name}/rotationpolicy."""
    if method == "PUT":
        doc = ctx.runtime.keys.update_rotation_policy(ctx.vault, ctx.caller, name, await ctx.body())
    else:
        doc = ctx.runtime.keys.get_rotation_policy(ctx.vault, ctx.caller, name)
    key_name = name
    return json_response({"id": f"{ctx.base}/keys/{key_name}/rotationpolicy", **doc})


async def key_operation(ctx: RequestContext, name: str, version: str | None, op: str) -> Response:
    """encrypt / decrypt / wrapkey / unwrapkey / sign / verify, POST /keys/{name}/{version}/{op}."""
    body = await ctx.body()
    alg = str_field(body, "alg", required=True) or ""
    ops = ctx.runtime.key_operations
    if op == "sign":
        res = ops.sign(ctx.vault, ctx.caller, name, version, alg, b64_field(body, "value", required=True) or b"")
        return json_response({"kid": f"{ctx.base}/keys/{res.name}/{res.version}", "value": b64(res.value)})
    if op == "verify":
        ok = ops.verify(
            ctx.vault,
            ctx.caller,
            name,
            version,
            alg,
            b64_field(body, "digest", required=True) or b"",
            b64_field(body, "value", required=True) or b"",
        )
        return json_response({"value": ok})
    value = b64_field(body, "value", required=True) or b""
    iv, aad = b64_field(body, "iv"), b64_field(body, "aad")
    if op in ("encrypt", "wrapkey"):
        res = ops.encrypt(ctx.vault, ctx.caller, name, version, alg, value, iv=iv, aad=aad, wrap=op == "wrapkey")
    else:
        res = ops.decrypt(
            ctx.vault, ctx.caller, name, version, alg, value,
            iv=iv, aad=aad, tag=b64_field(body, "tag"), unwrap=op == "unwrapkey",
        )  # fmt: skip
    out: dict[str, Any] = {"kid": f"{ctx.base}/keys/{res.name}/{res.version}", "value": b64(res.value)}
    for field_name in ("iv", "tag", "aad"):
        data = getattr(res, field_name)
        if data:
            out[field_name] = b64(data)
    return json_response(out)


async def release_key(ctx: RequestContext, name: str, version: str | None) -> Response:
    """release, POST /keys/{name}/{version}/release (keys/release): the key, wrapped for an attested TEE.

    The answer is a JWS signed with kluis's token-signing key (verifiable with the tenant's JWKS),
    whose payload carries the key bundle with the wrapped private key in ``key_hsm``.
    """
    body = await ctx.body()
    nonce = str_field(body, "nonce")
    res = ctx.runtime.release.release(ctx.vault, ctx.caller, name, version, body.get("target"), str_field(body, "enc"))
    bundle = key_bundle(ctx.base, res.view)
    transfer = {
        "schema_version": "1.0",
        "header": {"kid": bundle["key"]["kid"], "alg": "dir", "enc": res.enc},
        "ciphertext": b64(res.wrapped),
        "generator": "kluis",
    }
    bundle["key"]["key_hsm"] = b64(json.dumps(transfer, separators=(",", ":")).encode())
    payload = {
        "request": {"api-version": ctx.api_version, "enc": res.enc, "kid": bundle["key"]["kid"], "nonce": nonce},
        "response": {"key": bundle},
    }
    return json_response({"value": sign_jws(ctx.runtime.signing_key_der, ctx.runtime.key_id, payload)})


_CRYPTO_OPS = frozenset({"encrypt", "decrypt", "wrapkey", "unwrapkey", "sign", "verify"})


def _not_allowed(method: str) -> HttpError:
    return HttpError(405, "MethodNotAllowed", f"The {method} method is not allowed on this path.")


async def route_keys(ctx: RequestContext, method: str, segs: list[str]) -> Response:
    """``segs`` are the path segments after ``/keys``; an empty version segment means latest."""
    if not segs or segs == [""]:
        if method == "GET":
            return await list_keys(ctx)
        raise _not_allowed(method)
    name = segs[0]
    if len(segs) == 1 and name.lower() == "restore" and method == "POST":
        return await restore_key(ctx)
    if len(segs) == 1 or (len(segs) == 2 and segs[1] == ""):
        if method == "GET":
            return await get_key(ctx, name, None)
        if method == "PUT":
            return await import_key(ctx, name)
        if method == "DELETE":
            return await delete_key(ctx, name)
        if method == "PATCH":
            return await update_key(ctx, name, None)
        raise _not_allowed(method)
    second = segs[1].lower()
    if len(segs) == 2:
        if method == "POST":
            if second == "create":
                return await create_key(ctx, name)
            if second == "backup":
                return await backup_key(ctx, name)
            if second == "rotate":
                return await rotate_key(ctx, name)
        if second == "rotationpolicy" and method in ("GET", "PUT"):
            return await rotation_policy(ctx, name, method)
        if second == "versions" and method == "GET":
            return await list_versions(ctx, name)
        if method == "GET":
            return await get_key(ctx, name, segs[1])
        if method == "PATCH":
            return await update_key(ctx, name, segs[1])
        raise _not_allowed(method)
    if len(segs) == 3:
        op = segs[2].lower()
        if op in _CRYPTO_OPS:
            if method != "POST":
                raise _not_allowed(method)
            return await key_operation(ctx, name, segs[1] or None, op)
        if op == "attestation" and method == "GET":
            return await get_key(ctx, name, segs[1] or None)
        if op == "release":
            if method != "POST":
                raise _not_allowed(method)
            return await release_key(ctx, name, segs[1] or None)
    raise HttpError(404, "NotFound", "The requested path does not exist on this vault.")


async def route_deleted_keys(ctx: RequestContext, method: str, segs: list[str]) -> Response:
    keys = ctx.runtime.keys
    if not segs or segs == [""]:
        if method == "GET":
            return await list_deleted(ctx)
        raise _not_allowed(method)
    name = segs[0]
    if len(segs) == 1 or (len(segs) == 2 and segs[1] == ""):
        if method == "GET":
            return json_response(deleted_bundle(ctx.base, keys.get_deleted_key(ctx.vault, ctx.caller, name)))
        if method == "DELETE":
            keys.purge_deleted_key(ctx.vault, ctx.caller, name)
            return Response(status_code=204)
        raise _not_allowed(method)
    if len(segs) == 2 and segs[1].lower() == "recover":
        if method == "POST":
            return json_response(key_bundle(ctx.base, keys.recover_deleted_key(ctx.vault, ctx.caller, name)))
        raise _not_allowed(method)
    raise HttpError(404, "NotFound", "The requested path does not exist on this vault.")


async def route_rng(ctx: RequestContext, method: str, segs: list[str]) -> Response:
    """GetRandomBytes, POST /rng."""
    if method != "POST":
        raise _not_allowed(method)
    body = await ctx.body()
    data = ctx.runtime.key_operations.random_bytes(ctx.vault, ctx.caller, body.get("count"))
    return json_response({"value": b64(data)})

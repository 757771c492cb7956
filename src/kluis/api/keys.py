"""Keys data plane: one handler per Azure operation, and the route-table rows that reach them.

Handlers translate wire <-> domain only. By the time one runs, the dispatcher has verified the
token, resolved the vault and asked the authorization point for the row's permission; the domain
decides existence and state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kluis.api.context import RequestContext
from kluis.api.errors import json_response
from kluis.api.http import Response
from kluis.api.routes import RESTORE_BODY_LIMIT, Route
from kluis.api.wire import (
    b64,
    b64_field,
    deleted_key_bundle,
    int_field,
    key_bundle,
    key_changes,
    key_item,
    page_body,
    str_field,
)
from kluis.domain.authorization import KeyPermission as P
from kluis.domain.authorization import VaultAccess
from kluis.domain.errors import BadParameter
from kluis.domain.views import ObjectView, Page
from kluis.identity.jws import sign_jws

__all__ = ["ROUTES"]


async def create_key(ctx: RequestContext) -> Response:
    """CreateKey, POST /keys/{name}/create."""
    body = await ctx.body()
    view = ctx.runtime.keys.create_key(
        ctx.vault,
        ctx.name,
        kty=str_field(body, "kty", required=True) or "",
        size=int_field(body, "key_size"),
        curve=str_field(body, "crv"),
        public_exponent=int_field(body, "public_exponent"),
        changes=key_changes(body),
    )
    return json_response(key_bundle(ctx.base, view))


async def import_key(ctx: RequestContext) -> Response:
    """ImportKey, PUT /keys/{name}."""
    body = await ctx.body()
    jwk = body.get("key")
    if not isinstance(jwk, dict):
        raise BadParameter("The 'key' property (a JSON Web Key) is required.")
    hsm = body.get("Hsm", body.get("hsm"))
    if hsm is not None and not isinstance(hsm, bool):
        raise BadParameter("The 'Hsm' property must be true or false.")
    view = ctx.runtime.keys.import_key(ctx.vault, ctx.name, jwk, hsm=hsm, changes=key_changes(body))
    return json_response(key_bundle(ctx.base, view))


async def get_key(ctx: RequestContext) -> Response:
    """GetKey, GET /keys/{name}/{version?}; also GetKeyAttestation (no attestation object)."""
    return json_response(key_bundle(ctx.base, ctx.runtime.keys.get_key(ctx.vault, ctx.name, ctx.version)))


async def update_key(ctx: RequestContext) -> Response:
    """UpdateKey, PATCH /keys/{name}/{version?}."""
    body = await ctx.body()
    view = ctx.runtime.keys.update_key(ctx.vault, ctx.name, ctx.version, key_changes(body))
    return json_response(key_bundle(ctx.base, view))


async def delete_key(ctx: RequestContext) -> Response:
    """DeleteKey, DELETE /keys/{name}."""
    return json_response(deleted_key_bundle(ctx.base, ctx.runtime.keys.lifecycle.delete(ctx.vault, ctx.name)))


async def _list(
    ctx: RequestContext,
    path: str,
    fetch: Callable[[int | None, str | None], Page[ObjectView]],
    item: Callable[[ObjectView], dict[str, Any]],
) -> Response:
    maxresults = ctx.query_int("maxresults")
    page = fetch(maxresults, ctx.request.query_params.get("$skiptoken"))
    return json_response(page_body([item(v) for v in page.items], page, ctx.next_link(path, page, maxresults)))


async def list_keys(ctx: RequestContext) -> Response:
    """GetKeys, GET /keys: versionless ids."""
    keys = ctx.runtime.keys
    return await _list(
        ctx,
        "/keys",
        lambda m, t: keys.list_keys(ctx.vault, maxresults=m, token=t),
        lambda v: key_item(ctx.base, v, versioned=False),
    )


async def list_versions(ctx: RequestContext) -> Response:
    """GetKeyVersions, GET /keys/{name}/versions."""
    keys = ctx.runtime.keys
    return await _list(
        ctx,
        f"/keys/{ctx.name}/versions",
        lambda m, t: keys.list_versions(ctx.vault, ctx.name, maxresults=m, token=t),
        lambda v: key_item(ctx.base, v, versioned=True),
    )


async def list_deleted(ctx: RequestContext) -> Response:
    """GetDeletedKeys, GET /deletedkeys."""
    keys = ctx.runtime.keys
    return await _list(
        ctx,
        "/deletedkeys",
        lambda m, t: keys.list_deleted_keys(ctx.vault, maxresults=m, token=t),
        lambda v: key_item(ctx.base, v, versioned=False),
    )


async def get_deleted(ctx: RequestContext) -> Response:
    """GetDeletedKey, GET /deletedkeys/{name}."""
    view = ctx.runtime.keys.lifecycle.get_deleted(ctx.vault, ctx.name)
    return json_response(deleted_key_bundle(ctx.base, view))


async def purge_deleted(ctx: RequestContext) -> Response:
    """PurgeDeletedKey, DELETE /deletedkeys/{name}: 204, no body."""
    ctx.runtime.keys.lifecycle.purge(ctx.vault, ctx.name)
    return Response(status_code=204)


async def recover_deleted(ctx: RequestContext) -> Response:
    """RecoverDeletedKey, POST /deletedkeys/{name}/recover."""
    return json_response(key_bundle(ctx.base, ctx.runtime.keys.lifecycle.recover(ctx.vault, ctx.name)))


async def backup_key(ctx: RequestContext) -> Response:
    """BackupKey, POST /keys/{name}/backup."""
    return json_response({"value": b64(ctx.runtime.key_backup.backup(ctx.vault, ctx.name))})


async def restore_key(ctx: RequestContext) -> Response:
    """RestoreKey, POST /keys/restore."""
    body = await ctx.body()
    blob = b64_field(body, "value", required=True) or b""
    return json_response(key_bundle(ctx.base, ctx.runtime.key_backup.restore(ctx.vault, blob)))


async def rotate_key(ctx: RequestContext) -> Response:
    """RotateKey, POST /keys/{name}/rotate."""
    return json_response(key_bundle(ctx.base, ctx.runtime.keys.rotate_key(ctx.vault, ctx.name)))


async def get_rotation_policy(ctx: RequestContext) -> Response:
    """GetKeyRotationPolicy, GET /keys/{name}/rotationpolicy."""
    name, doc = ctx.runtime.keys.get_rotation_policy(ctx.vault, ctx.name)
    return json_response({"id": f"{ctx.base}/keys/{name}/rotationpolicy", **doc})


async def update_rotation_policy(ctx: RequestContext) -> Response:
    """UpdateKeyRotationPolicy, PUT /keys/{name}/rotationpolicy."""
    name, doc = ctx.runtime.keys.update_rotation_policy(ctx.vault, ctx.name, await ctx.body())
    return json_response({"id": f"{ctx.base}/keys/{name}/rotationpolicy", **doc})


def _kid(ctx: RequestContext, name: str, version: str) -> str:
    return f"{ctx.base}/keys/{name}/{version}"


def _encrypting(op: str) -> Callable[[RequestContext], Any]:
    wrap = op == "wrapKey"

    async def handler(ctx: RequestContext) -> Response:
        """Encrypt / WrapKey, POST /keys/{name}/{version}/encrypt|wrapkey."""
        body = await ctx.body()
        res = ctx.runtime.key_operations.encrypt(
            ctx.vault,
            ctx.name,
            ctx.version,
            str_field(body, "alg", required=True) or "",
            b64_field(body, "value", required=True) or b"",
            iv=b64_field(body, "iv"),
            aad=b64_field(body, "aad"),
            wrap=wrap,
        )
        out: dict[str, Any] = {"kid": _kid(ctx, res.name, res.version), "value": b64(res.value)}
        for field_name in ("iv", "tag", "aad"):
            data = getattr(res, field_name)
            if data:
                out[field_name] = b64(data)
        return json_response(out)

    return handler


def _decrypting(op: str) -> Callable[[RequestContext], Any]:
    unwrap = op == "unwrapKey"

    async def handler(ctx: RequestContext) -> Response:
        """Decrypt / UnwrapKey, POST /keys/{name}/{version}/decrypt|unwrapkey."""
        body = await ctx.body()
        res = ctx.runtime.key_operations.decrypt(
            ctx.vault,
            ctx.name,
            ctx.version,
            str_field(body, "alg", required=True) or "",
            b64_field(body, "value", required=True) or b"",
            iv=b64_field(body, "iv"),
            aad=b64_field(body, "aad"),
            tag=b64_field(body, "tag"),
            unwrap=unwrap,
        )
        return json_response({"kid": _kid(ctx, res.name, res.version), "value": b64(res.value)})

    return handler


async def sign(ctx: RequestContext) -> Response:
    """Sign, POST /keys/{name}/{version}/sign: signs a digest the caller computed."""
    body = await ctx.body()
    alg = str_field(body, "alg", required=True) or ""
    res = ctx.runtime.key_operations.sign(
        ctx.vault, ctx.name, ctx.version, alg, b64_field(body, "value", required=True) or b""
    )
    return json_response({"kid": _kid(ctx, res.name, res.version), "value": b64(res.value)})


async def verify(ctx: RequestContext) -> Response:
    """Verify, POST /keys/{name}/{version}/verify."""
    body = await ctx.body()
    alg = str_field(body, "alg", required=True) or ""
    ok = ctx.runtime.key_operations.verify(
        ctx.vault,
        ctx.name,
        ctx.version,
        alg,
        b64_field(body, "digest", required=True) or b"",
        b64_field(body, "value", required=True) or b"",
    )
    return json_response({"value": ok})


async def release_key(ctx: RequestContext) -> Response:
    """Release, POST /keys/{name}/{version}/release: the key, wrapped for an attested TEE.

    The answer is a JWS signed with kluis's token-signing key (verifiable with the tenant's JWKS),
    whose payload carries the key bundle with the wrapped private key in ``key_hsm``.
    """
    body = await ctx.body()
    nonce = str_field(body, "nonce")
    res = ctx.runtime.release.release(ctx.vault, ctx.name, ctx.version, body.get("target"), str_field(body, "enc"))
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


async def random_bytes(ctx: RequestContext) -> Response:
    """GetRandomBytes, POST /rng."""
    body = await ctx.body()
    return json_response({"value": b64(ctx.runtime.key_operations.random_bytes(body.get("count")))})


def _crypto_rows() -> list[Route]:
    rows: list[Route] = []
    for op, permission in (
        ("encrypt", P.ENCRYPT),
        ("decrypt", P.DECRYPT),
        ("wrapKey", P.WRAP_KEY),
        ("unwrapKey", P.UNWRAP_KEY),
    ):
        handler = _encrypting(op) if op in ("encrypt", "wrapKey") else _decrypting(op)
        rows.append(
            Route(
                "POST", f"/keys/{{name}}/{{version?}}/{op.lower()}", handler, op[0].upper() + op[1:], permission, "key"
            )
        )
    rows.append(Route("POST", "/keys/{name}/{version?}/sign", sign, "Sign", P.SIGN, "key"))
    rows.append(Route("POST", "/keys/{name}/{version?}/verify", verify, "Verify", P.VERIFY, "key"))
    return rows


_POLICY = "/keys/{name}/rotationpolicy"

# fmt: off
ROUTES: list[Route] = [
    Route("GET", "/keys/", list_keys, "GetKeys", P.LIST, "key"),
    Route("POST", "/keys/restore", restore_key, "RestoreKey", P.RESTORE, "key", body_limit=RESTORE_BODY_LIMIT),
    Route("PUT", "/keys/{name}/", import_key, "ImportKey", P.IMPORT, "key"),
    Route("GET", "/keys/{name}/{version?}", get_key, "GetKey", P.GET, "key"),
    Route("PATCH", "/keys/{name}/{version?}", update_key, "UpdateKey", P.UPDATE, "key"),
    Route("DELETE", "/keys/{name}/", delete_key, "DeleteKey", P.DELETE, "key"),
    Route("POST", "/keys/{name}/create", create_key, "CreateKey", P.CREATE, "key"),
    Route("POST", "/keys/{name}/backup", backup_key, "BackupKey", P.BACKUP, "key"),
    Route("POST", "/keys/{name}/rotate", rotate_key, "RotateKey", P.ROTATE, "key"),
    Route("GET", _POLICY, get_rotation_policy, "GetKeyRotationPolicy", P.GET_ROTATION_POLICY, "key"),
    Route("PUT", _POLICY, update_rotation_policy, "UpdateKeyRotationPolicy", P.SET_ROTATION_POLICY, "key"),
    Route("GET", "/keys/{name}/versions", list_versions, "GetKeyVersions", P.LIST, "key"),
    *_crypto_rows(),
    Route("GET", "/keys/{name}/{version?}/attestation", get_key, "GetKeyAttestation", P.GET, "key"),
    Route("POST", "/keys/{name}/{version?}/release", release_key, "Release", P.RELEASE, "key"),
    Route("GET", "/deletedkeys/", list_deleted, "GetDeletedKeys", P.LIST, "key"),
    Route("GET", "/deletedkeys/{name}/", get_deleted, "GetDeletedKey", P.GET, "key"),
    Route("DELETE", "/deletedkeys/{name}/", purge_deleted, "PurgeDeletedKey", P.PURGE, "key"),
    Route("POST", "/deletedkeys/{name}/recover", recover_deleted, "RecoverDeletedKey", P.RECOVER, "key"),
    Route("POST", "/rng", random_bytes, "GetRandomBytes", VaultAccess.ANY, "key"),
]
# fmt: on

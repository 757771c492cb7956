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
from kluis.api.errors import encoded_response, json_response
from kluis.api.http import Response
from kluis.api.lifecycle import Family, lifecycle_routes
from kluis.api.routes import Route
from kluis.api.wire import (
    EncodedBundles,
    b64,
    b64_field,
    int_field,
    key_bundle,
    key_changes,
    key_item,
    str_field,
)
from kluis.domain.authorization import KeyPermission as P
from kluis.domain.authorization import VaultAccess
from kluis.domain.errors import BadParameter
from kluis.identity.jws import sign_jws

__all__ = ["KEYS", "ROUTES"]

KEYS = Family("Key", "key", "keys", key_bundle, key_item, P)
_BUNDLES = EncodedBundles(key_bundle)  # get key's answers, while the key is unchanged


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
    ctx.written_version = view.version
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
    ctx.written_version = view.version
    return json_response(key_bundle(ctx.base, view))


async def get_key(ctx: RequestContext) -> Response:
    """GetKey, GET /keys/{name}/{version?}; also GetKeyAttestation (no attestation object)."""
    return encoded_response(_BUNDLES.encode(ctx.base, ctx.runtime.keys.get_key(ctx.vault, ctx.name, ctx.version)))


async def update_key(ctx: RequestContext) -> Response:
    """UpdateKey, PATCH /keys/{name}/{version?}."""
    body = await ctx.body()
    view = ctx.runtime.keys.update_key(ctx.vault, ctx.name, ctx.version, key_changes(body))
    ctx.written_version = view.version  # without {version} in the path: the latest, which it names
    return json_response(key_bundle(ctx.base, view))


async def rotate_key(ctx: RequestContext) -> Response:
    """RotateKey, POST /keys/{name}/rotate."""
    view = ctx.runtime.keys.rotate_key(ctx.vault, ctx.name)
    ctx.written_version = view.version
    return json_response(key_bundle(ctx.base, view))


async def get_rotation_policy(ctx: RequestContext) -> Response:
    """GetKeyRotationPolicy, GET /keys/{name}/rotationpolicy."""
    name, doc = ctx.runtime.keys.get_rotation_policy(ctx.vault, ctx.name)
    if doc is None:  # never set: Key Vault's default is not a stored object, so it has no id
        return json_response(ctx.runtime.keys.default_rotation_policy())
    return json_response({"id": f"{ctx.base}/keys/{name}/rotationpolicy", **doc})


async def update_rotation_policy(ctx: RequestContext) -> Response:
    """UpdateKeyRotationPolicy, PUT /keys/{name}/rotationpolicy."""
    name, doc = ctx.runtime.keys.update_rotation_policy(ctx.vault, ctx.name, await ctx.body())
    return json_response({"id": f"{ctx.base}/keys/{name}/rotationpolicy", **doc})


def _kid(ctx: RequestContext, name: str, version: str) -> str:
    return f"{ctx.base}/keys/{name}/{version}"


def _cipher(op: str) -> Callable[[RequestContext], Any]:
    """Encrypt / Decrypt / WrapKey / UnwrapKey, POST /keys/{name}/{version}/{op}: one handler shape."""
    decrypting = op in ("decrypt", "unwrapKey")

    async def handler(ctx: RequestContext) -> Response:
        body = await ctx.body()
        ops = ctx.runtime.key_operations
        alg = str_field(body, "alg", required=True) or ""
        value = b64_field(body, "value", required=True) or b""
        iv, aad = b64_field(body, "iv"), b64_field(body, "aad")
        tag = b64_field(body, "tag") if decrypting else None
        res = ops.cipher(op, ctx.vault, ctx.name, ctx.version, alg, value, iv=iv, aad=aad, tag=tag)
        out: dict[str, Any] = {"kid": _kid(ctx, res.name, res.version), "value": b64(res.value)}
        if res.iv:  # what an encryption made (GCM / CBC), in this order; none for decrypt
            out["iv"] = b64(res.iv)
        if res.tag:
            out["tag"] = b64(res.tag)
        if res.aad:
            out["aad"] = b64(res.aad)
        return json_response(out)

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
    """The six crypto operations, each at ``/keys/{name}/{version}/{op}`` (an empty version is the latest)
    and at ``/keys/{name}/{op}``: the Azure SDK for Go joins an empty version away (its
    ``runtime.JoinPaths`` drops the empty segment) and Azure serves that path with the latest version."""
    ops = (
        ("encrypt", P.ENCRYPT, _cipher("encrypt")),
        ("decrypt", P.DECRYPT, _cipher("decrypt")),
        ("wrapKey", P.WRAP_KEY, _cipher("wrapKey")),
        ("unwrapKey", P.UNWRAP_KEY, _cipher("unwrapKey")),
        ("sign", P.SIGN, sign),
        ("verify", P.VERIFY, verify),
    )
    rows: list[Route] = []
    for op, permission, handler in ops:
        operation = op[0].upper() + op[1:]
        for pattern in (f"/keys/{{name}}/{{version?}}/{op.lower()}", f"/keys/{{name}}/{op.lower()}"):
            rows.append(Route("POST", pattern, handler, operation, permission, "key"))
    return rows


_POLICY = "/keys/{name}/rotationpolicy"

# fmt: off
ROUTES: list[Route] = [
    *lifecycle_routes(KEYS),
    Route("PUT", "/keys/{name}/", import_key, "ImportKey", P.IMPORT, "key"),
    Route("GET", "/keys/{name}/{version?}", get_key, "GetKey", P.GET, "key"),
    Route("PATCH", "/keys/{name}/{version?}", update_key, "UpdateKey", P.UPDATE, "key"),
    Route("POST", "/keys/{name}/create", create_key, "CreateKey", P.CREATE, "key"),
    Route("POST", "/keys/{name}/rotate", rotate_key, "RotateKey", P.ROTATE, "key"),
    Route("GET", _POLICY, get_rotation_policy, "GetKeyRotationPolicy", P.GET_ROTATION_POLICY, "key"),
    Route("PUT", _POLICY, update_rotation_policy, "UpdateKeyRotationPolicy", P.SET_ROTATION_POLICY, "key"),
    *_crypto_rows(),
    Route("GET", "/keys/{name}/{version?}/attestation", get_key, "GetKeyAttestation", P.GET, "key"),
    Route("POST", "/keys/{name}/{version?}/release", release_key, "Release", P.RELEASE, "key"),
    Route("POST", "/rng", random_bytes, "GetRandomBytes", VaultAccess.ANY, "key"),
]
# fmt: on

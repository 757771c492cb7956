"""kluis's management API (``/_kluis/v1``): what ``az group``, ``az keyvault`` and ``az ad sp`` do.

Only the administrator principal may call it (``AdminPermission.MANAGE``, granted by the
authorization point), with a token for ``https://management.azure.com`` (as ``az`` uses for ARM).
The CLI's management verbs talk to this API, never to the database file.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from kluis.api.context import RequestContext
from kluis.api.errors import json_response
from kluis.api.http import Request, Response
from kluis.api.routes import Auth, Route
from kluis.api.runtime import Runtime
from kluis.domain.authorization import AdminPermission
from kluis.domain.errors import BadParameter
from kluis.domain.management import DEFAULT_SKU
from kluis.domain.model import AuditQuery, AuditRecord, GroupRecord, PolicyRecord, PrincipalRecord, VaultRecord
from kluis.identity.secrets import hash_secret, new_app_id, new_client_secret, new_object_id

__all__ = ["MANAGEMENT_AUDIENCES", "ROUTES"]

MANAGEMENT_AUDIENCES = frozenset({"https://management.azure.com", "https://management.core.windows.net"})


def group_json(g: GroupRecord) -> dict[str, Any]:
    return {
        "name": g.name,
        "location": g.location,
        "created": g.created,
        "properties": {"provisioningState": "Succeeded"},
    }


def vault_json(v: VaultRecord, runtime: Runtime, policies: list[PolicyRecord] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": v.name,
        "resourceGroup": v.group_name,
        "location": v.location,
        "properties": {
            "sku": {"family": "A", "name": v.sku},  # ARM's Sku: family is always "A"
            "tenantId": runtime.tenant_id,
            "vaultUri": f"https://{v.name}.vault.azure.net/",
            "enableSoftDelete": True,
            "softDeleteRetentionInDays": v.retention_days,
            "enablePurgeProtection": v.purge_protection,
        },
        "created": v.created,
    }
    if policies is not None:
        out["properties"]["accessPolicies"] = [policy_json(p, runtime) for p in policies]
    return out


def policy_json(p: PolicyRecord, runtime: Runtime) -> dict[str, Any]:
    return {
        "tenantId": runtime.tenant_id,
        "objectId": p.object_id,
        "permissions": {"keys": p.keys, "secrets": p.secrets, "certificates": p.certificates},
    }


def principal_json(p: PrincipalRecord, runtime: Runtime) -> dict[str, Any]:
    return {
        "appId": p.app_id,
        "id": p.object_id,
        "displayName": p.display_name,
        "appOwnerOrganizationId": runtime.tenant_id,
        "isAdmin": p.is_admin,
    }


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object body ({} when empty). Parsed as the data plane parses bodies (orjson: strict
    JSON, so no NaN/Infinity, which SQLite would store as NULL, and nesting bounded, where the
    standard library's parser hit RecursionError, a 500, on 60,000 ``[``); BadParameter otherwise."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        raise BadParameter("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadParameter("The request body must be a JSON object.")
    return body


# What a text field of a management body may hold. A tester stored NUL, "\n", 5,000 characters and " "
# as given. Per field: (most characters, the characters allowed, or None for any but control
# characters, the rule as the 400 says it). Surrounding spaces are dropped; blank breaks the rule.
# location: Azure region names, as `az account list-locations` gives them ("westeurope", "West Europe",
# "(Europe) West Europe"); group: ARM's resource group names are 1-90 characters (the domain checks the
# rest); displayName: Microsoft Entra ID takes an application display name of up to 256 characters;
# authority: a URL (the domain checks https://), kept to 2048 characters.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0, DEL, C1, line/paragraph separators
_TEXT_RULES: dict[str, tuple[int, re.Pattern[str] | None, str]] = {
    "location": (90, re.compile(r"[A-Za-z0-9 _()-]+"), "1-90 letters, digits, spaces, '-', '_', '(' or ')'"),
    "group": (90, None, "1-90 characters with no control characters"),
    "sku": (90, None, "standard or premium"),
    "displayName": (256, None, "1-256 characters with no control characters"),
    "authority": (2048, None, "an https:// URL of up to 2048 characters with no control characters"),
}


def _str(body: dict[str, Any], name: str) -> str | None:
    """``body[name]`` without surrounding spaces when it is a string that keeps ``_TEXT_RULES[name]``,
    None when absent or null; BadParameter naming the field and its rule otherwise (another type was
    stored as given, or as its text)."""
    value = body.get(name)
    if value is None:
        return None
    most, allowed, rule = _TEXT_RULES[name]
    if not isinstance(value, str):
        raise BadParameter(f"'{name}' must be a string: {rule}.")
    text = value.strip(" ")
    if (
        not 1 <= len(text) <= most
        or _CONTROL.search(text)
        or (allowed is not None and not allowed.fullmatch(text))
        or not text.strip()  # only other blanks (e.g. U+3000)
    ):
        raise BadParameter(f"'{name}' must be {rule}.")
    return text


def _bool(body: dict[str, Any], name: str) -> bool:
    """``body[name]`` when true or false, False when absent or null; BadParameter for any other type."""
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    raise BadParameter(f"'{name}' must be true or false.")


def _str_list(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise BadParameter(f"'{name}' must be an array of strings.")
    return value


def _vault_json(ctx: RequestContext, v: VaultRecord, policies: list[PolicyRecord] | None = None) -> dict[str, Any]:
    return vault_json(v, ctx.runtime, policies)


async def list_groups(ctx: RequestContext) -> Response:
    return json_response({"value": [group_json(g) for g in ctx.runtime.management.list_groups()]})


async def create_group(ctx: RequestContext) -> Response:
    body = await _body(ctx.request)
    return json_response(group_json(ctx.runtime.management.create_group(ctx.name, _str(body, "location") or "local")))


async def get_group(ctx: RequestContext) -> Response:
    return json_response(group_json(ctx.runtime.management.get_group(ctx.name)))


async def delete_group(ctx: RequestContext) -> Response:
    return json_response({"deletedVaults": ctx.runtime.management.delete_group(ctx.name)})


async def list_vaults(ctx: RequestContext) -> Response:
    group = ctx.request.query_params.get("group")
    return json_response({"value": [_vault_json(ctx, v) for v in ctx.runtime.management.list_vaults(group)]})


async def create_vault(ctx: RequestContext) -> Response:
    mgmt = ctx.runtime.management
    body = await _body(ctx.request)
    retention = body.get("retentionDays")
    retention = 90 if retention is None else retention  # null: the default, as every other field
    if isinstance(retention, bool) or not isinstance(retention, int):
        raise BadParameter("retentionDays must be an integer between 7 and 90.")
    assert ctx.caller is not None
    vault = mgmt.create_vault(
        ctx.name,
        _str(body, "group") or "",
        location=_str(body, "location"),
        retention_days=retention,
        purge_protection=_bool(body, "purgeProtection"),
        creator_object_id=ctx.caller.object_id,
        sku=_str(body, "sku") or DEFAULT_SKU,
    )
    return json_response(_vault_json(ctx, vault, mgmt.list_policies(ctx.name)))


async def get_vault(ctx: RequestContext) -> Response:
    mgmt = ctx.runtime.management
    return json_response(_vault_json(ctx, mgmt.get_vault(ctx.name), mgmt.list_policies(ctx.name)))


async def delete_vault(ctx: RequestContext) -> Response:
    ctx.runtime.management.delete_vault(ctx.name)
    return Response(status_code=204)


async def set_policy(ctx: RequestContext) -> Response:
    mgmt = ctx.runtime.management
    principal = mgmt.find_principal(ctx.params.get("principal") or "")
    body = await _body(ctx.request)
    policy = mgmt.set_policy(
        ctx.name,
        principal.object_id,
        keys=_str_list(body, "keys"),
        secrets=_str_list(body, "secrets"),
        certificates=_str_list(body, "certificates"),
    )
    return json_response(policy_json(policy, ctx.runtime))


async def delete_policy(ctx: RequestContext) -> Response:
    mgmt = ctx.runtime.management
    principal = mgmt.find_principal(ctx.params.get("principal") or "")
    mgmt.delete_policy(ctx.name, principal.object_id)
    return Response(status_code=204)


async def list_principals(ctx: RequestContext) -> Response:
    return json_response({"value": [principal_json(p, ctx.runtime) for p in ctx.runtime.management.list_principals()]})


async def create_principal(ctx: RequestContext) -> Response:
    body = await _body(ctx.request)
    name = _str(body, "displayName")
    if name is None:
        raise BadParameter("displayName is required.")
    secret = new_client_secret()
    p = PrincipalRecord(
        object_id=new_object_id(),
        app_id=new_app_id(),
        display_name=name,
        secret_hash=hash_secret(secret),
        is_admin=False,
        created=ctx.runtime.clock.now(),
    )
    p, reused = ctx.runtime.management.add_or_patch_principal(p)  # an existing name: same principal, new secret
    return json_response(
        {
            "appId": p.app_id,
            "displayName": name,
            "password": secret,
            "tenant": ctx.runtime.tenant_id,
            "objectId": p.object_id,
            "reused": reused,
        },
        200 if reused else 201,
    )


async def get_principal(ctx: RequestContext) -> Response:
    return json_response(principal_json(ctx.runtime.management.find_principal(ctx.name), ctx.runtime))


async def delete_principal(ctx: RequestContext) -> Response:
    ctx.runtime.management.delete_principal(ctx.name)
    return Response(status_code=204)


_MAX_CLOCK_OFFSET = 100 * 365 * 86400  # seconds: the server clock moves at most 100 years either way


def _time(ctx: RequestContext) -> Response:
    return json_response({"now": ctx.runtime.clock.now(), "offsetSeconds": ctx.runtime.clock_offset()})


async def get_time(ctx: RequestContext) -> Response:
    return _time(ctx)


async def set_time(ctx: RequestContext) -> Response:
    body = await _body(ctx.request)
    offset = body.get("offsetSeconds")
    if isinstance(offset, bool) or not isinstance(offset, int) or abs(offset) > _MAX_CLOCK_OFFSET:
        raise BadParameter(f"offsetSeconds must be an integer between -{_MAX_CLOCK_OFFSET} and {_MAX_CLOCK_OFFSET}.")
    ctx.runtime.set_clock_offset(offset)
    return _time(ctx)


def _authorities(ctx: RequestContext) -> Response:
    authorities = ctx.runtime.release.authorities.all()
    return json_response({"value": [{"authority": a, "keys": k} for a, k in authorities.items()]})


async def list_authorities(ctx: RequestContext) -> Response:
    return _authorities(ctx)


async def set_authority(ctx: RequestContext) -> Response:
    body = await _body(ctx.request)
    ctx.runtime.release.authorities.set(_str(body, "authority") or "", _str_list(body, "keys") or [])
    return _authorities(ctx)


async def delete_authority(ctx: RequestContext) -> Response:
    ctx.runtime.release.authorities.delete(ctx.request.query_params.get("authority", ""))
    return Response(status_code=204)


async def housekeeping(ctx: RequestContext) -> Response:
    tick = ctx.runtime.housekeeping()
    pruned = ctx.runtime.prune_audit()
    return json_response({"purged": tick.purged, "rotated": tick.acted, "failed": tick.failed, "auditPruned": pruned})


async def health(ctx: RequestContext) -> Response:
    return json_response({"status": "ok", "tenant": ctx.runtime.tenant_id})


async def liveness(ctx: RequestContext) -> Response:
    """``/healthz``: the worker answers requests (nothing else is checked)."""
    return json_response({"status": "ok"})


async def readiness(ctx: RequestContext) -> Response:
    """``/readyz``: 200 when the database answers and the data keys open what they sealed, else 503
    with the reasons; ``details`` (only when there are some) notes what does not stop serving, e.g. a
    KEK source that the next start could not use."""
    checks, details = ctx.runtime.readiness_report()
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, Any] = {"status": "ok" if ready else "unavailable", "checks": checks}
    if details:
        body["details"] = details
    return json_response(body, 200 if ready else 503)


_AUDIT_LIMIT = 1000  # records per page of the audit listing


def audit_json(r: AuditRecord) -> dict[str, Any]:
    """One audit record for the management API: time as ISO 8601 (UTC, milliseconds) and Unix ms."""
    return {
        "id": r.id,
        "time": datetime.fromtimestamp(r.time_ms / 1000, UTC).isoformat(timespec="milliseconds"),
        "timeMs": r.time_ms,
        "tenantId": r.tenant_id,
        "callerObjectId": r.caller_object_id,
        "callerAppId": r.caller_app_id,
        "clientAddress": r.client_address,
        "vault": r.vault,
        "operation": r.operation,
        "kind": r.kind,
        "name": r.object_name,
        "version": r.version,
        "status": r.status,
        "requestId": r.request_id,
        "durationMs": r.duration_us / 1000,
        "chain": r.chain,
        "seq": r.seq,
        "prevHash": r.prev_hash,
        "hash": r.hash,
    }


def _int_param(ctx: RequestContext, name: str, low: int, high: int) -> int | None:
    raw = ctx.request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.lstrip("-").isdigit() or len(raw) > 20 or not low <= int(raw) <= high:
        raise BadParameter(f"'{name}' must be an integer between {low} and {high}.")
    return int(raw)


async def list_audit(ctx: RequestContext) -> Response:
    """One page of audit records, oldest first. Query: ``since`` / ``until`` (Unix ms), ``vault``,
    ``caller`` (object id or app id), ``operation``, ``status``, ``after`` (the last id seen), ``limit``
    (1..1000). Answer: ``value`` and ``next`` (the ``after`` of the next page, or null)."""
    q = ctx.request.query_params
    if ctx.runtime.audit_log is not None:
        ctx.runtime.audit_log.flush()  # this worker's buffered records are part of the answer
    query = AuditQuery(
        since_ms=_int_param(ctx, "since", 0, 1 << 53),
        until_ms=_int_param(ctx, "until", 0, 1 << 53),
        vault=q.get("vault", ""),
        caller=q.get("caller", ""),
        operation=q.get("operation", ""),
        status=_int_param(ctx, "status", 100, 599),
    )
    limit = _int_param(ctx, "limit", 1, _AUDIT_LIMIT) or _AUDIT_LIMIT
    records = ctx.runtime.audit.list(query, after_id=_int_param(ctx, "after", 0, 1 << 62) or 0, limit=limit)
    more = len(records) == limit
    return json_response({"value": [audit_json(r) for r in records], "next": records[-1].id if more else None})


async def verify_audit(ctx: RequestContext) -> Response:
    """Recompute every chain; ``ok``, counts, the retention cutoff and the first broken link (or null)."""
    if ctx.runtime.audit_log is not None:
        ctx.runtime.audit_log.flush()
    report = ctx.runtime.audit.verify()
    broken = report.broken
    return json_response(
        {
            "ok": report.ok,
            "records": report.records,
            "chains": report.chains,
            "prunedBeforeMs": report.pruned_before_ms,
            "firstBroken": None
            if broken is None
            else {"id": broken.id, "chain": broken.chain, "seq": broken.seq, "reason": broken.reason},
        }
    )


_V1 = "/_kluis/v1"
_M = AdminPermission.MANAGE
_AUTH = Auth.MANAGEMENT


def _row(method: str, path: str, handler: Any, operation: str, kind: str) -> Route:
    return Route(method, _V1 + path, handler, operation, _M, kind, _AUTH)


# fmt: off
ROUTES: list[Route] = [
    Route("GET", "/_kluis/health", health, "Health", None, "server", Auth.NONE),
    Route("GET", "/healthz", liveness, "Liveness", None, "server", Auth.NONE),
    Route("GET", "/readyz", readiness, "Readiness", None, "server", Auth.NONE),
    _row("GET", "/groups", list_groups, "ListGroups", "group"),
    _row("PUT", "/groups/{name}", create_group, "CreateGroup", "group"),
    _row("GET", "/groups/{name}", get_group, "GetGroup", "group"),
    _row("DELETE", "/groups/{name}", delete_group, "DeleteGroup", "group"),
    _row("GET", "/vaults", list_vaults, "ListVaults", "vault"),
    _row("PUT", "/vaults/{name}", create_vault, "CreateVault", "vault"),
    _row("GET", "/vaults/{name}", get_vault, "GetVault", "vault"),
    _row("DELETE", "/vaults/{name}", delete_vault, "DeleteVault", "vault"),
    _row("PUT", "/vaults/{name}/policies/{principal}", set_policy, "SetAccessPolicy", "vault"),
    _row("DELETE", "/vaults/{name}/policies/{principal}", delete_policy, "DeleteAccessPolicy", "vault"),
    _row("GET", "/principals", list_principals, "ListServicePrincipals", "principal"),
    _row("POST", "/principals", create_principal, "CreateServicePrincipal", "principal"),
    _row("GET", "/principals/{name}", get_principal, "GetServicePrincipal", "principal"),
    _row("DELETE", "/principals/{name}", delete_principal, "DeleteServicePrincipal", "principal"),
    _row("GET", "/time", get_time, "GetTime", "server"),
    _row("PUT", "/time", set_time, "SetTime", "server"),
    _row("GET", "/attestation", list_authorities, "ListAttestationAuthorities", "server"),
    _row("PUT", "/attestation", set_authority, "SetAttestationAuthority", "server"),
    _row("DELETE", "/attestation", delete_authority, "DeleteAttestationAuthority", "server"),
    _row("POST", "/housekeeping", housekeeping, "RunHousekeeping", "server"),
    _row("GET", "/audit", list_audit, "ListAudit", "audit"),
    _row("POST", "/audit/verify", verify_audit, "VerifyAudit", "audit"),
]
# fmt: on

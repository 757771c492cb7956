"""kluis's management API (``/_kluis/v1``): what ``az group``, ``az keyvault`` and ``az ad sp`` do.

Only the administrator principal may call it, with a token for ``https://management.azure.com``
(as ``az`` uses for ARM). The CLI's management verbs talk to this API, never to the database file.
"""

from __future__ import annotations

import json
from typing import Any

from kluis.api.errors import HttpError, json_response
from kluis.api.http import Request, Response
from kluis.api.runtime import Runtime
from kluis.domain.errors import BadParameter, Forbidden
from kluis.domain.permissions import Caller
from kluis.identity.secrets import hash_secret, new_app_id, new_client_secret, new_object_id
from kluis.store import GroupRecord, PolicyRecord, PrincipalRecord, VaultRecord

__all__ = ["MANAGEMENT_AUDIENCES", "route_admin"]

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
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadParameter("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadParameter("The request body must be a JSON object.")
    return body


def _str_list(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise BadParameter(f"'{name}' must be an array of strings.")
    return value


async def route_admin(request: Request, runtime: Runtime, caller: Caller, method: str, segs: list[str]) -> Response:
    """``segs`` are the path segments after ``/_kluis/v1``."""
    if caller.object_id != runtime.admin_object_id():
        raise Forbidden("Only the kluis administrator may use the management API.", inner_code="AccessDenied")
    mgmt = runtime.management
    head = segs[0] if segs else ""
    if head == "groups":
        if len(segs) == 1 and method == "GET":
            return json_response({"value": [group_json(g) for g in mgmt.list_groups()]})
        if len(segs) == 2:
            if method == "PUT":
                body = await _body(request)
                return json_response(group_json(mgmt.create_group(segs[1], body.get("location") or "local")))
            if method == "GET":
                return json_response(group_json(mgmt.get_group(segs[1])))
            if method == "DELETE":
                return json_response({"deletedVaults": mgmt.delete_group(segs[1])})
    if head == "vaults":
        if len(segs) == 1 and method == "GET":
            group = request.query_params.get("group")
            return json_response({"value": [vault_json(v, runtime) for v in mgmt.list_vaults(group)]})
        if len(segs) == 2:
            name = segs[1]
            if method == "PUT":
                body = await _body(request)
                retention = body.get("retentionDays", 90)
                if isinstance(retention, bool) or not isinstance(retention, int):
                    raise BadParameter("retentionDays must be an integer between 7 and 90.")
                vault = mgmt.create_vault(
                    name,
                    str(body.get("group") or ""),
                    location=body.get("location"),
                    retention_days=retention,
                    purge_protection=bool(body.get("purgeProtection", False)),
                    creator_object_id=caller.object_id,
                )
                return json_response(vault_json(vault, runtime, mgmt.list_policies(name)))
            if method == "GET":
                return json_response(vault_json(mgmt.get_vault(name), runtime, mgmt.list_policies(name)))
            if method == "DELETE":
                mgmt.delete_vault(name)
                return Response(status_code=204)
        if len(segs) == 4 and segs[2] == "policies":
            principal = mgmt.find_principal(segs[3])
            if method == "PUT":
                body = await _body(request)
                policy = mgmt.set_policy(
                    segs[1],
                    principal.object_id,
                    keys=_str_list(body, "keys"),
                    secrets=_str_list(body, "secrets"),
                    certificates=_str_list(body, "certificates"),
                )
                return json_response(policy_json(policy, runtime))
            if method == "DELETE":
                mgmt.delete_policy(segs[1], principal.object_id)
                return Response(status_code=204)
    if head == "principals":
        if len(segs) == 1 and method == "GET":
            return json_response({"value": [principal_json(p, runtime) for p in mgmt.list_principals()]})
        if len(segs) == 1 and method == "POST":
            body = await _body(request)
            name = str(body.get("displayName") or "").strip()
            if not name:
                raise BadParameter("displayName is required.")
            secret = new_client_secret()
            p = PrincipalRecord(
                object_id=new_object_id(),
                app_id=new_app_id(),
                display_name=name,
                secret_hash=hash_secret(secret),
                is_admin=False,
                created=runtime.clock.now(),
            )
            p, reused = mgmt.add_or_patch_principal(p)  # an existing name: same principal, new secret (like az)
            return json_response(
                {
                    "appId": p.app_id,
                    "displayName": name,
                    "password": secret,
                    "tenant": runtime.tenant_id,
                    "objectId": p.object_id,
                    "reused": reused,
                },
                200 if reused else 201,
            )
        if len(segs) == 2 and method == "GET":
            return json_response(principal_json(mgmt.find_principal(segs[1]), runtime))
        if len(segs) == 2 and method == "DELETE":
            mgmt.delete_principal(segs[1])
            return Response(status_code=204)
    if head == "time":
        if method == "PUT":
            body = await _body(request)
            offset = body.get("offsetSeconds")
            if isinstance(offset, bool) or not isinstance(offset, int):
                raise BadParameter("offsetSeconds must be an integer.")
            runtime.set_clock_offset(offset)
        if method in ("GET", "PUT"):
            return json_response({"now": runtime.clock.now(), "offsetSeconds": runtime.clock_offset()})
    if head == "attestation":
        authorities = runtime.release.authorities
        if len(segs) == 1 and method == "GET":
            return json_response({"value": [{"authority": a, "keys": k} for a, k in authorities.all().items()]})
        if len(segs) == 1 and method == "PUT":
            body = await _body(request)
            keys = _str_list(body, "keys") or []
            authorities.set(str(body.get("authority") or ""), keys)
            return json_response({"value": [{"authority": a, "keys": k} for a, k in authorities.all().items()]})
        if len(segs) == 1 and method == "DELETE":
            authorities.delete(request.query_params.get("authority", ""))
            return Response(status_code=204)
    if head == "housekeeping" and method == "POST":
        purged, rotated = runtime.housekeeping()
        return json_response({"purged": purged, "rotated": rotated})
    raise HttpError(404, "NotFound", "No such management endpoint.")

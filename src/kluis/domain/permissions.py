"""Access-policy permissions (Azure's legacy access-policy model) and the check every operation makes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kluis.domain.errors import BadParameter, Forbidden
from kluis.store.records import PolicyRecord, VaultRecord

__all__ = [
    "CERTIFICATE_PERMISSIONS",
    "KEY_PERMISSIONS",
    "SECRET_PERMISSIONS",
    "Caller",
    "normalise",
    "require",
]

KEY_PERMISSIONS = (
    "encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify", "get", "list", "create", "update",
    "import", "delete", "backup", "restore", "recover", "purge", "release", "rotate",
    "getrotationpolicy", "setrotationpolicy",
)  # fmt: skip
SECRET_PERMISSIONS = ("get", "list", "set", "delete", "backup", "restore", "recover", "purge")
CERTIFICATE_PERMISSIONS = (
    "get", "list", "delete", "create", "import", "update", "managecontacts", "getissuers", "listissuers",
    "setissuers", "deleteissuers", "manageissuers", "recover", "purge", "backup", "restore",
)  # fmt: skip

_BY_KIND = {"keys": KEY_PERMISSIONS, "secrets": SECRET_PERMISSIONS, "certificates": CERTIFICATE_PERMISSIONS}


@dataclass(frozen=True)
class Caller:
    """Who is calling, as proven by a verified token."""

    object_id: str
    app_id: str
    tenant_id: str

    def describe(self) -> str:
        return f"appid={self.app_id};oid={self.object_id};iss=https://sts.windows.net/{self.tenant_id}/"


def normalise(kind: str, names: Iterable[str]) -> list[str]:
    """Canonical spelling of permission names (case-insensitive, ``all`` expanded), or BadParameter."""
    allowed = _BY_KIND[kind]
    by_lower = {p.lower(): p for p in allowed}
    out: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name == "all":
            return list(allowed)
        if name not in by_lower:
            raise BadParameter(f"Invalid {kind} permission '{raw}'. Allowed values: all, {', '.join(allowed)}.")
        if by_lower[name] not in out:
            out.append(by_lower[name])
    return out


def require(policy: PolicyRecord | None, vault: VaultRecord, caller: Caller, kind: str, permission: str) -> None:
    """Fail closed: no policy, or a policy without ``permission``, is a 403 naming what is missing."""
    granted: list[str] = [] if policy is None else getattr(policy, kind)
    if permission in granted:
        return
    raise Forbidden(
        f"The user, group or application '{caller.describe()}' does not have {kind} {permission.lower()} "
        f"permission on key vault '{vault.name};location={vault.location}'. For help resolving this issue, "
        "please see https://go.microsoft.com/fwlink/?linkid=2125287",
        inner_code="AccessDenied",
    )

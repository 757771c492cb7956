"""The one authorization point: who may do what on which vault.

Permissions are enums per kind with Azure's access-policy names (``az keyvault set-policy``).
The HTTP layer's route table names the permission of every operation and asks the
``Authorizer`` before the handler runs; nothing else makes permission decisions. The
implementation today is Azure's access-policy model; Azure RBAC would be a second
``Authorizer`` behind the same interface.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from kluis.domain.errors import BadParameter, Forbidden
from kluis.store import PolicyRecord, Store, VaultRecord

__all__ = [
    "AccessPolicyAuthorizer",
    "AdminPermission",
    "Authorizer",
    "Caller",
    "CertificatePermission",
    "KeyPermission",
    "Permission",
    "SecretPermission",
    "StoragePermission",
    "VaultAccess",
    "normalise",
]


class KeyPermission(StrEnum):
    ENCRYPT = "encrypt"
    DECRYPT = "decrypt"
    WRAP_KEY = "wrapKey"
    UNWRAP_KEY = "unwrapKey"
    SIGN = "sign"
    VERIFY = "verify"
    GET = "get"
    LIST = "list"
    CREATE = "create"
    UPDATE = "update"
    IMPORT = "import"
    DELETE = "delete"
    BACKUP = "backup"
    RESTORE = "restore"
    RECOVER = "recover"
    PURGE = "purge"
    RELEASE = "release"
    ROTATE = "rotate"
    GET_ROTATION_POLICY = "getrotationpolicy"
    SET_ROTATION_POLICY = "setrotationpolicy"


class SecretPermission(StrEnum):
    GET = "get"
    LIST = "list"
    SET = "set"
    DELETE = "delete"
    BACKUP = "backup"
    RESTORE = "restore"
    RECOVER = "recover"
    PURGE = "purge"


class CertificatePermission(StrEnum):
    GET = "get"
    LIST = "list"
    DELETE = "delete"
    CREATE = "create"
    IMPORT = "import"
    UPDATE = "update"
    MANAGE_CONTACTS = "managecontacts"
    GET_ISSUERS = "getissuers"
    LIST_ISSUERS = "listissuers"
    SET_ISSUERS = "setissuers"
    DELETE_ISSUERS = "deleteissuers"
    MANAGE_ISSUERS = "manageissuers"
    RECOVER = "recover"
    PURGE = "purge"
    BACKUP = "backup"
    RESTORE = "restore"


class StoragePermission(StrEnum):
    """Azure's storage-account permissions (kept for policies; kluis serves no storage API)."""

    GET = "get"
    LIST = "list"
    DELETE = "delete"
    SET = "set"
    UPDATE = "update"
    REGENERATE_KEY = "regeneratekey"
    RECOVER = "recover"
    PURGE = "purge"
    BACKUP = "backup"
    RESTORE = "restore"
    SET_SAS = "setsas"
    LIST_SAS = "listsas"
    GET_SAS = "getsas"
    DELETE_SAS = "deletesas"


class VaultAccess(StrEnum):
    """Operations that need *some* access policy on the vault but no named permission
    (GetRandomBytes: the REST spec names none)."""

    ANY = "any"


class AdminPermission(StrEnum):
    """kluis's management API (``az group`` / ``az keyvault`` / ``az ad sp``): the administrator only."""

    MANAGE = "manage"


Permission = KeyPermission | SecretPermission | CertificatePermission | StoragePermission | VaultAccess

# The policy field (and the word Azure's 403 message uses) for each permission enum.
_KIND: dict[type[StrEnum], str] = {
    KeyPermission: "keys",
    SecretPermission: "secrets",
    CertificatePermission: "certificates",
    StoragePermission: "storage",
}
_BY_KIND: dict[str, tuple[str, ...]] = {kind: tuple(p.value for p in enum) for enum, kind in _KIND.items()}


@dataclass(frozen=True)
class Caller:
    """Who is calling, as proven by a verified token."""

    object_id: str
    app_id: str
    tenant_id: str

    def describe(self) -> str:
        return f"appid={self.app_id};oid={self.object_id};iss=https://sts.windows.net/{self.tenant_id}/"


def normalise(kind: str, names: Iterable[str]) -> list[str]:
    """Canonical spelling of permission names of ``kind`` ("keys", "secrets", "certificates")
    (case-insensitive, ``all`` expanded), or BadParameter naming the allowed values."""
    allowed = _BY_KIND[kind]
    by_lower = {p.lower(): p for p in allowed}
    out: list[str] = []
    for raw in names:
        name = raw.strip().lower()  # "" or " " is no permission: BadParameter below, as any unknown name
        if name == "all":
            return list(allowed)
        if name not in by_lower:
            raise BadParameter(f"Invalid {kind} permission '{raw}'. Allowed values: all, {', '.join(allowed)}.")
        if by_lower[name] not in out:
            out.append(by_lower[name])
    return out


class Authorizer(Protocol):
    def authorize(self, vault: VaultRecord, caller: Caller, permission: Permission) -> None:
        """Return if ``caller`` holds ``permission`` on ``vault``; raise Forbidden otherwise."""
        ...

    def is_admin(self, caller: Caller) -> bool:
        """Whether ``caller`` is the kluis administrator (management API)."""
        ...


class AccessPolicyAuthorizer:
    """Azure's access-policy model: a vault holds one policy per principal listing its permissions.

    Fails closed: no policy, or a policy without the permission, is Azure's 403 naming what is
    missing (inner code ``AccessDenied``).
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def authorize(self, vault: VaultRecord, caller: Caller, permission: Permission) -> None:
        with self._store.read() as tx:
            policy = tx.get_policy(vault.vault_id, caller.object_id)
        if _grants(policy, permission):
            return
        kind, name = ("keys", "get") if isinstance(permission, VaultAccess) else (_KIND[type(permission)], permission)
        raise Forbidden(
            f"The user, group or application '{caller.describe()}' does not have {kind} {name.lower()} "
            f"permission on key vault '{vault.name};location={vault.location}'. For help resolving this issue, "
            "please see https://go.microsoft.com/fwlink/?linkid=2125287",
            inner_code="AccessDenied",
        )

    def is_admin(self, caller: Caller) -> bool:
        with self._store.read() as tx:
            raw = tx.get_setting("admin_object_id")
        return raw is not None and raw.decode() == caller.object_id


def _grants(policy: PolicyRecord | None, permission: Permission) -> bool:
    if policy is None:
        return False
    if isinstance(permission, VaultAccess):
        return bool(policy.keys or policy.secrets or policy.certificates)
    if isinstance(permission, StoragePermission):
        return False  # storage permissions are not stored: kluis serves no storage API
    granted: list[str] = getattr(policy, _KIND[type(permission)])
    return permission in granted  # a StrEnum member equals its value (no ``.value`` descriptor call)

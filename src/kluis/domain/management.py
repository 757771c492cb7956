"""The management plane, like ``az group`` / ``az keyvault`` / ``az ad sp``: administrators only.

The HTTP layer checks the caller is an administrator; this module owns the rules for names,
retention, purge protection and what deleting a group or vault takes with it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from kluis.domain.authorization import normalise
from kluis.domain.clock import Clock
from kluis.domain.errors import BadParameter, Conflict, NotFound
from kluis.store import GroupRecord, PolicyRecord, PrincipalRecord, Store, Transaction, VaultRecord

__all__ = ["DEFAULT_LOCATION", "DEFAULT_SKU", "SKUS", "Management"]

DEFAULT_LOCATION = "local"
# Azure's vault SKUs (ARM ``Microsoft.KeyVault/vaults`` ``properties.sku.name``); ``az keyvault create``
# defaults to standard. A standard vault holds software keys only; premium adds the -HSM key types
# (azure-docs keys/about-keys.md: "HSM key types in Premium SKU").
SKUS = ("standard", "premium")
DEFAULT_SKU = "standard"
_VAULT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")
_GROUP_NAME = re.compile(r"^[-\w._()]{1,90}$")


def _vault(tx: Transaction, name: str) -> VaultRecord:
    """The vault by name (case-insensitive), or Azure's 404 ``VaultNotFound``."""
    vault = tx.get_vault(name)
    if vault is None:
        raise NotFound(f"The vault '{name}' could not be found.", code="VaultNotFound")
    return vault


def _group(tx: Transaction, name: str) -> GroupRecord:
    """The resource group by name (case-insensitive), or ARM's 404 ``ResourceGroupNotFound``."""
    group = tx.get_group(name)
    if group is None:
        raise NotFound(f"Resource group '{name}' could not be found.", code="ResourceGroupNotFound")
    return group


def vault_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid vault name (Azure's rule), or None when it is."""
    if _VAULT_NAME.match(name or "") and "--" not in name:
        return None
    return (
        f"The vault name '{name}' is invalid: use 3-24 letters, digits and dashes, starting with a "
        "letter and ending with a letter or digit, with no consecutive dashes."
    )


class Management:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    # groups ---------------------------------------------------------------------------------
    def create_group(self, name: str, location: str = DEFAULT_LOCATION) -> GroupRecord:
        if not _GROUP_NAME.match(name or "") or name.endswith("."):
            raise BadParameter(f"Resource group name '{name}' is invalid.", code="InvalidResourceGroupName")
        with self._store.write() as tx:
            existing = tx.get_group(name)
            if existing is not None:  # az group create is idempotent
                return existing
            group = GroupRecord(name=name, location=location, created=self._clock.now())
            tx.add_group(group)
            return group

    def list_groups(self) -> list[GroupRecord]:
        with self._store.read() as tx:
            return tx.list_groups()

    def get_group(self, name: str) -> GroupRecord:
        with self._store.read() as tx:
            return _group(tx, name)

    def delete_group(self, name: str) -> list[str]:
        """Deletes the group and every vault in it (with their keys); returns the vault names."""
        with self._store.write() as tx:
            _group(tx, name)
            vaults = tx.list_vaults(name)
            for v in vaults:
                tx.delete_vault(v.vault_id)
            tx.delete_group(name)
            return [v.name for v in vaults]

    # vaults ---------------------------------------------------------------------------------
    def create_vault(
        self,
        name: str,
        group: str,
        *,
        location: str | None = None,
        retention_days: int = 90,
        purge_protection: bool = False,
        creator_object_id: str | None = None,
        sku: str = DEFAULT_SKU,
    ) -> VaultRecord:
        """Like ``az keyvault create``: the creator gets an access policy with every permission.

        ``sku`` is ``standard`` or ``premium`` (any case); BadParameter otherwise."""
        sku_name = sku.lower() if isinstance(sku, str) else ""
        if sku_name not in SKUS:
            raise BadParameter(f"The SKU '{sku}' is invalid: use standard or premium.", code="SkuNotSupported")
        problem = vault_name_problem(name)
        if problem is not None:
            raise BadParameter(problem, code="VaultNameNotValid")
        if not 7 <= retention_days <= 90:
            raise BadParameter("Soft-delete retention must be between 7 and 90 days.")
        with self._store.write() as tx:
            g = _group(tx, group)
            if tx.get_vault(name) is not None:
                raise Conflict(f"The vault name '{name}' is already in use.", code="VaultAlreadyExists")
            vault = VaultRecord(
                vault_id=str(uuid.uuid4()),
                name=name,
                group_name=g.name,
                location=location or g.location,
                retention_days=retention_days,
                purge_protection=purge_protection,
                created=self._clock.now(),
                sku=sku_name,
            )
            tx.add_vault(vault)
            if creator_object_id is not None:
                tx.put_policy(
                    PolicyRecord(
                        vault.vault_id,
                        creator_object_id,
                        normalise("keys", ["all"]),
                        normalise("secrets", ["all"]),
                        normalise("certificates", ["all"]),
                    )
                )
            return vault

    def get_vault(self, name: str) -> VaultRecord:
        with self._store.read() as tx:
            return _vault(tx, name)

    def list_vaults(self, group: str | None = None) -> list[VaultRecord]:
        with self._store.read() as tx:
            return tx.list_vaults(group)

    def delete_vault(self, name: str) -> None:
        with self._store.write() as tx:
            vault = _vault(tx, name)
            tx.delete_vault(vault.vault_id)

    # access policies ------------------------------------------------------------------------
    def set_policy(
        self,
        vault_name: str,
        object_id: str,
        *,
        keys: Sequence[str] | None = None,
        secrets: Sequence[str] | None = None,
        certificates: Sequence[str] | None = None,
    ) -> PolicyRecord:
        """Like ``az keyvault set-policy``: the kinds given replace that kind's list; others stay."""
        with self._store.write() as tx:
            vault = _vault(tx, vault_name)
            if tx.get_principal(object_id) is None:
                raise NotFound(f"No principal with object id '{object_id}'.", code="PrincipalNotFound")
            policy = tx.get_policy(vault.vault_id, object_id) or PolicyRecord(vault.vault_id, object_id)
            if keys is not None:
                policy.keys = normalise("keys", keys)
            if secrets is not None:
                policy.secrets = normalise("secrets", secrets)
            if certificates is not None:
                policy.certificates = normalise("certificates", certificates)
            tx.put_policy(policy)
            return policy

    def delete_policy(self, vault_name: str, object_id: str) -> None:
        with self._store.write() as tx:
            vault = _vault(tx, vault_name)
            if tx.get_policy(vault.vault_id, object_id) is None:
                raise NotFound(f"No access policy for object id '{object_id}' in vault '{vault_name}'.")
            tx.delete_policy(vault.vault_id, object_id)

    def list_policies(self, vault_name: str) -> list[PolicyRecord]:
        vault = self.get_vault(vault_name)
        with self._store.read() as tx:
            return tx.list_policies(vault.vault_id)

    # principals -----------------------------------------------------------------------------
    def add_principal(self, principal: PrincipalRecord) -> PrincipalRecord:
        with self._store.write() as tx:
            tx.add_principal(principal)
        return principal

    def principal_by_app_id(self, app_id: str) -> PrincipalRecord | None:
        """The service principal with this app (client) id, or None."""
        with self._store.read() as tx:
            return tx.get_principal_by_app_id(app_id)

    def add_or_patch_principal(self, new: PrincipalRecord) -> tuple[PrincipalRecord, bool]:
        """``az ad sp create-for-rbac -n NAME``: add ``new``, or, if NAME exists, give that principal
        ``new.secret_hash`` in place of its secret (same appId and object id) and return it with True.

        az does the same (azure-cli role/custom.py, create_service_principal_for_rbac: "patch existing app
        with the same displayName to make the command idempotent", removing its passwords, adding one).
        """
        with self._store.write() as tx:
            same = [p for p in tx.list_principals() if p.display_name == new.display_name]
            if not same:
                tx.add_principal(new)
                return new, False
            if len(same) > 1 or same[0].is_admin:
                raise BadParameter(f"'{new.display_name}' names the administrator or several principals; pick another.")
            tx.set_principal_secret(same[0].object_id, new.secret_hash)
        return PrincipalRecord(**{**same[0].__dict__, "secret_hash": new.secret_hash}), True

    def find_principal(self, ident: str) -> PrincipalRecord:
        """By app id (client id) or object id, as ``--spn`` / ``--object-id`` accept."""
        with self._store.read() as tx:
            p = tx.get_principal_by_app_id(ident) or tx.get_principal(ident)
            if p is None:
                for cand in tx.list_principals():
                    if cand.display_name == ident:
                        return cand
        if p is None:
            raise NotFound(f"No service principal matches '{ident}'.", code="PrincipalNotFound")
        return p

    def list_principals(self) -> list[PrincipalRecord]:
        with self._store.read() as tx:
            return tx.list_principals()

    def delete_principal(self, ident: str) -> None:
        p = self.find_principal(ident)
        if p.is_admin:
            raise BadParameter("The administrator principal cannot be deleted.")
        with self._store.write() as tx:
            tx.delete_principal(p.object_id)

"""Secrets: what a secret adds to the shared object lifecycle.

The lifecycle (``kluis.domain.lifecycle``) owns names, versions, attributes, soft delete,
recover, purge, paging and sealing; a secret brings only its own parts: the value (UTF-8, sealed
by the lifecycle exactly as key material is), its properties (``contentType``, and ``kid`` /
``managed`` for a secret that backs a certificate), Azure's limits on them, and the rule that a
disabled secret's value is refused. A bounded per-process cache keeps unsealed values of hot
versions, as the keys' material cache does. Permission checks are made before any of this runs
(the API's route table + ``kluis.domain.authorization``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kluis.crypto import Sealer
from kluis.domain.clock import Clock
from kluis.domain.errors import BadParameter
from kluis.domain.lifecycle import Lifecycle, ObjectKind, UnsealedCache, check_tags
from kluis.domain.views import ObjectView, SecretChanges
from kluis.store import Store, VaultRecord, VersionRecord

__all__ = [
    "MAX_CONTENT_TYPE_LENGTH",
    "MAX_SECRET_TAG_LENGTH",
    "MAX_VALUE_LENGTH",
    "SECRET",
    "Secret",
    "SecretService",
    "check_content_type",
    "check_secret_tags",
    "check_value",
]

# Azure: "A secret's get operation works for not-yet-valid and expired secrets, outside the nbf / exp
# window" (azure-docs secrets/about-secrets.md, "Date-time controlled operations"): ``get`` is exempt.
# A disabled secret's get is refused with 403 Forbidden, "Operation get is not allowed on a disabled
# secret.", inner code SecretDisabled: the service's answer as quoted in Azure/azure-sdk-for-js#24756
# (nightly samples run against Azure), ansible-collections/azure#1989 and
# turbot/steampipe-plugin-azure#111.
SECRET = ObjectKind(
    kind="secret",
    title="Secret",
    time_exempt=frozenset({"get"}),
    disabled_code="SecretDisabled",
    expired_code="SecretExpired",
    not_yet_valid_code="SecretNotYetValid",
)

# Azure's limit on a secret's value. Its answer to a longer one is 400 BadParameter, "Secret is beyond
# the maximum permitted length of 25600 characters.", inner code SecretTooLarge (quoted from a live
# vault in a public deployment log, docs/LIMITATIONS.md of a PQC-on-Azure demo); azure-docs
# secrets/about-secrets.md: "a maximum size of 25 KB each".
MAX_VALUE_LENGTH = 25600
# azure-docs secrets/about-secrets.md: contentType "The maximum length of this field is 255 characters".
MAX_CONTENT_TYPE_LENGTH = 255
# azure-docs secrets/about-secrets.md: "up to 15 tags, each of which can have a 512-character name and a
# 512-character value" (keys: 256).
MAX_SECRET_TAG_LENGTH = 512
# The value cache's budget, in characters of cached values (a value is at most 25,600 characters).
_CACHE_BUDGET = 8 * 1024 * 1024


def check_value(value: Any) -> str:
    """A secret value as Azure accepts it: a string (empty allowed) of at most 25,600 characters;
    BadParameter (inner code ``SecretTooLarge`` when too long) otherwise."""
    if not isinstance(value, str):
        raise BadParameter("The 'value' property (the secret's value, a string) is required.")
    if len(value) > MAX_VALUE_LENGTH:
        raise BadParameter(
            f"Secret is beyond the maximum permitted length of {MAX_VALUE_LENGTH} characters.",
            inner_code="SecretTooLarge",
        )
    return value


def check_content_type(content_type: Any) -> str:
    """A contentType: a string of at most 255 characters; BadParameter otherwise."""
    if not isinstance(content_type, str):
        raise BadParameter("The 'contentType' property must be a string.")
    if len(content_type) > MAX_CONTENT_TYPE_LENGTH:
        raise BadParameter(f"contentType can be at most {MAX_CONTENT_TYPE_LENGTH} characters.")
    return content_type


def check_secret_tags(tags: Any) -> dict[str, str]:
    """Tags of a secret: at most 15, names and values at most 512 characters."""
    return check_tags(tags, title="A secret", max_length=MAX_SECRET_TAG_LENGTH)


@dataclass(slots=True)  # not frozen: built on every get, and a frozen __init__ costs more
class Secret:
    """One version of a secret with its value (what SetSecret / GetSecret answer). Never edited."""

    view: ObjectView
    value: str


class SecretService:
    """The secrets data plane of every vault: set, get (the value) and update; the rest of the
    lifecycle (list, delete, recover, purge) is ``self.lifecycle``'s, unchanged."""

    def __init__(self, store: Store, sealer: Sealer, clock: Clock) -> None:
        self._clock = clock
        self._values: UnsealedCache[str] = UnsealedCache(_CACHE_BUDGET, len)
        self.lifecycle = Lifecycle(SECRET, store, clock, sealer, on_forget=self._values.forget)

    # -- values -------------------------------------------------------------------------------
    def value(self, v: VersionRecord) -> str:
        """The unsealed value of one version, from a bounded per-process cache.

        A version's value never changes, so caching it is safe; every get still reads the
        version's attributes from the store, so a disabled or deleted secret is refused even
        while its value sits in the cache.
        """
        return self._values.get(v, self._unseal_value)

    def _unseal_value(self, v: VersionRecord) -> str:
        return self.lifecycle.unseal(v).decode("utf-8")

    # -- operations ---------------------------------------------------------------------------
    def set_secret(
        self,
        vault: VaultRecord,
        name: str,
        value: str,
        changes: SecretChanges | None = None,
        *,
        kid: str | None = None,
        managed: bool = False,
    ) -> Secret:
        """SetSecret (secrets/set): a new version (the name is created if new) holding ``value``.

        ``kid`` / ``managed`` are for the secret that backs a certificate (set by the certificates
        service, never from a SetSecret request). BadParameter for a value or property beyond
        Azure's limits; Conflict (``ObjectIsDeletedButRecoverable``) while the name is deleted.
        """
        changes = changes or SecretChanges()
        check_value(value)
        props: dict[str, Any] = {}
        if isinstance(changes.content_type, str):
            props["contentType"] = check_content_type(changes.content_type)
        if kid is not None:
            props["kid"] = kid
        if managed:
            props["managed"] = True
        view = self.lifecycle.add_version(vault, name, value.encode("utf-8"), changes, props)
        return Secret(view, value)

    def get_secret(self, vault: VaultRecord, name: str, version: str | None = None) -> Secret:
        """GetSecret (secrets/get): the latest or given version with its value. Forbidden
        (``SecretDisabled``) when the version is disabled; answered outside nbf/exp (Azure's rule)."""
        obj, v = self.lifecycle.read(vault, name, version)
        self.lifecycle.check_usable(v, "get")  # (the clock is read only for a version with nbf / exp)
        return Secret(self.lifecycle.shared_view(vault, obj, v), self.value(v))

    def update_secret(self, vault: VaultRecord, name: str, version: str | None, changes: SecretChanges) -> ObjectView:
        """UpdateSecret (secrets/set): PATCH semantics (absent or null fields unchanged); the value never
        changes. NotFound for a name or version that does not exist."""
        if isinstance(changes.content_type, str):
            check_content_type(changes.content_type)

        def apply(v: VersionRecord) -> dict[str, Any]:
            props = dict(v.props)
            if isinstance(changes.content_type, str):
                props["contentType"] = changes.content_type
            return props

        return self.lifecycle.update(vault, name, version, changes, apply)

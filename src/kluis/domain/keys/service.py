"""Keys: what a key adds to the shared object lifecycle.

The lifecycle (``kluis.domain.lifecycle``) owns names, versions, attributes, soft delete,
paging and sealing. This module owns the key's own parts: generating or importing material,
the key's properties (``kty``, public JWK, ``key_ops``, ``exportable``, ``release_policy``),
rotation and the rotation policy, and a bounded cache of unsealed material. Permission checks
are made before any of this runs (the API's route table + ``kluis.domain.authorization``).
"""

from __future__ import annotations

import copy
from typing import Any, TypedDict, Unpack

import orjson

from kluis.crypto import CryptoError, KeyMaterial, KeyPool, KeyType, Sealer, b64url_decode, from_jwk, generate
from kluis.crypto.algorithms import Curve
from kluis.domain.clock import Clock
from kluis.domain.errors import BadParameter, Forbidden
from kluis.domain.keys.rotation import DEFAULT_POLICY, RotationPolicy, parse_policy
from kluis.domain.lifecycle import Lifecycle, ObjectKind, UnsealedCache, check_tags
from kluis.domain.views import UNSET, KeyChanges, ObjectView, Page, is_set
from kluis.store import ObjectRecord, Store, VaultRecord, VersionRecord

__all__ = [
    "DEFAULT_KEY_OPS",
    "KEY",
    "RELEASE_POLICY_CONTENT_TYPE",
    "SUPPORTED_KEY_OPS",
    "KeyService",
    "KeySpec",
    "check_key_tags",
    "check_key_type",
    "check_ops",
    "check_ops_for",
    "check_release_policy",
]


class KeySpec(TypedDict, total=False):
    """How CreateKey makes a key (absent or None: the key type's default): ``size`` in bits (RSA 2048,
    3072 or 4096; oct 128, 192 or 256), ``curve`` (EC: P-256, P-384, P-521, P-256K) and ``public_exponent``
    (RSA: 3 or 65537). BadParameter names the value a key type does not take."""

    size: int | None
    curve: str | None
    public_exponent: int | None


KEY = ObjectKind(
    kind="key",
    title="Key",
    # Azure ("About keys", date-time controlled operations): a key outside its nbf/exp window still
    # decrypts, unwraps and verifies, so data protected earlier stays readable; release is refused
    # only for a disabled key (or one without "release" in key_ops).
    time_exempt=frozenset({"decrypt", "unwrapKey", "verify", "release"}),
    disabled_code="KeyDisabled",
    expired_code="KeyExpired",
    not_yet_valid_code="KeyNotYetValid",
)
_OPS = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export")
# What Key Vault fills in when a create/import names no key_ops.
DEFAULT_KEY_OPS = {
    "RSA": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
    "EC": ["sign", "verify"],
    "oct": ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
}
# The key_ops each key family accepts on create, import, update and rotate; anything else is a 400.
# Azure's wording, quoted for an EC key in public reports (a Terraform module's notes on Key Vault
# certificates): 'Unsupported key operation(s): "encrypt", "decrypt". Supported values are "sign",
# "verify".' That list leaves out "import" and "export" even though EC-HSM keys can be exportable,
# so kluis accepts neither for any key type (they stay valid JsonWebKeyOperation names, so the
# answer is this 400 rather than "invalid operation"). oct keys take sign/verify because kluis
# implements the HMAC algorithms (HS256/384/512) that Azure offers for oct-HSM keys on premium
# vaults (azure-docs keys/about-keys-details.md, "SIGN/VERIFY (HMAC)").
SUPPORTED_KEY_OPS: dict[str, tuple[str, ...]] = {
    "RSA": ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"),
    "EC": ("sign", "verify"),
    "oct": ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"),
}
# KeyReleasePolicy.contentType when the caller names none (the spec's default).
RELEASE_POLICY_CONTENT_TYPE = "application/json; charset=utf-8"
_CACHE_SIZE = 4096  # unsealed key versions kept per process


def check_key_tags(tags: Any) -> dict[str, str]:
    return check_tags(tags, title="A key")


def check_ops(ops: Any) -> list[str]:
    """key_ops in canonical spelling (case-insensitive, duplicates dropped); BadParameter otherwise."""
    if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
        raise BadParameter("key_ops must be an array of strings.")
    by_lower = {o.lower(): o for o in _OPS}
    out: list[str] = []
    for op in ops:
        canon = by_lower.get(op.lower())
        if canon is None:
            raise BadParameter(f"Invalid key operation '{op}'. Allowed values: {', '.join(_OPS)}.")
        if canon not in out:
            out.append(canon)
    return out


def check_ops_for(family: str, ops: list[str]) -> None:
    """BadParameter (Azure's message) unless every one of ``ops`` (canonical spelling, from
    ``check_ops``) is supported by keys of ``family`` ("RSA", "EC" or "oct")."""
    supported = SUPPORTED_KEY_OPS[family]
    unsupported = [op for op in ops if op not in supported]
    if unsupported:
        listed = ", ".join(f'"{op}"' for op in unsupported)
        allowed = ", ".join(f'"{op}"' for op in supported)
        raise BadParameter(f"Unsupported key operation(s): {listed}. Supported values are {allowed}.")


def check_key_type(vault: VaultRecord, kty: KeyType) -> None:
    """Refuse a key type the vault's SKU cannot hold, as Azure answers (400 BadParameter):

    - ``oct`` (software symmetric) on any vault: Azure answers ``"Invalid kty value: oct"`` with inner
      code ``KeyTypeNotSupported`` (azure-sdk-for-net#13437, a recorded 400 for ``{"kty":"oct"}`` at
      api-version 7.0; azure-sdk-for-js#26212 the same in 2023). Symmetric keys in vaults "are
      HSM-backed only and require a Premium vault" (azure-docs keys/about-keys.md), so ``oct-HSM``
      on a standard vault gets the same answer.
    - any other ``-HSM`` type on a standard vault: "Hardware key operation not allowed on standard
      vault" (quoted in azure-sdk-for-net#6551, azure-sdk-for-js#18267, MicrosoftDocs/azure-docs#63888).
      Those reports quote only the message; the status and code are not recorded anywhere public
      that was found, so kluis answers it like the other key-type refusals (400 BadParameter).

    ``oct-HSM`` is allowed on premium vaults at every api-version: the key type is in every spec's
    JsonWebKeyType, and the HS256/384/512 algorithms it signs with are in the JsonWebKeySignatureAlgorithm
    of the 2025-07-01 and 2026-04-01 specs (Azure documents vault oct-HSM keys as a preview without
    naming an api-version).
    """
    premium = vault.sku == "premium"
    if kty.family == "oct" and (kty is KeyType.OCT or not premium):
        raise BadParameter(f"Invalid kty value: {kty.value}", inner_code="KeyTypeNotSupported")
    if kty.value.endswith("-HSM") and not premium:
        raise BadParameter("Hardware key operation not allowed on standard vault")


def check_release_policy(policy: Any) -> dict[str, Any] | None:
    """A KeyReleasePolicy as it is stored and returned: ``data`` required, ``contentType`` defaulted."""
    if policy is None:
        return None
    if not isinstance(policy, dict):
        raise BadParameter("release_policy must be an object.")
    data = policy.get("data")
    if not isinstance(data, str) or not data:
        raise BadParameter("release_policy.data (the base64url-encoded policy) is required.")
    try:
        b64url_decode(data)
    except CryptoError:
        raise BadParameter("release_policy.data is not valid base64url.") from None
    content_type = policy.get("contentType")
    if content_type is None:
        content_type = RELEASE_POLICY_CONTENT_TYPE
    if not isinstance(content_type, str):
        raise BadParameter("release_policy.contentType must be a string.")
    out: dict[str, Any] = {"contentType": content_type, "data": data}
    immutable = policy.get("immutable")
    if immutable is not None:
        if not isinstance(immutable, bool):
            raise BadParameter("release_policy.immutable must be true or false.")
        out["immutable"] = immutable
    return out


def _next_rotation(obj: ObjectRecord, latest: VersionRecord) -> int | None:
    """When the scheduler must rotate the key (its rotation policy applied to the current version)."""
    if not obj.policy:
        return None
    return RotationPolicy.from_json(obj.policy).next_rotation(created=latest.created, exp=latest.exp)


class KeyService:
    """The keys data plane of every vault."""

    def __init__(self, store: Store, sealer: Sealer, clock: Clock, *, pool: KeyPool | None = None) -> None:
        self._store = store
        self._clock = clock
        self._pool = pool
        self._materials: UnsealedCache[KeyMaterial] = UnsealedCache(_CACHE_SIZE, lambda _: 1)
        self.lifecycle = Lifecycle(KEY, store, clock, sealer, schedule=_next_rotation, on_forget=self._materials.forget)

    # -- material -----------------------------------------------------------------------------

    def material(self, v: VersionRecord) -> KeyMaterial:
        """The unsealed key of one version, from a bounded per-process cache.

        Key material of a version never changes, so caching it is safe; every use still reads the
        version's attributes from the store, so a disabled, expired or deleted key is refused
        even while its material sits in the cache.
        """
        return self._materials.get(v, self._load)

    def _load(self, v: VersionRecord) -> KeyMaterial:
        family = KeyType(v.props["kty"]).family
        curve = Curve(v.props["jwk"]["crv"]) if family == "EC" else None
        return KeyMaterial.load(family, self.lifecycle.unseal(v), curve=curve)

    def usable(
        self, vault: VaultRecord, name: str, version: str | None, operation: str
    ) -> tuple[VersionRecord, KeyMaterial]:
        """The version and its material, if it may serve ``operation`` now: it exists, is enabled,
        lists the operation in ``key_ops`` and is inside nbf/exp unless the operation is exempt.
        Forbidden (``KeyDisabled``, ``KeyOperationForbidden``, ``KeyExpired``...) otherwise."""
        _, v = self.lifecycle.read(vault, name, version)
        if not v.enabled:
            self.lifecycle.check_usable(v, operation, 0)
        if operation not in v.props.get("key_ops", ()):
            raise Forbidden(f"Operation {operation} is not permitted on this key.", inner_code="KeyOperationForbidden")
        self.lifecycle.check_usable(v, operation)  # (the clock is read only for a version with nbf / exp)
        return v, self.material(v)

    # -- create / import ----------------------------------------------------------------------
    def _add(self, vault: VaultRecord, name: str, kty: str, material: KeyMaterial, changes: KeyChanges) -> ObjectView:
        """Every new version (create, import, rotate) passes here: the vault's SKU must allow the key
        type and the key_ops must suit it."""
        key_type = KeyType(kty)
        check_key_type(vault, key_type)
        family = key_type.family
        ops = changes.key_ops if isinstance(changes.key_ops, list) else list(DEFAULT_KEY_OPS[family])
        check_ops_for(family, ops)
        exportable = changes.exportable if isinstance(changes.exportable, bool) else False
        release = changes.release_policy if isinstance(changes.release_policy, dict) else None

        def check(previous: ObjectRecord | None) -> None:
            if exportable and not release and previous is None:
                raise BadParameter(
                    "Release policy must be provided when creating the first version of an exportable key."
                )

        if release and not exportable:
            raise BadParameter("AKV.SKR.1005: Non-exportable keys must not have release policy.")
        props = {
            "kty": kty,
            "jwk": material.public_jwk(),
            "key_ops": ops,
            "exportable": exportable,
            "release_policy": release,
        }
        return self.lifecycle.add_version(vault, name, material.to_bytes(), changes, props, check=check)

    def create_key(
        self, vault: VaultRecord, name: str, *, kty: str, changes: KeyChanges | None = None, **spec: Unpack[KeySpec]
    ) -> ObjectView:
        """CreateKey (keys/create): a new key, or a new version of an existing one, made as ``spec`` says."""
        self.lifecycle.ensure_not_deleted(vault, name)  # fail fast before spending ms on key generation
        key_type = self._key_type(kty)
        check_key_type(vault, key_type)  # before spending ms on key generation
        material = self._generate(key_type, spec)
        return self._add(vault, name, key_type.value, material, changes or KeyChanges())

    @staticmethod
    def _key_type(kty: str) -> KeyType:
        try:
            return KeyType(kty)
        except ValueError:
            raise BadParameter(
                f"Invalid key type '{kty}'. Allowed values: {', '.join(t.value for t in KeyType)}."
            ) from None

    def _generate(self, kty: KeyType, spec: KeySpec) -> KeyMaterial:
        size, curve, public_exponent = spec.get("size"), spec.get("curve"), spec.get("public_exponent")
        try:
            crv = None
            if curve is not None:
                try:
                    crv = Curve(curve)
                except ValueError:
                    raise BadParameter(
                        f"Invalid curve '{curve}'. Allowed values: {', '.join(c.value for c in Curve)}."
                    ) from None
            pooled = (
                kty.family == "RSA"
                and self._pool is not None
                and crv is None  # a curve on an RSA key is an error, whether or not a pool is configured
                and (size or 2048) in (2048, 3072, 4096)
                and (public_exponent or 65537) == 65537
            )
            if pooled and self._pool is not None:
                return self._pool.take(size or 2048, 65537)
            return generate(kty, size=size, curve=crv, public_exponent=public_exponent)
        except CryptoError as e:
            raise BadParameter(e.message) from None

    def import_key(
        self,
        vault: VaultRecord,
        name: str,
        jwk: dict[str, Any],
        *,
        hsm: bool | None = None,
        changes: KeyChanges | None = None,
    ) -> ObjectView:
        """ImportKey (keys/import): a JWK with its private parts becomes a new version."""
        changes = changes or KeyChanges()
        if not isinstance(jwk, dict):
            raise BadParameter("The 'key' property must be a JSON Web Key object.")
        kty = self._key_type(str(jwk.get("kty", "")))
        if hsm and not kty.value.endswith("-HSM"):
            kty = KeyType(kty.value + "-HSM")
        check_key_type(vault, kty)
        try:
            material = from_jwk(jwk)
        except CryptoError as e:
            raise BadParameter(e.message) from None
        if not is_set(changes.key_ops) and jwk.get("key_ops") is not None:
            changes.key_ops = check_ops(jwk["key_ops"])
        return self._add(vault, name, kty.value, material, changes)

    # -- read / list --------------------------------------------------------------------------
    def get_key(self, vault: VaultRecord, name: str, version: str | None = None) -> ObjectView:
        """GetKey (keys/get): public part and attributes of the latest or a given version."""
        return self.lifecycle.get(vault, name, version)

    def list_keys(self, vault: VaultRecord, *, maxresults: int | None, token: str | None) -> Page[ObjectView]:
        """GetKeys (keys/list): one item per key name, latest version's attributes."""
        return self.lifecycle.list(vault, deleted=False, maxresults=maxresults, token=token)

    def list_deleted_keys(self, vault: VaultRecord, *, maxresults: int | None, token: str | None) -> Page[ObjectView]:
        """GetDeletedKeys (keys/list)."""
        return self.lifecycle.list(vault, deleted=True, maxresults=maxresults, token=token)

    def list_versions(
        self, vault: VaultRecord, name: str, *, maxresults: int | None, token: str | None
    ) -> Page[ObjectView]:
        """GetKeyVersions (keys/list)."""
        return self.lifecycle.list_versions(vault, name, maxresults=maxresults, token=token)

    # -- update -------------------------------------------------------------------------------
    def update_key(self, vault: VaultRecord, name: str, version: str | None, changes: KeyChanges) -> ObjectView:
        """UpdateKey (keys/update): PATCH semantics, absent means unchanged; material never changes."""

        def apply(v: VersionRecord) -> dict[str, Any]:
            props = dict(v.props)
            if isinstance(changes.key_ops, list):
                check_ops_for(KeyType(props["kty"]).family, changes.key_ops)
                props["key_ops"] = changes.key_ops
            exportable = bool(props.get("exportable"))
            if isinstance(changes.exportable, bool) and changes.exportable != exportable:
                raise BadParameter("The exportable attribute of a key cannot be changed after the key is created.")
            if is_set(changes.release_policy):
                current = props.get("release_policy")
                if current and current.get("immutable"):
                    raise Forbidden("The release policy of this key is immutable and cannot be changed.")
                props["release_policy"] = changes.release_policy or None
            if props.get("release_policy") and not exportable:
                raise BadParameter("AKV.SKR.1005: Non-exportable keys must not have release policy.")
            if is_set(changes.release_policy) and exportable and not props.get("release_policy"):
                raise BadParameter("Exportable keys must have release policy.")
            return props

        return self.lifecycle.update(vault, name, version, changes, apply)

    # -- rotation -----------------------------------------------------------------------------
    def rotate_key(self, vault: VaultRecord, name: str) -> ObjectView:
        """RotateKey (keys/rotate): a new version of the same type and size, per the key's policy."""
        obj, latest = self.lifecycle.read(vault, name)
        key_type = KeyType(latest.props["kty"])
        if key_type.family == "oct":
            raise BadParameter("Symmetric keys cannot be rotated by Key Vault; import a new version instead.")
        current = self.material(latest)
        size = current.key_size if key_type.family == "RSA" else None
        material = self._generate(key_type, KeySpec(size=size, curve=current.curve.value if current.curve else None))
        policy = RotationPolicy.from_json(obj.policy) if obj.policy else None
        # The new version keeps the key_ops its type supports: a key stored before kluis checked
        # key_ops against the type (an EC key with wrapKey) still rotates, scheduler included.
        supported = SUPPORTED_KEY_OPS[key_type.family]
        changes = KeyChanges(
            key_ops=[op for op in latest.props["key_ops"] if op in supported],
            tags=dict(latest.tags),
            exportable=bool(latest.props.get("exportable")),
            release_policy=latest.props.get("release_policy") or UNSET,
            exp=self._clock.now() + policy.expiry_time if policy and policy.expiry_time else None,
        )
        return self._add(vault, name, key_type.value, material, changes)

    def get_rotation_policy(self, vault: VaultRecord, name: str) -> tuple[str, dict[str, Any] | None]:
        """GetKeyRotationPolicy (keys/getrotationpolicy): (the key's stored name, the stored policy
        document), or (name, None) when none was ever set: the caller answers Key Vault's default
        (``default_rotation_policy``), which is not a stored object and so has no id."""
        obj, _ = self.lifecycle.read(vault, name)
        if obj.policy:
            doc: dict[str, Any] = orjson.loads(obj.policy)
            return obj.name, doc
        return obj.name, None

    @staticmethod
    def default_rotation_policy() -> dict[str, Any]:
        """What Key Vault answers for a key that never had a policy: no ``id``, no ``created`` /
        ``updated``. A recorded session in azure-sdk-for-js (sdk/keyvault/keyvault-keys recordings, the
        rotation-policy tracing test, 2021-08-04, x-ms-keyvault-service-version 1.9.48.0) shows
        GET .../rotationpolicy on a just-created key answering ``{"lifetimeActions":null,"attributes":null}``:
        no id and no timestamps, which is how the SDK's ``KeyRotationPolicy.id`` is None for "never set".
        kluis keeps its documented default action (notify 30 days before expiry, the spec's
        KeyRotationPolicy description) and adds no id or timestamps."""
        return copy.deepcopy(DEFAULT_POLICY)

    def update_rotation_policy(self, vault: VaultRecord, name: str, body: Any) -> tuple[str, dict[str, Any]]:
        """UpdateKeyRotationPolicy (keys/setrotationpolicy): (stored name, policy document); the next
        rotation is scheduled at once."""
        policy = parse_policy(body)
        obj, _ = self.lifecycle.read(vault, name)
        now = self._clock.now()
        created = orjson.loads(obj.policy)["attributes"].get("created", now) if obj.policy else now
        policy.document["attributes"].update({"created": created, "updated": now})
        obj, _ = self.lifecycle.set_policy(vault, name, policy.to_json())
        return obj.name, policy.document

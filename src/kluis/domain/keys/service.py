"""Keys: the aggregate of versions, its soft-delete lifecycle, rotation and backup.

Every method takes the resolved vault and the verified caller, checks the caller's access
policy first (fail closed), then decides existence and state. Nothing here knows HTTP or SQL.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import OrderedDict
from typing import Any

import orjson

from kluis.crypto import CryptoError, KeyMaterial, KeyPool, KeyType, Sealer, b64url_decode, from_jwk, generate
from kluis.crypto.algorithms import Curve
from kluis.domain.clock import Clock
from kluis.domain.errors import BadParameter, Conflict, Forbidden, NotFound
from kluis.domain.keys.rotation import DEFAULT_POLICY, RotationPolicy, parse_policy
from kluis.domain.paging import decode_token, encode_token
from kluis.domain.permissions import Caller, require
from kluis.domain.views import UNSET, DeletedInfo, KeyChanges, KeyView, Page, is_set
from kluis.store import KeyRecord, KeyVersionRecord, Store, Transaction, VaultRecord

__all__ = [
    "DEFAULT_KEY_OPS",
    "RELEASE_POLICY_CONTENT_TYPE",
    "KeyService",
    "check_ops",
    "check_release_policy",
    "check_tags",
    "key_not_found",
    "recovery_level",
    "validate_name",
]

_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_OPS = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export")
# What Key Vault fills in when a create/import names no key_ops.
DEFAULT_KEY_OPS = {
    "RSA": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
    "EC": ["sign", "verify"],
    "oct": ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
}
MAX_PAGE = 25
# KeyReleasePolicy.contentType when the caller names none (the spec's default).
RELEASE_POLICY_CONTENT_TYPE = "application/json; charset=utf-8"
MAX_TAGS = 15
MAX_BACKUP_VERSIONS = 500
_CACHE_SIZE = 4096


def validate_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise BadParameter(f"The request URI contains an invalid name: {name}")
    return name


def recovery_level(vault: VaultRecord) -> str:
    custom = "CustomizedRecoverable" if vault.retention_days < 90 else "Recoverable"
    return custom if vault.purge_protection else custom + "+Purgeable"


def key_not_found(name: str, version: str | None = None) -> NotFound:
    """Key Vault's 404 for a key (or one version of it) that does not exist or is deleted."""
    ident = f"{name}/{version}" if version else name
    return NotFound(
        f"A key with (name/id) {ident} was not found in this key vault. If you recently deleted this key "
        "you may be able to recover it using the correct recovery command. For help resolving this issue, "
        "please see https://go.microsoft.com/fwlink/?linkid=2125182",
        code="KeyNotFound",
    )


def _deleted_not_found(name: str) -> NotFound:
    return NotFound(f"Deleted Key not found: {name}", code="KeyNotFound")


def _is_deleted_conflict(name: str) -> Conflict:
    return Conflict(
        f"Key {name} is currently in a deleted but recoverable state, and its name cannot be reused; "
        "in this state, the key can only be recovered or purged.",
        inner_code="ObjectIsDeletedButRecoverable",
    )


def check_tags(tags: Any) -> dict[str, str]:
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise BadParameter("tags must be an object whose values are strings.")
    if len(tags) > MAX_TAGS:
        raise BadParameter(f"A key can have at most {MAX_TAGS} tags.")
    for k, v in tags.items():
        if len(k) > 256 or len(v) > 256:
            raise BadParameter("Tag names and values can be at most 256 characters.")
    return dict(tags)


def check_ops(ops: Any) -> list[str]:
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


class KeyService:
    """The keys data plane of every vault."""

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        clock: Clock,
        *,
        pool: KeyPool | None = None,
        backup_key: bytes,
        tenant_id: str,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._clock = clock
        self._pool = pool
        self._backup_key = backup_key
        self._tenant_id = tenant_id
        self._cache: OrderedDict[tuple[str, str, str], KeyMaterial] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- helpers ---------------------------------------------------------------------------
    def _require(self, tx: Transaction, vault: VaultRecord, caller: Caller, permission: str) -> None:
        require(tx.get_policy(vault.vault_id, caller.object_id), vault, caller, "keys", permission)

    @staticmethod
    def _context(vault_id: str, name: str, version: str) -> bytes:
        return f"kluis/key/{vault_id}/{name.lower()}/{version}".encode()

    def _view(self, vault: VaultRecord, key: KeyRecord, v: KeyVersionRecord) -> KeyView:
        deleted = None
        if key.deleted_at is not None and key.scheduled_purge_at is not None:
            deleted = DeletedInfo(key.deleted_at, key.scheduled_purge_at)
        return KeyView(
            name=key.name,
            version=v.version,
            kty=v.kty,
            jwk=orjson.loads(v.public_jwk),
            key_ops=orjson.loads(v.key_ops),
            enabled=v.enabled,
            nbf=v.nbf,
            exp=v.exp,
            created=v.created,
            updated=v.updated,
            recovery_level=recovery_level(vault),
            recoverable_days=vault.retention_days,
            tags=orjson.loads(v.tags),
            exportable=v.exportable,
            release_policy=json.loads(v.release_policy) if v.release_policy else None,
            deleted=deleted,
        )

    def _live(self, tx: Transaction, vault: VaultRecord, name: str) -> KeyRecord:
        key = tx.get_key(vault.vault_id, name)
        if key is None or key.deleted_at is not None:
            raise key_not_found(name)
        return key

    def _version(self, tx: Transaction, vault: VaultRecord, key: KeyRecord, version: str | None) -> KeyVersionRecord:
        wanted = version or key.latest_version
        v = tx.get_version(vault.vault_id, key.name, wanted)
        if v is None:
            raise key_not_found(key.name, version)
        return v

    # -- for the other key services (backup/restore, release) ------------------------------------
    def live_key(self, tx: Transaction, vault: VaultRecord, name: str) -> KeyRecord:
        """The key row if it exists and is not deleted; KeyNotFound otherwise."""
        return self._live(tx, vault, name)

    def view(self, vault: VaultRecord, key: KeyRecord, v: KeyVersionRecord) -> KeyView:
        return self._view(vault, key, v)

    def seal(self, vault_id: str, name: str, version: str, material: KeyMaterial) -> bytes:
        """Material sealed for one version's row (bound to vault, name and version)."""
        return self._sealer.seal(material.to_bytes(), context=self._context(vault_id, name, version))

    def _forget(self, vault_id: str, name: str) -> None:
        with self._cache_lock:
            for k in [k for k in self._cache if k[0] == vault_id and k[1] == name.lower()]:
                del self._cache[k]

    def material(self, vault_id: str, v: KeyVersionRecord) -> KeyMaterial:
        """The unsealed key for one version, from a bounded per-process cache.

        Key material of a version never changes, so caching it is safe; every use still reads the
        version's attributes from the store, so a disabled, expired or deleted key is refused
        even while its material sits in the cache.
        """
        ident = (vault_id, v.name.lower(), v.version)
        with self._cache_lock:
            hit = self._cache.get(ident)
            if hit is not None:
                self._cache.move_to_end(ident)
                return hit
        raw = self._sealer.unseal(v.sealed, context=self._context(vault_id, v.name, v.version))
        family = KeyType(v.kty).family
        curve = Curve(json.loads(v.public_jwk)["crv"]) if family == "EC" else None
        mat = KeyMaterial.load(family, raw, curve=curve)
        with self._cache_lock:
            self._cache[ident] = mat
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return mat

    def _new_version(
        self,
        tx: Transaction,
        vault: VaultRecord,
        name: str,
        kty: str,
        material: KeyMaterial,
        changes: KeyChanges,
        *,
        previous: KeyRecord | None,
        now: int,
    ) -> tuple[KeyRecord, KeyVersionRecord]:
        version = uuid.uuid4().hex
        family = KeyType(kty).family
        ops = changes.key_ops if is_set(changes.key_ops) else list(DEFAULT_KEY_OPS[family])
        exportable = changes.exportable if isinstance(changes.exportable, bool) else False
        release = changes.release_policy if is_set(changes.release_policy) else None
        if exportable and not release and previous is None:
            raise BadParameter("Release policy must be provided when creating the first version of an exportable key.")
        if release and not exportable:
            raise BadParameter("AKV.SKR.1005: Non-exportable keys must not have release policy.")
        jwk = material.public_jwk()
        rec = KeyVersionRecord(
            vault_id=vault.vault_id,
            name=name,
            version=version,
            kty=kty,
            public_jwk=json.dumps(jwk, separators=(",", ":")),
            sealed=self._sealer.seal(material.to_bytes(), context=self._context(vault.vault_id, name, version)),
            key_ops=json.dumps(ops),
            enabled=changes.enabled if isinstance(changes.enabled, bool) else True,
            nbf=changes.nbf if is_set(changes.nbf) else None,  # type: ignore[arg-type]
            exp=changes.exp if is_set(changes.exp) else None,  # type: ignore[arg-type]
            created=now,
            updated=now,
            tags=json.dumps(changes.tags if is_set(changes.tags) else {}),
            exportable=exportable,
            release_policy=json.dumps(release) if release else None,
        )
        tx.add_version(rec)
        policy = RotationPolicy.from_json(previous.rotation_policy) if previous and previous.rotation_policy else None
        key = KeyRecord(
            vault_id=vault.vault_id,
            name=previous.name if previous else name,
            latest_version=version,
            created=previous.created if previous else now,
            updated=now,
            rotation_policy=previous.rotation_policy if previous else None,
            rotate_at=policy.next_rotation(created=now, exp=rec.exp) if policy else None,
        )
        tx.put_key(key)
        return key, rec

    def _add(
        self,
        vault: VaultRecord,
        caller: Caller | None,
        permission: str,
        name: str,
        kty: str,
        material: KeyMaterial,
        changes: KeyChanges,
    ) -> KeyView:
        with self._store.write() as tx:
            if caller is not None:
                self._require(tx, vault, caller, permission)
            previous = tx.get_key(vault.vault_id, name)
            if previous is not None and previous.deleted_at is not None:
                raise _is_deleted_conflict(name)
            key, rec = self._new_version(
                tx, vault, name, kty, material, changes, previous=previous, now=self._clock.now()
            )
            return self._view(vault, key, rec)

    # -- create / import ----------------------------------------------------------------------
    def create_key(
        self,
        vault: VaultRecord,
        caller: Caller,
        name: str,
        *,
        kty: str,
        size: int | None = None,
        curve: str | None = None,
        public_exponent: int | None = None,
        changes: KeyChanges | None = None,
    ) -> KeyView:
        """CreateKey (keys/create): a new key, or a new version of an existing one."""
        validate_name(name)
        changes = changes or KeyChanges()
        with self._store.read() as tx:  # fail fast before spending tens of ms on key generation
            self._require(tx, vault, caller, "create")
            existing = tx.get_key(vault.vault_id, name)
            if existing is not None and existing.deleted_at is not None:
                raise _is_deleted_conflict(name)
        key_type = self._key_type(kty)
        material = self._generate(key_type, size, curve, public_exponent)
        return self._add(vault, caller, "create", name, key_type.value, material, changes)

    @staticmethod
    def _key_type(kty: str) -> KeyType:
        try:
            return KeyType(kty)
        except ValueError:
            raise BadParameter(
                f"Invalid key type '{kty}'. Allowed values: {', '.join(t.value for t in KeyType)}."
            ) from None

    def _generate(self, kty: KeyType, size: int | None, curve: str | None, public_exponent: int | None) -> KeyMaterial:
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
        caller: Caller,
        name: str,
        jwk: dict[str, Any],
        *,
        hsm: bool | None = None,
        changes: KeyChanges | None = None,
    ) -> KeyView:
        """ImportKey (keys/import): a JWK with its private parts becomes a new version."""
        validate_name(name)
        changes = changes or KeyChanges()
        if not isinstance(jwk, dict):
            raise BadParameter("The 'key' property must be a JSON Web Key object.")
        kty = self._key_type(str(jwk.get("kty", "")))
        try:
            material = from_jwk(jwk)
        except CryptoError as e:
            raise BadParameter(e.message) from None
        if hsm and not kty.value.endswith("-HSM"):
            kty = KeyType(kty.value + "-HSM")
        if not is_set(changes.key_ops) and jwk.get("key_ops") is not None:
            changes.key_ops = check_ops(jwk["key_ops"])
        return self._add(vault, caller, "import", name, kty.value, material, changes)

    # -- read ---------------------------------------------------------------------------------
    def get_key(self, vault: VaultRecord, caller: Caller, name: str, version: str | None = None) -> KeyView:
        """GetKey (keys/get): public part and attributes of the latest or a given version."""
        with self._store.read() as tx:
            self._require(tx, vault, caller, "get")
            key = self._live(tx, vault, name)
            return self._view(vault, key, self._version(tx, vault, key, version))

    def get_key_unchecked(self, vault: VaultRecord, name: str, version: str | None = None) -> KeyView:
        """The live key (latest or given version) without a permission check: for callers that made their own."""
        with self._store.read() as tx:
            key = self._live(tx, vault, name)
            return self._view(vault, key, self._version(tx, vault, key, version))

    def material_for(self, vault: VaultRecord, name: str, version: str | None = None) -> KeyMaterial:
        """The private material of a live key's version, without a permission check (see get_key_unchecked)."""
        with self._store.read() as tx:
            key = self._live(tx, vault, name)
            v = self._version(tx, vault, key, version)
        return self.material(vault.vault_id, v)

    def list_keys(
        self, vault: VaultRecord, caller: Caller, *, maxresults: int | None, token: str | None
    ) -> Page[KeyView]:
        """GetKeys (keys/list): one item per key name, latest version's attributes."""
        return self._list(vault, caller, deleted=False, maxresults=maxresults, token=token)

    def list_deleted_keys(
        self, vault: VaultRecord, caller: Caller, *, maxresults: int | None, token: str | None
    ) -> Page[KeyView]:
        """GetDeletedKeys (keys/list)."""
        return self._list(vault, caller, deleted=True, maxresults=maxresults, token=token)

    def _list(
        self, vault: VaultRecord, caller: Caller, *, deleted: bool, maxresults: int | None, token: str | None
    ) -> Page[KeyView]:
        limit = _page_size(maxresults)
        with self._store.read() as tx:
            self._require(tx, vault, caller, "list")
            keys = tx.list_keys(vault.vault_id, deleted=deleted, after=decode_token(token), limit=limit + 1)
            page: Page[KeyView] = Page()
            for key in keys[:limit]:
                v = tx.get_version(vault.vault_id, key.name, key.latest_version)
                if v is not None:
                    page.items.append(self._view(vault, key, v))
            if len(keys) > limit:
                page.next_token = encode_token(keys[limit - 1].name.lower())
            return page

    def list_versions(
        self, vault: VaultRecord, caller: Caller, name: str, *, maxresults: int | None, token: str | None
    ) -> Page[KeyView]:
        """GetKeyVersions (keys/list)."""
        limit = _page_size(maxresults)
        marker = decode_token(token)
        if marker is not None and not marker.isdigit():
            raise BadParameter("The $skiptoken is invalid; use the nextLink returned by the previous page.")
        after = int(marker) if marker is not None else None
        with self._store.read() as tx:
            self._require(tx, vault, caller, "list")
            key = self._live(tx, vault, name)
            rows = tx.list_versions(vault.vault_id, name, after_seq=after, limit=limit + 1)
            page = Page(items=[self._view(vault, key, r) for r in rows[:limit]])
            if len(rows) > limit:
                page.next_token = encode_token(str(rows[limit - 1].seq))
            return page

    # -- update -------------------------------------------------------------------------------
    def update_key(
        self, vault: VaultRecord, caller: Caller, name: str, version: str | None, changes: KeyChanges
    ) -> KeyView:
        """UpdateKey (keys/update): PATCH semantics, absent means unchanged; material never changes."""
        with self._store.write() as tx:
            self._require(tx, vault, caller, "update")
            key = self._live(tx, vault, name)
            v = self._version(tx, vault, key, version)
            if is_set(changes.key_ops):
                v.key_ops = json.dumps(changes.key_ops)
            if isinstance(changes.enabled, bool):
                v.enabled = changes.enabled
            if is_set(changes.nbf):
                v.nbf = changes.nbf  # type: ignore[assignment]
            if is_set(changes.exp):
                v.exp = changes.exp  # type: ignore[assignment]
            if is_set(changes.tags):
                v.tags = json.dumps(changes.tags)
            if isinstance(changes.exportable, bool) and changes.exportable != v.exportable:
                raise BadParameter("The exportable attribute of a key cannot be changed after the key is created.")
            if is_set(changes.release_policy):
                current = json.loads(v.release_policy) if v.release_policy else None
                if current and current.get("immutable"):
                    raise Forbidden("The release policy of this key is immutable and cannot be changed.")
                v.release_policy = json.dumps(changes.release_policy) if changes.release_policy else None
            if v.release_policy and not v.exportable:
                raise BadParameter("AKV.SKR.1005: Non-exportable keys must not have release policy.")
            if is_set(changes.release_policy) and v.exportable and not v.release_policy:
                raise BadParameter("Exportable keys must have release policy.")
            v.updated = self._clock.now()
            tx.update_version(v)
            if v.version == key.latest_version and key.rotation_policy:
                policy = RotationPolicy.from_json(key.rotation_policy)
                key.rotate_at = policy.next_rotation(created=v.created, exp=v.exp)
                tx.put_key(key)
        self._forget(vault.vault_id, name)
        return self._view(vault, key, v)

    # -- soft delete --------------------------------------------------------------------------
    def delete_key(self, vault: VaultRecord, caller: Caller, name: str) -> KeyView:
        """DeleteKey (keys/delete): every version moves to the deleted collection at once."""
        with self._store.write() as tx:
            self._require(tx, vault, caller, "delete")
            key = self._live(tx, vault, name)
            now = self._clock.now()
            key.deleted_at = now
            key.scheduled_purge_at = now + vault.retention_days * 86400
            key.rotate_at = None
            key.updated = now
            tx.put_key(key)
            view = self._view(vault, key, self._version(tx, vault, key, None))
        self._forget(vault.vault_id, name)
        return view

    def _deleted(self, tx: Transaction, vault: VaultRecord, name: str) -> KeyRecord:
        key = tx.get_key(vault.vault_id, name)
        if key is None or key.deleted_at is None:
            raise _deleted_not_found(name)
        return key

    def get_deleted_key(self, vault: VaultRecord, caller: Caller, name: str) -> KeyView:
        """GetDeletedKey (keys/get)."""
        with self._store.read() as tx:
            self._require(tx, vault, caller, "get")
            key = self._deleted(tx, vault, name)
            return self._view(vault, key, self._version(tx, vault, key, None))

    def recover_deleted_key(self, vault: VaultRecord, caller: Caller, name: str) -> KeyView:
        """RecoverDeletedKey (keys/recover): back to the live collection with all versions."""
        with self._store.write() as tx:
            self._require(tx, vault, caller, "recover")
            key = self._deleted(tx, vault, name)
            key.deleted_at = None
            key.scheduled_purge_at = None
            key.updated = self._clock.now()
            latest = self._version(tx, vault, key, None)
            if key.rotation_policy:
                key.rotate_at = RotationPolicy.from_json(key.rotation_policy).next_rotation(
                    created=latest.created, exp=latest.exp
                )
            tx.put_key(key)
            return self._view(vault, key, latest)

    def purge_deleted_key(self, vault: VaultRecord, caller: Caller, name: str) -> None:
        """PurgeDeletedKey (keys/purge): gone for good; refused while purge protection is on."""
        with self._store.write() as tx:
            self._require(tx, vault, caller, "purge")
            self._deleted(tx, vault, name)
            if vault.purge_protection:
                raise Forbidden(
                    'Operation "purge" is not allowed because purge protection is enabled for this vault. '
                    "Key Vault service will automatically purge it after the retention period has passed. "
                    f"Vault: {vault.name};location={vault.location}"
                )
            tx.delete_key_row(vault.vault_id, name)
        self._forget(vault.vault_id, name)

    # -- rotation -----------------------------------------------------------------------------
    def rotate_key(self, vault: VaultRecord, caller: Caller | None, name: str) -> KeyView:
        """RotateKey (keys/rotate): a new version of the same type and size, per the key's policy."""
        validate_name(name)
        with self._store.read() as tx:
            if caller is not None:
                self._require(tx, vault, caller, "rotate")
            key = self._live(tx, vault, name)
            latest = self._version(tx, vault, key, None)
        family = KeyType(latest.kty).family
        if family == "oct":
            raise BadParameter("Symmetric keys cannot be rotated by Key Vault; import a new version instead.")
        current = self.material(vault.vault_id, latest)
        key_type = KeyType(latest.kty)
        material = self._generate(
            key_type,
            current.key_size if family == "RSA" else None,
            current.curve.value if current.curve else None,
            None,
        )
        policy = RotationPolicy.from_json(key.rotation_policy) if key.rotation_policy else None
        now = self._clock.now()
        changes = KeyChanges(
            key_ops=json.loads(latest.key_ops),
            tags=json.loads(latest.tags),
            exportable=latest.exportable,
            release_policy=json.loads(latest.release_policy) if latest.release_policy else UNSET,
            exp=now + policy.expiry_time if policy and policy.expiry_time else None,
        )
        return self._add(vault, caller, "rotate", name, key_type.value, material, changes)

    def get_rotation_policy(self, vault: VaultRecord, caller: Caller, name: str) -> dict[str, Any]:
        """GetKeyRotationPolicy (keys/getrotationpolicy); Key Vault's default when none was set."""
        with self._store.read() as tx:
            self._require(tx, vault, caller, "getrotationpolicy")
            key = self._live(tx, vault, name)
        if key.rotation_policy:
            doc: dict[str, Any] = json.loads(key.rotation_policy)
            return doc
        return json.loads(json.dumps(DEFAULT_POLICY))  # type: ignore[no-any-return]

    def update_rotation_policy(self, vault: VaultRecord, caller: Caller, name: str, body: Any) -> dict[str, Any]:
        """UpdateKeyRotationPolicy (keys/setrotationpolicy); the next rotation is scheduled at once."""
        policy = parse_policy(body)
        with self._store.write() as tx:
            self._require(tx, vault, caller, "setrotationpolicy")
            key = self._live(tx, vault, name)
            latest = self._version(tx, vault, key, None)
            now = self._clock.now()
            created = json.loads(key.rotation_policy)["attributes"].get("created", now) if key.rotation_policy else now
            policy.document["attributes"].update({"created": created, "updated": now})
            key.rotation_policy = policy.to_json()
            key.rotate_at = policy.next_rotation(created=latest.created, exp=latest.exp)
            tx.put_key(key)
        return policy.document

    # -- housekeeping -------------------------------------------------------------------------
    def run_due(self, vaults_by_id: dict[str, VaultRecord], *, limit: int = 500) -> tuple[int, int]:
        """Purge keys whose retention ended and rotate keys whose policy says so. Returns counts."""
        now = self._clock.now()
        with self._store.read() as tx:
            purge, rotate = tx.keys_due(now=now, limit=limit)
        purged = rotated = 0
        for key in purge:
            with self._store.write() as tx:
                fresh = tx.get_key(key.vault_id, key.name)
                if fresh and fresh.scheduled_purge_at is not None and fresh.scheduled_purge_at <= now:
                    tx.delete_key_row(key.vault_id, key.name)
                    purged += 1
            self._forget(key.vault_id, key.name)
        for key in rotate:
            vault = vaults_by_id.get(key.vault_id)
            if vault is None:
                continue
            with self._store.read() as tx:
                fresh = tx.get_key(key.vault_id, key.name)
            if fresh is None or fresh.rotate_at is None or fresh.rotate_at > now or fresh.deleted_at is not None:
                continue
            try:
                self.rotate_key(vault, None, key.name)
                rotated += 1
            except BadParameter:
                with self._store.write() as tx:  # not rotatable (e.g. oct): stop retrying every tick
                    fresh.rotate_at = None
                    tx.put_key(fresh)
        return purged, rotated


def _page_size(maxresults: int | None) -> int:
    if maxresults is None:
        return MAX_PAGE
    if not 1 <= maxresults <= MAX_PAGE:
        raise BadParameter(f"maxresults must be between 1 and {MAX_PAGE}.")
    return maxresults


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

"""The data keys under the key-encryption key: opening them at start, creating them, rotating the KEK.

The database keeps every data key only wrapped by the KEK (``wrapped_keys``) and the KEK's
fingerprint (setting ``kek_fingerprint``); the KEK itself stays in its source
(:mod:`kluis.crypto.kek`). Purposes:

- ``seal``: seals private keys, symmetric keys and secret values (version-2 blobs carry its id);
- ``seal-v1``: only in databases from before data keys: their old file KEK, registered as a data
  key on upgrade so the version-1 blobs sealed directly under it still open;
- ``backup``: backup blobs (``BackupKey`` / ``BackupSecret``);
- ``audit``: the MAC key of the audit chains.

On upgrade the backup and audit keys are the values kluis derived from the KEK before (so old
backups restore and old chains verify); a new database gets random ones. Rotating the KEK re-wraps
every data key in one transaction: running servers keep their unwrapped keys and go on serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from kluis.crypto import CryptoError, Sealer
from kluis.crypto.kek import KekUnavailable, KeyEncryptionKey
from kluis.crypto.seal import derive_key, new_dek
from kluis.store import Store, WrappedKeyRecord

__all__ = [
    "KEK_CHECK_SETTING",
    "Keyring",
    "KeyringError",
    "open_keyring",
    "rotate_kek",
]

KEK_CHECK_SETTING = "kek_fingerprint"  # the database's record of which KEK wraps its data keys
SEAL, SEAL_V1, BACKUP, AUDIT = "seal", "seal-v1", "backup", "audit"
SIGNING_KEY_SETTING = "token_signing_key"  # sealed by the first start: "this database holds sealed data"
# The labels under which kluis derived the backup and audit keys from the KEK before data keys existed.
LEGACY_LABELS = {BACKUP: b"kluis/key-backup", AUDIT: b"kluis/audit-chain"}


class KeyringError(Exception):
    """The data keys cannot be opened or rotated as asked: one line naming the KEK source and fingerprints."""


@dataclass(frozen=True)
class Keyring:
    """The unwrapped data keys of one database: a sealer for stored material, the backup and the
    audit key (32 bytes each), and the fingerprint of the KEK that unwrapped them."""

    sealer: Sealer
    backup_key: bytes
    audit_key: bytes
    kek_fingerprint: str


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def open_keyring(store: Store, kek: KeyEncryptionKey, *, create: bool) -> Keyring:
    """The database's data keys, unwrapped by ``kek``.

    A database without data keys gets them: adopted from the KEK's own bytes when it already holds
    data sealed before data keys (needs a software KEK: the one that sealed it), random when it is
    new (only with ``create``). KeyringError, changing nothing, when ``kek`` is not the database's
    KEK (its fingerprint differs from the recorded one, or it does not unwrap the keys).
    """
    with store.read() as tx:
        rows = tx.list_wrapped_keys()
        expected = tx.get_setting(KEK_CHECK_SETTING)
    if expected is not None and expected.decode() != kek.fingerprint:
        raise KeyringError(
            f"{_cap(kek.label)} is not the key of the database: its fingerprint is {kek.fingerprint}, "
            f"the database expects {expected.decode()}. Give kluis that key-encryption key."
        )
    if not rows:
        rows = _first_keys(store, kek, create=create)
    try:
        plain = kek.unwrap([r.wrapped for r in rows])
    except KekUnavailable as e:
        raise KeyringError(str(e)) from None
    return _build(store, kek, rows, plain)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _build(store: Store, kek: KeyEncryptionKey, rows: list[WrappedKeyRecord], plain: list[bytes]) -> Keyring:
    by_purpose: dict[str, list[tuple[int, bytes]]] = {}
    for row, key in zip(rows, plain, strict=True):
        by_purpose.setdefault(row.purpose, []).append((row.key_id, key))
    missing = [p for p in (SEAL, BACKUP, AUDIT) if p not in by_purpose]
    if missing:
        raise KeyringError(f"The database's data keys are incomplete (no {', '.join(missing)} key).")
    seal_id, seal_key = by_purpose[SEAL][-1]  # the newest seal key seals; every seal key unseals
    v1 = by_purpose.get(SEAL_V1)

    def resolve(key_id: int) -> bytes | None:  # a seal key added after this start (another node made it)
        with store.read() as tx:
            row = next((r for r in tx.list_wrapped_keys() if r.key_id == key_id and r.purpose == SEAL), None)
        if row is None:
            return None
        try:
            return kek.unwrap([row.wrapped])[0]
        except KekUnavailable:
            return None

    sealer = Sealer(
        seal_key,
        key_id=seal_id,
        others=dict(by_purpose[SEAL]),
        v1_key=v1[-1][1] if v1 else None,
        resolve=resolve,
    )
    return Keyring(sealer, by_purpose[BACKUP][-1][1], by_purpose[AUDIT][-1][1], kek.fingerprint)


def _first_keys(store: Store, kek: KeyEncryptionKey, *, create: bool) -> list[WrappedKeyRecord]:
    """Create the data keys of a database that has none (new, or from before data keys)."""
    with store.read() as tx:
        expected = tx.get_setting(KEK_CHECK_SETTING)
        sealed = tx.get_setting(SIGNING_KEY_SETTING)
    legacy = expected is not None or sealed is not None
    plan: list[tuple[str, bytes]]
    if legacy:
        raw = kek.raw()
        if raw is None:
            raise KeyringError(
                f"The database holds data sealed directly under a key file (before data keys), which "
                f"{kek.label} cannot open: start kluis once with that key file (or env: source) to upgrade, "
                "then move to the token with `kluis kek rotate --to pkcs11:...`."
            )
        if expected is None and sealed is not None:  # from before the check value: the sealed signing key decides
            try:
                Sealer(raw).unseal(sealed, context=b"kluis/token-signing-key")
            except CryptoError:
                raise KeyringError(
                    f"{_cap(kek.label)} (fingerprint {kek.fingerprint}) cannot open the data sealed in this database."
                ) from None
        plan = [
            (SEAL_V1, raw),
            (SEAL, new_dek()),
            (BACKUP, derive_key(raw, LEGACY_LABELS[BACKUP])),
            (AUDIT, derive_key(raw, LEGACY_LABELS[AUDIT])),
        ]
    elif not create:
        raise KeyringError("The database holds no data keys yet; start `kluis serve` first.")
    else:
        plan = [(SEAL, new_dek()), (BACKUP, new_dek()), (AUDIT, new_dek())]
    wrapped = kek.wrap([key for _, key in plan])  # outside the transaction: a token may be slow
    now = _now_ms()
    rows = [
        WrappedKeyRecord(i, purpose, w, kek.fingerprint, now)
        for i, ((purpose, _), w) in enumerate(zip(plan, wrapped, strict=True), 1)
    ]
    with store.write() as tx:
        recorded = tx.get_setting(KEK_CHECK_SETTING)
        if recorded is not None and recorded.decode() != kek.fingerprint:  # another node started first with its own
            raise KeyringError(
                f"{_cap(kek.label)} is not the key of the database: its fingerprint is {kek.fingerprint}, "
                f"the database expects {recorded.decode()} (another node initialised it first). Use that node's KEK."
            )
        existing = tx.list_wrapped_keys()
        if existing:  # another node sharing the database made them a moment ago
            return existing
        for row in rows:
            tx.add_wrapped_key(row)
        if recorded is None:
            tx.put_setting(KEK_CHECK_SETTING, kek.fingerprint.encode())
    return rows


def rotate_kek(
    store: Store, old: KeyEncryptionKey, new: KeyEncryptionKey, *, before_commit: Callable[[], None] | None = None
) -> dict[str, object]:
    """Re-wrap every data key of the database under ``new``, in one transaction, and record ``new``'s fingerprint.

    ``old`` must be the database's KEK (it unwraps the keys). The new wrapping is checked (``new``
    unwraps it to the same keys) before anything is written; ``before_commit`` runs inside the
    transaction, last (e.g. to put a new key file in place). Returns ``{"from", "to", "dataKeys"}``.
    KeyringError, changing nothing, for a wrong ``old``, ``new`` equal to ``old`` or a ``new`` that
    cannot wrap.
    """
    open_keyring(store, old, create=False)  # checks old; adopts a database from before data keys
    if new.fingerprint == old.fingerprint:
        raise KeyringError(f"{_cap(new.label)} is the database's key-encryption key already ({new.fingerprint}).")
    with store.read() as tx:
        rows = tx.list_wrapped_keys()
    try:
        plain = old.unwrap([r.wrapped for r in rows])
        rewrapped = new.wrap(plain)
        if new.unwrap(rewrapped) != plain:
            raise KeyringError(f"{_cap(new.label)} does not give back the data keys it wrapped; nothing changed.")
    except KekUnavailable as e:
        raise KeyringError(str(e)) from None
    with store.write() as tx:
        now = tx.list_wrapped_keys()
        recorded = tx.get_setting(KEK_CHECK_SETTING)
        if [(r.key_id, r.wrapped) for r in now] != [(r.key_id, r.wrapped) for r in rows] or (
            recorded is not None and recorded.decode() != old.fingerprint
        ):
            raise KeyringError("The data keys changed while rotating (another rotation?); nothing changed, try again.")
        for row, wrapped in zip(rows, rewrapped, strict=True):
            tx.rewrap_key(row.key_id, wrapped, new.fingerprint)
        tx.put_setting(KEK_CHECK_SETTING, new.fingerprint.encode())
        if before_commit is not None:
            before_commit()
    return {"from": old.fingerprint, "to": new.fingerprint, "dataKeys": len(rows)}

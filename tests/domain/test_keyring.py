"""Data keys under the KEK: created for a new database, adopted from a database sealed before them,
refused under a wrong KEK (changing nothing), and re-wrapped by a KEK rotation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from kluis.crypto import CryptoError, Sealer
from kluis.crypto.kek import KekUnavailable, SoftwareKek, fingerprint_of
from kluis.crypto.seal import derive_key, new_kek
from kluis.domain.keyring import KEK_CHECK_SETTING, KeyringError, open_keyring, rotate_kek
from kluis.store import SqliteStore, Store, WrappedKeyRecord
from kluis.store.memory import MemoryStore

CONTEXT = b"kluis/key/v/n/1"


def _kek(label: str = "the test KEK") -> SoftwareKek:
    return SoftwareKek(new_kek(), source="test:", label=label)


class TokenLike:
    """A KEK whose bytes this process cannot see (as on a PKCS#11 token): ``raw()`` is None."""

    def __init__(self) -> None:
        self._inner = _kek("the key 'k' on the PKCS#11 token 't'")
        self.source, self.label, self.fingerprint = "pkcs11:x", self._inner.label, self._inner.fingerprint

    def wrap(self, deks: Sequence[bytes]) -> list[bytes]:
        return self._inner.wrap(deks)

    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes]:
        return self._inner.unwrap(wrapped)

    def current_fingerprint(self) -> str:
        return self.fingerprint

    def raw(self) -> bytes | None:
        return None


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "k.db", synchronous="OFF")


def _rows(store: Store) -> list[WrappedKeyRecord]:
    with store.read() as tx:
        return tx.list_wrapped_keys()


def test_a_new_database_gets_random_data_keys_wrapped_by_the_kek(store: Store) -> None:
    kek = _kek()
    with pytest.raises(KeyringError, match="no data keys yet"):
        open_keyring(store, kek, create=False)
    ring = open_keyring(store, kek, create=True)
    rows = _rows(store)
    assert [(r.key_id, r.purpose, r.kek_fingerprint) for r in rows] == [
        (1, "seal", kek.fingerprint),
        (2, "backup", kek.fingerprint),
        (3, "audit", kek.fingerprint),
    ]
    with store.read() as tx:
        assert tx.get_setting(KEK_CHECK_SETTING) == kek.fingerprint.encode()
    plain = kek.unwrap([r.wrapped for r in rows])
    assert len(set(plain)) == 3 and ring.backup_key == plain[1] and ring.audit_key == plain[2]
    assert all(p not in r.wrapped for p, r in zip(plain, rows, strict=True))  # stored only wrapped
    blob = ring.sealer.seal(b"private", context=CONTEXT)
    assert blob[:5] == b"\x02\x00\x00\x00\x01"
    again = open_keyring(store, kek, create=True)  # a restart: the same keys, nothing added
    assert again.sealer.unseal(blob, context=CONTEXT) == b"private" and len(_rows(store)) == 3


def test_a_wrong_kek_is_refused_naming_it_and_the_expected_fingerprint(store: Store) -> None:
    kek = _kek()
    open_keyring(store, kek, create=True)
    before = _rows(store)
    wrong = _kek("the key-encryption key file /x/kek.key")
    with pytest.raises(KeyringError) as err:
        open_keyring(store, wrong, create=True)
    message = str(err.value)
    assert message.startswith("The key-encryption key file /x/kek.key is not the key of the database")
    assert f"its fingerprint is {wrong.fingerprint}, the database expects {kek.fingerprint}" in message
    assert _rows(store) == before


def _sealed_before_data_keys(store: Store, raw: bytes) -> bytes:
    """A database as kluis left it before data keys: blobs sealed under the KEK itself."""
    old = Sealer(raw)
    with store.write() as tx:
        tx.put_setting("token_signing_key", old.seal(b"signing key", context=b"kluis/token-signing-key"))
        tx.put_setting(KEK_CHECK_SETTING, fingerprint_of(raw).encode())
    return old.seal(b"an old private key", context=CONTEXT)


def test_a_database_from_before_data_keys_adopts_its_kek_and_derived_keys(store: Store) -> None:
    raw = new_kek()
    old_blob = _sealed_before_data_keys(store, raw)
    kek = SoftwareKek(raw, source="file:kek.key", label="the key file")
    ring = open_keyring(store, kek, create=False)
    assert [r.purpose for r in _rows(store)] == ["seal-v1", "seal", "backup", "audit"]
    assert ring.sealer.unseal(old_blob, context=CONTEXT) == b"an old private key"
    # the keys kluis derived from the KEK before: old backups restore, old audit chains verify
    assert ring.backup_key == Sealer(raw).derive(b"kluis/key-backup") == derive_key(raw, b"kluis/key-backup")
    assert ring.audit_key == Sealer(raw).derive(b"kluis/audit-chain")
    new_blob = ring.sealer.seal(b"new", context=CONTEXT)  # new material: a fresh data key, not the old KEK
    assert new_blob[:5] == b"\x02\x00\x00\x00\x02"
    with pytest.raises(CryptoError):
        Sealer(raw, key_id=2).unseal(new_blob, context=CONTEXT)


def test_adopting_needs_the_software_kek_that_sealed(store: Store) -> None:
    # the first release kept no check value: only the sealed signing key says which KEK sealed
    with store.write() as tx:
        tx.put_setting("token_signing_key", Sealer(new_kek()).seal(b"k", context=b"kluis/token-signing-key"))
    with pytest.raises(KeyringError, match=r"start kluis once with that key file .* `kluis kek rotate --to pkcs11"):
        open_keyring(store, TokenLike(), create=True)
    wrong = _kek("the key file /x/kek.key")
    with pytest.raises(KeyringError, match=r"The key file /x/kek.key .* cannot open the data sealed in this database"):
        open_keyring(store, wrong, create=True)
    with store.read() as tx:
        assert tx.list_wrapped_keys() == [] and tx.get_setting(KEK_CHECK_SETTING) is None


def test_rotation_rewraps_every_data_key_and_keeps_them(store: Store) -> None:
    old = _kek("the old KEK")
    ring = open_keyring(store, old, create=True)
    blob = ring.sealer.seal(b"private", context=CONTEXT)
    new = TokenLike()
    result = rotate_kek(store, old, new)
    assert result == {"from": old.fingerprint, "to": new.fingerprint, "dataKeys": 3}
    assert {r.kek_fingerprint for r in _rows(store)} == {new.fingerprint}
    after = open_keyring(store, new, create=False)
    assert after.sealer.unseal(blob, context=CONTEXT) == b"private"
    assert (after.backup_key, after.audit_key) == (ring.backup_key, ring.audit_key)
    with pytest.raises(KeyringError, match="the database expects"):
        open_keyring(store, old, create=False)
    with pytest.raises(KeyringError, match="the database expects"):  # old is no longer the database's KEK
        rotate_kek(store, old, _kek())
    with pytest.raises(KeyringError, match="already"):
        rotate_kek(store, new, new)


def test_a_failed_rotation_changes_nothing(store: Store) -> None:
    old = _kek()
    open_keyring(store, old, create=True)
    before = _rows(store)

    def boom() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        rotate_kek(store, old, _kek(), before_commit=boom)
    assert _rows(store) == before

    class Broken(TokenLike):
        def wrap(self, deks: Sequence[bytes]) -> list[bytes]:
            raise KekUnavailable("the token 't' refused")

    with pytest.raises(KeyringError, match="refused"):
        rotate_kek(store, old, Broken())
    assert _rows(store) == before
    with store.read() as tx:
        assert tx.get_setting(KEK_CHECK_SETTING) == old.fingerprint.encode()


def test_rotation_adopts_a_database_from_before_data_keys_first(store: Store) -> None:
    raw = new_kek()
    old_blob = _sealed_before_data_keys(store, raw)
    new = TokenLike()
    rotate_kek(store, SoftwareKek(raw, source="file:k", label="the key file"), new)
    ring = open_keyring(store, new, create=False)
    assert ring.sealer.unseal(old_blob, context=CONTEXT) == b"an old private key"
    assert ring.backup_key == derive_key(raw, b"kluis/key-backup")


def test_a_seal_key_added_later_is_found_by_id(store: Store) -> None:
    kek = _kek()
    ring = open_keyring(store, kek, create=True)
    extra = new_kek()
    with store.write() as tx:  # another node adds a seal key after this one started
        tx.add_wrapped_key(WrappedKeyRecord(4, "seal", kek.wrap([extra])[0], kek.fingerprint, 0))
    blob = Sealer(extra, key_id=4).seal(b"from the other node", context=CONTEXT)
    assert ring.sealer.unseal(blob, context=CONTEXT) == b"from the other node"
    assert open_keyring(store, kek, create=False).sealer.key_id == 4  # the newest seal key seals

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kluis.crypto.errors import OperationFailed
from kluis.crypto.seal import Sealer, new_kek

CONTEXT = b"kluis/key/vault1/name/0123"
CORRUPT = "sealed data is corrupt or was sealed under another key"


@pytest.fixture
def kek() -> bytes:
    return new_kek()


def test_round_trip_and_format(kek: bytes) -> None:
    sealer = Sealer(kek)
    blob = sealer.seal(b"secret material", context=CONTEXT)
    assert blob[0] == 1
    assert len(blob) == 1 + 12 + len(b"secret material") + 16
    assert sealer.unseal(blob, context=CONTEXT) == b"secret material"
    assert AESGCM(kek).decrypt(blob[1:13], blob[13:], CONTEXT) == b"secret material"
    assert sealer.seal(b"secret material", context=CONTEXT) != blob  # random nonce
    assert sealer.unseal(sealer.seal(b"", context=b""), context=b"") == b""


def test_wrong_context_fails(kek: bytes) -> None:
    sealer = Sealer(kek)
    blob = sealer.seal(b"secret", context=CONTEXT)
    with pytest.raises(OperationFailed) as info:
        sealer.unseal(blob, context=b"kluis/key/vault1/name/other")
    assert info.value.message == CORRUPT


@pytest.mark.parametrize("position", [0, 1, 12, 13, -1])
def test_tampered_byte_fails(kek: bytes, position: int) -> None:
    sealer = Sealer(kek)
    blob = bytearray(sealer.seal(b"secret", context=CONTEXT))
    blob[position] ^= 0x01
    with pytest.raises(OperationFailed, match="corrupt"):
        sealer.unseal(bytes(blob), context=CONTEXT)


def test_truncated_blob_fails(kek: bytes) -> None:
    sealer = Sealer(kek)
    blob = sealer.seal(b"secret", context=CONTEXT)
    for cut in (0, 1, 13, 28, len(blob) - 1):
        with pytest.raises(OperationFailed):
            sealer.unseal(blob[:cut], context=CONTEXT)


def test_other_kek_fails(kek: bytes) -> None:
    blob = Sealer(kek).seal(b"secret", context=CONTEXT)
    with pytest.raises(OperationFailed, match="sealed under another key"):
        Sealer(new_kek()).unseal(blob, context=CONTEXT)


@pytest.mark.parametrize("bad", [b"", b"x" * 16, b"x" * 31, b"x" * 33])
def test_kek_must_be_32_bytes(bad: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Sealer(bad)


def test_derive(kek: bytes) -> None:
    sealer = Sealer(kek)
    backup = sealer.derive(b"backup")
    assert len(backup) == 32
    assert backup == Sealer(kek).derive(b"backup")
    assert backup != sealer.derive(b"other")
    assert backup != kek
    assert backup != Sealer(new_kek()).derive(b"backup")


def test_new_kek_and_repr(kek: bytes) -> None:
    assert len(kek) == 32 and kek != new_kek()
    assert kek.hex() not in repr(Sealer(kek))


def test_data_key_blobs_carry_their_key_id(kek: bytes) -> None:
    sealer = Sealer(kek, key_id=7)
    blob = sealer.seal(b"material", context=CONTEXT)
    assert blob[0] == 2 and int.from_bytes(blob[1:5], "big") == 7 and len(blob) == 1 + 4 + 12 + len(b"material") + 16
    assert sealer.key_id == 7 and Sealer(kek).key_id is None
    assert sealer.unseal(blob, context=CONTEXT) == b"material"
    # the layout is AES-GCM under data key 7 with the context as associated data, nothing more
    assert AESGCM(kek).decrypt(blob[5:17], blob[17:], CONTEXT) == b"material"
    with pytest.raises(OperationFailed):
        sealer.unseal(blob, context=b"other")


def test_a_data_key_sealer_opens_every_key_it_knows_and_version_1_blobs_under_v1_key(kek: bytes) -> None:
    old, legacy = new_kek(), new_kek()
    from_old = Sealer(old, key_id=1).seal(b"old", context=CONTEXT)
    from_legacy = Sealer(legacy).seal(b"v1", context=CONTEXT)  # sealed before data keys
    sealer = Sealer(kek, key_id=2, others={1: old}, v1_key=legacy)
    assert sealer.unseal(from_old, context=CONTEXT) == b"old"
    assert sealer.unseal(from_legacy, context=CONTEXT) == b"v1"
    assert sealer.seal(b"x", context=CONTEXT)[:5] == b"\x02\x00\x00\x00\x02"  # new blobs: the newest key
    with pytest.raises(OperationFailed, match=CORRUPT):  # no v1 key: version-1 blobs do not open
        Sealer(kek, key_id=2).unseal(from_legacy, context=CONTEXT)
    with pytest.raises(OperationFailed, match=CORRUPT):  # a single-key sealer does not read ids
        Sealer(old).unseal(from_old, context=CONTEXT)
    with pytest.raises(OperationFailed, match=CORRUPT):  # an id it does not know
        Sealer(kek, key_id=2).unseal(from_old, context=CONTEXT)


def test_unknown_key_ids_are_resolved_once(kek: bytes) -> None:
    later = new_kek()
    blob = Sealer(later, key_id=9).seal(b"made elsewhere", context=CONTEXT)
    asked: list[int] = []

    def resolve(key_id: int) -> bytes | None:
        asked.append(key_id)
        return later if key_id == 9 else None

    sealer = Sealer(kek, key_id=1, resolve=resolve)
    assert sealer.unseal(blob, context=CONTEXT) == b"made elsewhere"
    assert sealer.unseal(blob, context=CONTEXT) == b"made elsewhere"
    assert asked == [9]
    with pytest.raises(OperationFailed):
        sealer.unseal(Sealer(new_kek(), key_id=4).seal(b"?", context=CONTEXT), context=CONTEXT)
    assert asked == [9, 4]


def test_data_key_ids_must_fit_four_bytes(kek: bytes) -> None:
    for bad in (0, -1, 2**32):
        with pytest.raises(ValueError, match="data key id"):
            Sealer(kek, key_id=bad)
    with pytest.raises(ValueError):
        Sealer(kek, key_id=1, others={2: b"short"})

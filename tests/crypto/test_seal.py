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

"""AES primitives for oct keys: shape checks name the problem, cryptographic failures say nothing more."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kluis.crypto._aes import (
    DECRYPTION_FAILED,
    cbc_decrypt,
    cbc_encrypt,
    gcm_decrypt,
    gcm_encrypt,
    key_unwrap,
    key_wrap,
)
from kluis.crypto.errors import InvalidParameter, OperationFailed

KEY = bytes(range(32))
IV12 = bytes(12)
IV16 = bytes(range(16))


def test_gcm_splits_the_tag_off_and_round_trips_with_aad() -> None:
    ct, tag = gcm_encrypt(KEY, "A256GCM", b"hello", IV12, b"ctx")
    assert len(tag) == 16 and len(ct) == 5
    assert ct + tag == AESGCM(KEY).encrypt(IV12, b"hello", b"ctx")  # the standard construction, split
    assert gcm_decrypt(KEY, "A256GCM", ct, IV12, tag, b"ctx") == b"hello"


@pytest.mark.parametrize("change", ["ciphertext", "tag", "aad", "iv"], ids=["ciphertext", "tag", "aad", "iv"])
def test_gcm_any_change_is_one_vague_failure(change: str) -> None:
    ct, tag = gcm_encrypt(KEY, "A256GCM", b"hello", IV12, b"ctx")
    args = {"ciphertext": ct, "tag": tag, "aad": b"ctx", "iv": IV12}
    flipped = bytearray(args[change])
    flipped[0] ^= 1
    args[change] = bytes(flipped)
    with pytest.raises(OperationFailed) as err:
        gcm_decrypt(KEY, "A256GCM", args["ciphertext"], args["iv"], args["tag"], args["aad"])
    assert str(err.value) == DECRYPTION_FAILED


def test_gcm_shape_errors_name_the_parameter() -> None:
    with pytest.raises(InvalidParameter, match="IV length 16 is invalid for algorithm A256GCM"):
        gcm_encrypt(KEY, "A256GCM", b"x", IV16, None)
    with pytest.raises(InvalidParameter, match="requires an iv of 12 bytes"):
        gcm_decrypt(KEY, "A256GCM", b"x", None, bytes(16), None)
    with pytest.raises(InvalidParameter, match="requires an authentication tag"):
        gcm_decrypt(KEY, "A256GCM", b"x", IV12, None, None)
    with pytest.raises(InvalidParameter, match="tag length 8"):
        gcm_decrypt(KEY, "A256GCM", b"x", IV12, bytes(8), None)


def test_cbc_pad_round_trip_matches_pkcs7() -> None:
    for size in (0, 1, 15, 16, 17):
        data = os.urandom(size)
        ct = cbc_encrypt(KEY, "A256CBCPAD", data, IV16, pad=True)
        assert len(ct) == (size // 16 + 1) * 16  # PKCS#7 always adds 1..16 bytes
        assert cbc_decrypt(KEY, "A256CBCPAD", ct, IV16, pad=True) == data


def test_cbc_without_padding_is_plain_cbc() -> None:
    data = bytes(range(32))
    ct = cbc_encrypt(KEY, "A256CBC", data, IV16, pad=False)
    enc = Cipher(algorithms.AES(KEY), modes.CBC(IV16)).encryptor()
    assert ct == enc.update(data) + enc.finalize()
    assert cbc_decrypt(KEY, "A256CBC", ct, IV16, pad=False) == data
    with pytest.raises(InvalidParameter, match="use A256CBCPAD"):
        cbc_encrypt(KEY, "A256CBC", b"not aligned", IV16, pad=False)


def test_cbc_shape_and_padding_errors() -> None:
    with pytest.raises(InvalidParameter, match="requires an iv of 16 bytes"):
        cbc_encrypt(KEY, "A256CBC", bytes(16), None, pad=False)
    with pytest.raises(InvalidParameter, match="a multiple of 16"):
        cbc_decrypt(KEY, "A256CBC", bytes(15), IV16, pad=False)
    with pytest.raises(InvalidParameter, match="a non-zero multiple of 16"):
        cbc_decrypt(KEY, "A256CBCPAD", b"", IV16, pad=True)
    enc = Cipher(algorithms.AES(KEY), modes.CBC(IV16)).encryptor()
    bad_padding = enc.update(bytes(16)) + enc.finalize()  # decrypts to a block ending in 0x00: invalid PKCS#7
    with pytest.raises(OperationFailed):
        cbc_decrypt(KEY, "A256CBCPAD", bad_padding, IV16, pad=True)


def test_key_wrap_rfc3394_vector() -> None:
    # RFC 3394 section 4.1: 128-bit key data with a 128-bit KEK.
    kek = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    data = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    wrapped = bytes.fromhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
    assert key_wrap(kek, "A128KW", data, pad=False) == wrapped
    assert key_unwrap(kek, "A128KW", wrapped, pad=False) == data


def test_key_wrap_with_padding_rfc5649_vector() -> None:
    # RFC 5649 section 6: 20 octets of key data with a 192-bit KEK.
    kek = bytes.fromhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
    data = bytes.fromhex("c37b7e6492584340bed12207808941155068f738")
    wrapped = bytes.fromhex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a")
    assert key_wrap(kek, "CKM_AES_KEY_WRAP_PAD", data, pad=True) == wrapped
    assert key_unwrap(kek, "CKM_AES_KEY_WRAP_PAD", wrapped, pad=True) == data


def test_key_wrap_shape_and_integrity_errors() -> None:
    with pytest.raises(InvalidParameter, match="cannot wrap an empty key"):
        key_wrap(KEY, "CKM_AES_KEY_WRAP_PAD", b"", pad=True)
    for bad in (bytes(8), bytes(20)):
        with pytest.raises(InvalidParameter, match="at least 16 bytes and a multiple of 8"):
            key_wrap(KEY, "A256KW", bad, pad=False)
    with pytest.raises(InvalidParameter, match="at least 24 bytes"):
        key_unwrap(KEY, "A256KW", bytes(16), pad=False)
    with pytest.raises(InvalidParameter, match="at least 16 bytes"):
        key_unwrap(KEY, "CKM_AES_KEY_WRAP_PAD", bytes(8), pad=True)
    wrapped = bytearray(key_wrap(KEY, "A256KW", bytes(16), pad=False))
    wrapped[3] ^= 1
    with pytest.raises(OperationFailed, match="unwrap failed"):
        key_unwrap(KEY, "A256KW", bytes(wrapped), pad=False)

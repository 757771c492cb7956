from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes, hmac, keywrap
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.padding import PKCS7

from kluis.crypto.algorithms import Curve, KeyType
from kluis.crypto.errors import InvalidParameter, OperationFailed, UnsupportedAlgorithm
from kluis.crypto.keys import KeyMaterial, generate
from kluis.crypto.operations import EncryptResult, decrypt, encrypt, sign, unwrap_key, verify, wrap_key

RSA_CIPHERS = ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"]
RSA_SIGNATURES = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
EC_SIGNATURES = [
    ("ES256", Curve.P_256),
    ("ES256K", Curve.P_256K),
    ("ES384", Curve.P_384),
    ("ES512", Curve.P_521),
]
HASHLIB = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
AES_BITS = [128, 192, 256]
MESSAGE = b"the quick brown fox jumps over the lazy dog"


def _digest(alg: str, data: bytes = MESSAGE) -> bytes:
    return HASHLIB[alg[2:5]](data).digest()


def _rsa_pub(key: KeyMaterial) -> rsa.RSAPublicKey:
    assert isinstance(key.public, rsa.RSAPublicKey)
    return key.public


def _oct(key: KeyMaterial) -> bytes:
    assert isinstance(key.private, bytes)
    return key.private


# --- RSA ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", RSA_CIPHERS)
def test_rsa_encrypt_round_trip(rsa2048: KeyMaterial, alg: str) -> None:
    result = encrypt(rsa2048, alg, MESSAGE)
    assert result == EncryptResult(result.ciphertext)
    assert len(result.ciphertext) == 256
    assert decrypt(rsa2048, alg, result.ciphertext) == MESSAGE


@pytest.mark.parametrize("alg", RSA_CIPHERS)
def test_rsa_wrap_round_trip(rsa2048: KeyMaterial, alg: str) -> None:
    cek = os.urandom(32)
    wrapped = wrap_key(rsa2048, alg, cek)
    assert unwrap_key(rsa2048, alg, wrapped.ciphertext) == cek


@pytest.mark.parametrize("alg", RSA_SIGNATURES)
def test_rsa_sign_verify(rsa2048: KeyMaterial, alg: str) -> None:
    digest = _digest(alg)
    signature = sign(rsa2048, alg, digest)
    assert len(signature) == 256
    assert verify(rsa2048, alg, digest, signature)
    assert not verify(rsa2048, alg, _digest(alg, b"other"), signature)
    assert not verify(rsa2048, alg, digest, signature[:-1])
    assert not verify(rsa2048, alg, digest, b"")


def test_rsa_3072(rsa3072: KeyMaterial) -> None:
    ct = encrypt(rsa3072, "RSA-OAEP-256", MESSAGE).ciphertext
    assert len(ct) == 384
    assert decrypt(rsa3072, "RSA-OAEP-256", ct) == MESSAGE
    digest = _digest("PS512")
    assert verify(rsa3072, "PS512", digest, sign(rsa3072, "PS512", digest))


def test_rsnull(rsa2048: KeyMaterial) -> None:
    raw = b"\x01" * 36  # e.g. a TLS 1.1 MD5||SHA1 digest: any length up to k - 11
    signature = sign(rsa2048, "RSNULL", raw)
    assert verify(rsa2048, "RSNULL", raw, signature)
    assert not verify(rsa2048, "RSNULL", b"\x02" * 36, signature)
    # Interop: plain PKCS#1 v1.5 without DigestInfo.
    assert _rsa_pub(rsa2048).recover_data_from_signature(signature, padding.PKCS1v15(), None) == raw
    assert verify(rsa2048, "RSNULL", b"x" * 245, sign(rsa2048, "RSNULL", b"x" * 245))
    with pytest.raises(InvalidParameter, match="expected 1 to 245 bytes"):
        sign(rsa2048, "RSNULL", b"x" * 246)
    with pytest.raises(InvalidParameter):
        sign(rsa2048, "RSNULL", b"")


@pytest.mark.parametrize("alg", RSA_SIGNATURES)
def test_rsa_signature_interop(rsa2048: KeyMaterial, alg: str) -> None:
    h = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
    pad: padding.AsymmetricPadding = (
        padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size) if alg[0] == "P" else padding.PKCS1v15()
    )
    digest = _digest(alg)
    # kluis signature, library verification over the message itself
    _rsa_pub(rsa2048).verify(sign(rsa2048, alg, digest), MESSAGE, pad, h)
    # library signature, kluis verification
    assert isinstance(rsa2048.private, rsa.RSAPrivateKey)
    assert verify(rsa2048, alg, digest, rsa2048.private.sign(digest, pad, utils.Prehashed(h)))


def test_rsa_decrypt_library_oaep256(rsa2048: KeyMaterial) -> None:
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert decrypt(rsa2048, "RSA-OAEP-256", _rsa_pub(rsa2048).encrypt(MESSAGE, oaep)) == MESSAGE
    sha1 = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    assert decrypt(rsa2048, "RSA-OAEP", _rsa_pub(rsa2048).encrypt(MESSAGE, sha1)) == MESSAGE
    assert isinstance(rsa2048.private, rsa.RSAPrivateKey)
    ct = encrypt(rsa2048, "RSA-OAEP-256", MESSAGE).ciphertext
    assert rsa2048.private.decrypt(ct, oaep) == MESSAGE


@pytest.mark.parametrize(("alg", "limit"), [("RSA1_5", 245), ("RSA-OAEP", 214), ("RSA-OAEP-256", 190)])
def test_rsa_plaintext_limit(rsa2048: KeyMaterial, alg: str, limit: int) -> None:
    assert decrypt(rsa2048, alg, encrypt(rsa2048, alg, b"a" * limit).ciphertext) == b"a" * limit
    with pytest.raises(InvalidParameter) as info:
        encrypt(rsa2048, alg, b"a" * (limit + 1))
    assert info.value.message == (
        f"Plaintext is too long for algorithm {alg} with a 2048-bit key ({limit + 1} bytes, maximum {limit})"
    )


@pytest.mark.parametrize("alg", ["RSA-OAEP", "RSA-OAEP-256"])
def test_rsa_decrypt_failures_are_generic(rsa2048: KeyMaterial, rsa2048_other: KeyMaterial, alg: str) -> None:
    ct = encrypt(rsa2048, alg, MESSAGE).ciphertext
    with pytest.raises(OperationFailed) as wrong_key:
        decrypt(rsa2048_other, alg, ct)
    with pytest.raises(OperationFailed) as tampered:
        decrypt(rsa2048, alg, bytes([ct[0] ^ 1]) + ct[1:])
    assert wrong_key.value.message == tampered.value.message == "Decryption failed"


def test_rsa1_5_uses_implicit_rejection(rsa2048: KeyMaterial, rsa2048_other: KeyMaterial) -> None:
    # OpenSSL >= 3.2 returns a pseudo-random message instead of a padding error (Marvin countermeasure).
    ct = encrypt(rsa2048, "RSA1_5", MESSAGE).ciphertext
    try:
        assert decrypt(rsa2048_other, "RSA1_5", ct) != MESSAGE
    except OperationFailed as exc:
        assert exc.message == "Decryption failed"


def test_rsa_parameter_errors(rsa2048: KeyMaterial) -> None:
    with pytest.raises(InvalidParameter, match="expected 256 bytes"):
        decrypt(rsa2048, "RSA-OAEP", b"short")
    with pytest.raises(InvalidParameter, match="does not use the 'iv' parameter"):
        encrypt(rsa2048, "RSA-OAEP", MESSAGE, iv=b"x" * 16)
    # Empty values count as absent (JSON clients sometimes send "").
    assert encrypt(rsa2048, "RSA-OAEP", MESSAGE, iv=b"", aad=None).iv is None


# --- EC -------------------------------------------------------------------------


@pytest.mark.parametrize(("alg", "curve"), EC_SIGNATURES)
def test_ec_sign_verify(ec_keys: dict[Curve, KeyMaterial], alg: str, curve: Curve) -> None:
    key = ec_keys[curve]
    digest = _digest(alg)
    signature = sign(key, alg, digest)
    assert len(signature) == 2 * curve.byte_length
    assert verify(key, alg, digest, signature)
    assert not verify(key, alg, _digest(alg, b"other"), signature)
    assert not verify(key, alg, digest, signature[:-1])  # wrong length: False, not an error
    assert not verify(key, alg, digest, b"\x00" * len(signature))
    flipped = bytes([signature[0] ^ 0x80]) + signature[1:]
    assert not verify(key, alg, digest, flipped)


@pytest.mark.parametrize(("alg", "curve"), EC_SIGNATURES)
def test_ec_signature_interop(ec_keys: dict[Curve, KeyMaterial], alg: str, curve: Curve) -> None:
    key = ec_keys[curve]
    h = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:5]]
    raw = sign(key, alg, _digest(alg))
    size = curve.byte_length
    der = utils.encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))
    assert isinstance(key.public, ec.EllipticCurvePublicKey)
    key.public.verify(der, MESSAGE, ec.ECDSA(h))
    assert isinstance(key.private, ec.EllipticCurvePrivateKey)
    r, s = utils.decode_dss_signature(key.private.sign(MESSAGE, ec.ECDSA(h)))
    assert verify(key, alg, _digest(alg), r.to_bytes(size, "big") + s.to_bytes(size, "big"))


def test_ec_has_no_encryption(ec_keys: dict[Curve, KeyMaterial]) -> None:
    with pytest.raises(UnsupportedAlgorithm, match="Operation encrypt is not supported by key type EC"):
        encrypt(ec_keys[Curve.P_256], "RSA-OAEP", MESSAGE)
    with pytest.raises(UnsupportedAlgorithm, match="Operation wrapKey is not supported by key type EC"):
        wrap_key(ec_keys[Curve.P_256], "A256KW", b"k" * 32)


# --- oct: AES -----------------------------------------------------------------


@pytest.mark.parametrize("bits", AES_BITS)
def test_gcm_round_trip_and_interop(oct_keys: dict[int, KeyMaterial], bits: int) -> None:
    key, alg = oct_keys[bits], f"A{bits}GCM"
    result = encrypt(key, alg, MESSAGE, aad=b"header")
    assert result.iv is not None and len(result.iv) == 12
    assert result.tag is not None and len(result.tag) == 16
    assert result.aad == b"header"
    assert len(result.ciphertext) == len(MESSAGE)
    assert decrypt(key, alg, result.ciphertext, iv=result.iv, tag=result.tag, aad=b"header") == MESSAGE
    assert AESGCM(_oct(key)).decrypt(result.iv, result.ciphertext + result.tag, b"header") == MESSAGE
    assert encrypt(key, alg, MESSAGE).iv != result.iv  # fresh iv every time


def test_gcm_caller_iv(oct_keys: dict[int, KeyMaterial]) -> None:
    key, iv = oct_keys[256], bytes(12)
    result = encrypt(key, "A256GCM", MESSAGE, iv=iv)
    assert result.iv == iv
    assert result.ciphertext + (result.tag or b"") == AESGCM(_oct(key)).encrypt(iv, MESSAGE, None)
    with pytest.raises(InvalidParameter, match="IV length 16 is invalid for algorithm A256GCM"):
        encrypt(key, "A256GCM", MESSAGE, iv=bytes(16))


def test_gcm_failures(oct_keys: dict[int, KeyMaterial]) -> None:
    key = oct_keys[256]
    r = encrypt(key, "A256GCM", MESSAGE, aad=b"a")
    assert r.iv is not None and r.tag is not None
    bad_tag = bytes([r.tag[0] ^ 1]) + r.tag[1:]
    with pytest.raises(OperationFailed, match="Decryption failed"):
        decrypt(key, "A256GCM", r.ciphertext, iv=r.iv, tag=bad_tag, aad=b"a")
    with pytest.raises(OperationFailed):
        decrypt(key, "A256GCM", r.ciphertext, iv=r.iv, tag=r.tag, aad=b"b")
    with pytest.raises(OperationFailed):
        decrypt(generate(KeyType.OCT), "A256GCM", r.ciphertext, iv=r.iv, tag=r.tag, aad=b"a")
    with pytest.raises(InvalidParameter, match="requires an authentication tag of 16 bytes"):
        decrypt(key, "A256GCM", r.ciphertext, iv=r.iv)
    with pytest.raises(InvalidParameter, match="Authentication tag length 12 is invalid"):
        decrypt(key, "A256GCM", r.ciphertext, iv=r.iv, tag=r.tag[:12])
    with pytest.raises(InvalidParameter, match="requires an iv of 12 bytes"):
        decrypt(key, "A256GCM", r.ciphertext, tag=r.tag)


@pytest.mark.parametrize("bits", AES_BITS)
def test_cbc_round_trip_and_interop(oct_keys: dict[int, KeyMaterial], bits: int) -> None:
    key, iv = oct_keys[bits], os.urandom(16)
    block_aligned = MESSAGE[:32]
    result = encrypt(key, f"A{bits}CBC", block_aligned, iv=iv)
    assert result == EncryptResult(result.ciphertext, iv=iv)
    assert decrypt(key, f"A{bits}CBC", result.ciphertext, iv=iv) == block_aligned

    padded = encrypt(key, f"A{bits}CBCPAD", MESSAGE, iv=iv)
    assert len(padded.ciphertext) == 48
    assert decrypt(key, f"A{bits}CBCPAD", padded.ciphertext, iv=iv) == MESSAGE
    decryptor = Cipher(algorithms.AES(_oct(key)), modes.CBC(iv)).decryptor()
    unpadder = PKCS7(128).unpadder()
    raw = decryptor.update(padded.ciphertext) + decryptor.finalize()
    assert unpadder.update(raw) + unpadder.finalize() == MESSAGE


def test_cbc_errors(oct_keys: dict[int, KeyMaterial]) -> None:
    key = oct_keys[128]
    with pytest.raises(InvalidParameter) as info:
        encrypt(key, "A128CBC", MESSAGE)
    assert info.value.message == "Algorithm A128CBC requires an iv of 16 bytes"
    with pytest.raises(InvalidParameter, match="not a multiple of 16 bytes"):
        encrypt(key, "A128CBC", MESSAGE, iv=bytes(16))
    with pytest.raises(InvalidParameter, match="IV length 12 is invalid"):
        encrypt(key, "A128CBCPAD", MESSAGE, iv=bytes(12))
    with pytest.raises(InvalidParameter, match="does not use the 'aad' parameter"):
        encrypt(key, "A128CBCPAD", MESSAGE, iv=bytes(16), aad=b"x")
    with pytest.raises(InvalidParameter, match="must be a non-zero multiple of 16"):
        decrypt(key, "A128CBCPAD", b"", iv=bytes(16))
    with pytest.raises(InvalidParameter, match="must be a multiple of 16"):
        decrypt(key, "A128CBC", b"x" * 17, iv=bytes(16))
    assert encrypt(key, "A128CBC", b"", iv=bytes(16)).ciphertext == b""


def test_cbcpad_bad_padding_is_generic(oct_keys: dict[int, KeyMaterial]) -> None:
    key, iv = oct_keys[256], bytes(16)
    # A block-aligned plaintext ending in 0x00 is never valid PKCS#7 once decrypted.
    bad_padding = encrypt(key, "A256CBC", b"\x00" * 32, iv=iv).ciphertext
    with pytest.raises(OperationFailed) as info:
        decrypt(key, "A256CBCPAD", bad_padding, iv=iv)
    r = encrypt(key, "A256GCM", MESSAGE)
    with pytest.raises(OperationFailed) as gcm:
        decrypt(key, "A256GCM", r.ciphertext, iv=r.iv, tag=bytes(16))
    assert info.value.message == gcm.value.message  # one message: no padding oracle


def test_wrong_key_size_for_algorithm(oct_keys: dict[int, KeyMaterial]) -> None:
    with pytest.raises(InvalidParameter) as info:
        encrypt(oct_keys[256], "A128GCM", MESSAGE)
    assert "requires a 128-bit key, but the key is 256 bits" in info.value.message
    with pytest.raises(InvalidParameter):
        wrap_key(oct_keys[128], "A256KW", bytes(16))


# --- oct: key wrap ------------------------------------------------------------


def test_aes_kw_rfc3394_known_answer() -> None:
    kek = KeyMaterial(bytes.fromhex("000102030405060708090A0B0C0D0E0F"))
    data = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    expected = bytes.fromhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
    for alg in ("A128KW", "CKM_AES_KEY_WRAP"):
        assert wrap_key(kek, alg, data).ciphertext == expected
        assert unwrap_key(kek, alg, expected) == data


def test_aes_kwp_rfc5649_known_answer() -> None:
    kek = KeyMaterial(bytes.fromhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"))
    data = bytes.fromhex("c37b7e6492584340bed12207808941155068f738")
    expected = bytes.fromhex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a")
    assert wrap_key(kek, "CKM_AES_KEY_WRAP_PAD", data).ciphertext == expected
    assert unwrap_key(kek, "CKM_AES_KEY_WRAP_PAD", expected) == data


@pytest.mark.parametrize("bits", AES_BITS)
def test_oct_wrap_round_trips(oct_keys: dict[int, KeyMaterial], bits: int) -> None:
    key, cek = oct_keys[bits], os.urandom(32)
    kw = wrap_key(key, f"A{bits}KW", cek)
    assert kw.ciphertext == keywrap.aes_key_wrap(_oct(key), cek)
    assert unwrap_key(key, f"A{bits}KW", kw.ciphertext) == cek
    assert unwrap_key(key, "CKM_AES_KEY_WRAP", wrap_key(key, "CKM_AES_KEY_WRAP", cek).ciphertext) == cek
    odd = os.urandom(13)
    kwp = wrap_key(key, "CKM_AES_KEY_WRAP_PAD", odd).ciphertext
    assert kwp == keywrap.aes_key_wrap_with_padding(_oct(key), odd)
    assert unwrap_key(key, "CKM_AES_KEY_WRAP_PAD", kwp) == odd

    gcm = wrap_key(key, f"A{bits}GCM", cek)
    assert unwrap_key(key, f"A{bits}GCM", gcm.ciphertext, iv=gcm.iv, tag=gcm.tag) == cek
    iv = os.urandom(16)
    cbc = wrap_key(key, f"A{bits}CBC", cek, iv=iv)
    assert unwrap_key(key, f"A{bits}CBC", cbc.ciphertext, iv=iv) == cek
    cbcpad = wrap_key(key, f"A{bits}CBCPAD", odd, iv=iv)
    assert unwrap_key(key, f"A{bits}CBCPAD", cbcpad.ciphertext, iv=iv) == odd


def test_kw_errors(oct_keys: dict[int, KeyMaterial]) -> None:
    key = oct_keys[256]
    with pytest.raises(InvalidParameter, match="must be at least 16 bytes and a multiple of 8"):
        wrap_key(key, "A256KW", bytes(20))
    with pytest.raises(InvalidParameter):
        wrap_key(key, "A256KW", bytes(8))
    with pytest.raises(InvalidParameter, match="cannot wrap an empty key"):
        wrap_key(key, "CKM_AES_KEY_WRAP_PAD", b"")
    with pytest.raises(InvalidParameter, match="Wrapped key length 20 is invalid"):
        unwrap_key(key, "A256KW", bytes(20))
    with pytest.raises(InvalidParameter, match="does not use the 'iv' parameter"):
        wrap_key(key, "A256KW", bytes(16), iv=bytes(16))
    wrapped = wrap_key(key, "A256KW", bytes(32)).ciphertext
    with pytest.raises(OperationFailed, match="Key unwrap failed"):
        unwrap_key(oct_keys[256], "A256KW", wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
    with pytest.raises(OperationFailed):
        unwrap_key(generate(KeyType.OCT), "A256KW", wrapped)
    with pytest.raises(OperationFailed):
        unwrap_key(key, "CKM_AES_KEY_WRAP_PAD", wrapped)


# --- oct: HMAC ----------------------------------------------------------------


@pytest.mark.parametrize("bits", AES_BITS)
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac(oct_keys: dict[int, KeyMaterial], bits: int, alg: str) -> None:
    key = oct_keys[bits]
    mac = sign(key, alg, MESSAGE)
    h = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
    expected = hmac.HMAC(_oct(key), h)
    expected.update(MESSAGE)
    assert mac == expected.finalize()
    assert verify(key, alg, MESSAGE, mac)
    assert not verify(key, alg, MESSAGE + b"!", mac)
    assert not verify(key, alg, MESSAGE, mac[:-1])


# --- early validation ---------------------------------------------------------


def test_algorithm_not_for_key_type(rsa2048: KeyMaterial, ec_keys: dict[Curve, KeyMaterial]) -> None:
    with pytest.raises(UnsupportedAlgorithm) as info:
        sign(ec_keys[Curve.P_256], "PS256", _digest("PS256"))
    assert info.value.message == "Algorithm PS256 is not supported by key type EC"
    with pytest.raises(UnsupportedAlgorithm):
        encrypt(rsa2048, "A256GCM", MESSAGE)
    with pytest.raises(UnsupportedAlgorithm):
        sign(rsa2048, "HS256", MESSAGE)


def test_es256_on_p384(ec_keys: dict[Curve, KeyMaterial]) -> None:
    with pytest.raises(InvalidParameter, match="requires curve P-256, but the key uses curve P-384"):
        sign(ec_keys[Curve.P_384], "ES256", _digest("ES256"))
    with pytest.raises(InvalidParameter):
        verify(ec_keys[Curve.P_384], "ES256", _digest("ES256"), bytes(64))


@pytest.mark.parametrize(("key_name", "alg"), [("rsa", "RS256"), ("rsa", "PS384"), ("ec", "ES512"), ("ec", "ES256")])
def test_digest_length_mismatch(
    rsa2048: KeyMaterial, ec_keys: dict[Curve, KeyMaterial], key_name: str, alg: str
) -> None:
    curve = {"ES512": Curve.P_521, "ES256": Curve.P_256}.get(alg)
    key = rsa2048 if key_name == "rsa" else ec_keys[curve or Curve.P_256]
    sha1 = hashlib.sha1(MESSAGE).digest()
    expected = {"256": 32, "384": 48, "512": 64}[alg[2:5]]
    for op in (lambda: sign(key, alg, sha1), lambda: verify(key, alg, sha1, b"sig")):
        with pytest.raises(InvalidParameter) as info:
            op()
        assert info.value.message == (f"Digest length 20 does not match algorithm {alg} (expected {expected} bytes)")

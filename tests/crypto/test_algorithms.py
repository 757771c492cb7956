from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes

from kluis.crypto.algorithms import (
    CAPABILITIES,
    Curve,
    EncryptionAlgorithm,
    KeyFamily,
    KeyOperation,
    KeyType,
    SignatureAlgorithm,
    aes_key_bits_for,
    algorithms_for,
    curve_for,
    digest_size_for,
    family_of,
    hash_for,
    parse_algorithm,
    supports,
)
from kluis.crypto.errors import InvalidParameter, UnsupportedAlgorithm

E = EncryptionAlgorithm
S = SignatureAlgorithm
OP = KeyOperation


def test_enum_wire_values() -> None:
    assert [k.value for k in KeyType] == ["RSA", "RSA-HSM", "EC", "EC-HSM", "oct", "oct-HSM"]
    assert [c.value for c in Curve] == ["P-256", "P-384", "P-521", "P-256K"]
    assert [o.value for o in KeyOperation] == [
        "encrypt",
        "decrypt",
        "sign",
        "verify",
        "wrapKey",
        "unwrapKey",
        "import",
        "export",
    ]
    assert len(EncryptionAlgorithm) == 17
    assert len(SignatureAlgorithm) == 14
    assert str(E.RSA_OAEP_256) == "RSA-OAEP-256"


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("RSA", KeyFamily.RSA),
        ("RSA-HSM", KeyFamily.RSA),
        ("EC", KeyFamily.EC),
        ("EC-HSM", KeyFamily.EC),
        ("oct", KeyFamily.OCT),
        ("oct-HSM", KeyFamily.OCT),
        ("OCT", KeyFamily.OCT),
    ],
)
def test_key_type_family(text: str, family: KeyFamily) -> None:
    assert KeyType.parse(text).family is family
    assert family_of(text) is family
    assert family == family.value  # families compare equal to plain strings


def test_unknown_names() -> None:
    with pytest.raises(InvalidParameter, match="Unknown key type 'DSA'"):
        KeyType.parse("DSA")
    with pytest.raises(InvalidParameter, match="Unknown curve 'P-224'"):
        Curve.parse("P-224")
    with pytest.raises(InvalidParameter):
        KeyOperation.parse("frobnicate")
    with pytest.raises(UnsupportedAlgorithm):
        SignatureAlgorithm.parse("ES999")


def test_curve_sizes() -> None:
    assert [(c.bits, c.byte_length) for c in Curve] == [(256, 32), (384, 48), (521, 66), (256, 32)]


_ALL_SUPPORTED = [(family, op, alg) for family, ops in CAPABILITIES.items() for op, algs in ops.items() for alg in algs]


@pytest.mark.parametrize(("family", "op", "alg"), _ALL_SUPPORTED)
def test_every_table_entry_is_supported(family: KeyFamily, op: KeyOperation, alg: str) -> None:
    supports(family, op, alg)


def test_table_shape() -> None:
    assert algorithms_for("RSA", OP.WRAP_KEY) == {E.RSA1_5, E.RSA_OAEP, E.RSA_OAEP_256}
    assert algorithms_for("EC-HSM", OP.SIGN) == {S.ES256, S.ES256K, S.ES384, S.ES512}
    assert algorithms_for("EC", OP.ENCRYPT) == frozenset()
    assert E.A128KW in algorithms_for("oct", OP.UNWRAP_KEY)
    assert E.A128KW not in algorithms_for("oct", OP.DECRYPT)
    assert E.A256GCM in algorithms_for("oct", OP.WRAP_KEY)
    assert algorithms_for("oct", OP.VERIFY) == {S.HS256, S.HS384, S.HS512}


@pytest.mark.parametrize(
    ("family", "op", "alg", "message"),
    [
        ("EC", OP.SIGN, "PS256", "Algorithm PS256 is not supported by key type EC"),
        ("RSA", OP.SIGN, "HS256", "Algorithm HS256 is not supported by key type RSA"),
        ("EC", OP.ENCRYPT, "RSA-OAEP", "Operation encrypt is not supported by key type EC"),
        ("oct", OP.ENCRYPT, "A128KW", "Algorithm A128KW cannot be used for operation encrypt"),
        ("RSA", OP.SIGN, "RSA-OAEP", "Algorithm RSA-OAEP cannot be used for operation sign"),
        ("RSA", OP.ENCRYPT, "A256GCM", "Algorithm A256GCM is not supported by key type RSA"),
        ("RSA", OP.IMPORT, "RS256", "Operation import does not use an algorithm"),
    ],
)
def test_unsupported_messages(family: str, op: KeyOperation, alg: str, message: str) -> None:
    with pytest.raises(UnsupportedAlgorithm) as info:
        supports(family, op, alg)
    assert info.value.message == message


def test_unknown_algorithm_lists_alternatives() -> None:
    with pytest.raises(UnsupportedAlgorithm) as info:
        supports("EC", OP.SIGN, "ES1024")
    assert info.value.message == "Unknown algorithm 'ES1024'; key type EC supports ES256, ES256K, ES384, ES512 for sign"


@pytest.mark.parametrize(
    ("alg", "curve"),
    [("ES256", Curve.P_256), ("ES256K", Curve.P_256K), ("ES384", Curve.P_384), ("ES512", Curve.P_521)],
)
def test_ec_curve_binding(alg: str, curve: Curve) -> None:
    supports("EC", OP.SIGN, alg, curve=curve)
    assert curve_for(alg) is curve
    for other in Curve:
        if other is not curve:
            with pytest.raises(InvalidParameter, match="Key size is incorrect"):
                supports("EC", OP.VERIFY, alg, curve=other)


def test_ec_curve_mismatch_message() -> None:
    with pytest.raises(InvalidParameter) as info:
        supports("EC", OP.SIGN, "ES256", curve=Curve.P_384)
    assert info.value.message == (
        "Key size is incorrect for algorithm ES256: it requires curve P-256, but the key uses curve P-384"
    )


@pytest.mark.parametrize("bits", [128, 192, 256])
def test_oct_key_size_binding(bits: int) -> None:
    for kind in ("GCM", "CBC", "CBCPAD", "KW"):
        alg = f"A{bits}{kind}"
        op = OP.WRAP_KEY if kind == "KW" else OP.ENCRYPT
        supports("oct", op, alg, key_size=bits)
        for other in {128, 192, 256} - {bits}:
            with pytest.raises(InvalidParameter, match=f"requires a {bits}-bit key, but the key is {other}"):
                supports("oct", op, alg, key_size=other)
    # The PKCS#11 names work with any AES key size.
    supports("oct", OP.WRAP_KEY, "CKM_AES_KEY_WRAP", key_size=bits)
    supports("oct", OP.UNWRAP_KEY, "CKM_AES_KEY_WRAP_PAD", key_size=bits)


def test_rsa_ignores_key_size_and_curve() -> None:
    supports("RSA", OP.SIGN, "PS512", key_size=3072, curve=None)


def test_hashes() -> None:
    assert isinstance(hash_for("RS256"), hashes.SHA256)
    assert isinstance(hash_for("PS384"), hashes.SHA384)
    assert isinstance(hash_for("ES512"), hashes.SHA512)
    assert isinstance(hash_for("ES256K"), hashes.SHA256)
    assert isinstance(hash_for("RSA-OAEP"), hashes.SHA1)
    assert isinstance(hash_for("RSA-OAEP-256"), hashes.SHA256)
    assert [digest_size_for(a) for a in ("HS256", "HS384", "HS512")] == [32, 48, 64]
    with pytest.raises(UnsupportedAlgorithm, match="does not use a hash"):
        hash_for("RSNULL")
    with pytest.raises(UnsupportedAlgorithm, match="Unknown algorithm"):
        hash_for("MD5")


def test_aes_bits_and_parse_algorithm() -> None:
    assert aes_key_bits_for("A192CBCPAD") == 192
    assert aes_key_bits_for("CKM_AES_KEY_WRAP") is None
    assert parse_algorithm("sign", "es256") is S.ES256
    assert parse_algorithm(OP.WRAP_KEY, "A256KW") is E.A256KW

"""Cryptographic operations on stored keys: the key's state and key_ops first, then the algorithm."""

from __future__ import annotations

import hashlib

import pytest

from kluis.domain.errors import BadParameter, Forbidden, NotFound
from kluis.domain.views import KeyChanges
from tests.domain.conftest import World


def test_crypto_errors_are_bad_parameter(world: World) -> None:
    world.keys.create_key(world.vault, "k", kty="EC", curve="P-256")
    with pytest.raises(BadParameter):
        world.ops.sign(world.vault, "k", None, "ES384", hashlib.sha384(b"x").digest())
    with pytest.raises(BadParameter):
        world.ops.sign(world.vault, "k", None, "ES256", b"short")
    with pytest.raises(NotFound):
        world.ops.sign(world.vault, "k", "0" * 32, "ES256", hashlib.sha256(b"x").digest())


def test_oct_key_encrypt_decrypt_and_material_never_returned(world: World) -> None:
    v = world.keys.create_key(world.vault, "aes", kty="oct-HSM", size=256)
    assert v.jwk == {} and "encrypt" in v.key_ops
    res = world.ops.cipher("encrypt", world.vault, "aes", None, "A256GCM", b"secret", aad=b"ctx")
    assert res.iv and res.tag and res.value != b"secret"
    vault, iv, tag = world.vault, res.iv, res.tag
    out = world.ops.cipher("decrypt", vault, "aes", None, "A256GCM", res.value, iv=iv, tag=tag, aad=b"ctx")
    assert out.value == b"secret"
    with pytest.raises(BadParameter):
        world.ops.cipher("decrypt", world.vault, "aes", None, "A256GCM", res.value, iv=res.iv, tag=b"\x00" * 16)


def test_random_bytes(world: World) -> None:
    assert len(world.ops.random_bytes(32)) == 32
    for bad in (0, 129, "5", True):
        with pytest.raises(BadParameter):
            world.ops.random_bytes(bad)


def test_results_name_the_key_as_stored_and_the_version_used(world: World) -> None:
    first = world.keys.create_key(world.vault, "Signer", kty="EC")
    world.keys.create_key(world.vault, "signer", kty="EC")
    digest = hashlib.sha256(b"m").digest()
    res = world.ops.sign(world.vault, "SIGNER", first.version, "ES256", digest)
    assert (res.name, res.version) == ("Signer", first.version)
    assert world.ops.verify(world.vault, "signer", first.version, "ES256", digest, res.value)
    assert not world.ops.verify(world.vault, "signer", None, "ES256", digest, res.value)  # the latest is another key


def test_wrap_and_unwrap(world: World) -> None:
    world.keys.create_key(world.vault, "kek", kty="oct-HSM", size=128)
    wrapped = world.ops.cipher("wrapKey", world.vault, "kek", None, "A128KW", bytes(16))
    assert wrapped.iv is None and wrapped.tag is None and len(wrapped.value) == 24
    assert world.ops.cipher("unwrapKey", world.vault, "kek", None, "A128KW", wrapped.value).value == bytes(16)


def test_key_ops_gate_each_operation(world: World) -> None:
    world.keys.create_key(world.vault, "enc-only", kty="oct-HSM", size=256, changes=KeyChanges(key_ops=["encrypt"]))
    world.ops.cipher("encrypt", world.vault, "enc-only", None, "A256GCM", b"x")
    with pytest.raises(Forbidden) as err:
        world.ops.cipher("wrapKey", world.vault, "enc-only", None, "A256KW", bytes(16))
    assert err.value.inner_code == "KeyOperationForbidden"
    with pytest.raises(Forbidden) as err:
        world.ops.cipher("decrypt", world.vault, "enc-only", None, "A256GCM", b"x", iv=bytes(12), tag=bytes(16))
    assert err.value.inner_code == "KeyOperationForbidden"


def test_outside_its_window_a_key_still_decrypts_but_no_longer_encrypts(world: World) -> None:
    world.keys.create_key(world.vault, "aes", kty="oct-HSM", size=256)
    res = world.ops.cipher("encrypt", world.vault, "aes", None, "A256GCM", b"old data")
    world.keys.update_key(world.vault, "aes", None, KeyChanges(exp=world.clock.t))
    with pytest.raises(Forbidden) as err:
        world.ops.cipher("encrypt", world.vault, "aes", None, "A256GCM", b"new data")
    assert err.value.inner_code == "KeyExpired"
    out = world.ops.cipher("decrypt", world.vault, "aes", None, "A256GCM", res.value, iv=res.iv, tag=res.tag)
    assert out.value == b"old data"
    world.keys.update_key(world.vault, "aes", None, KeyChanges(enabled=False))
    with pytest.raises(Forbidden) as err:
        world.ops.cipher("decrypt", world.vault, "aes", None, "A256GCM", res.value, iv=res.iv, tag=res.tag)
    assert err.value.inner_code == "KeyDisabled"


def test_unknown_algorithms_and_keys(world: World) -> None:
    world.keys.create_key(world.vault, "ec", kty="EC")
    with pytest.raises(BadParameter):
        world.ops.sign(world.vault, "ec", None, "NOPE", bytes(32))
    with pytest.raises(BadParameter, match='Supported values are "sign", "verify"'):  # EC cannot encrypt
        world.keys.update_key(world.vault, "ec", None, KeyChanges(key_ops=["sign", "encrypt"]))
    with pytest.raises(NotFound):
        world.ops.verify(world.vault, "missing", None, "ES256", bytes(32), bytes(64))

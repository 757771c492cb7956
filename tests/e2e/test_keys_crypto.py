"""Cryptographic operations through CryptographyClient (and raw requests), cross-checked with ``cryptography``.

The Python SDK encrypts, wraps and verifies LOCALLY with the public key and decrypts, unwraps and
signs REMOTELY. Each algorithm is checked both ways, and against ``cryptography`` directly. To make the
SDK do the public-key operations on the server too, a principal without keys/get is used: its
CryptographyClient gets 403 on GET and falls back to remote-only (documented SDK behaviour).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.keyvault.keys import JsonWebKey, KeyClient, KeyVaultKey
from azure.keyvault.keys.crypto import (
    CryptographyClient,
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.padding import PKCS7

from tests.e2e.conftest import Principal, unique

pytestmark = pytest.mark.slow

E = EncryptionAlgorithm
S = SignatureAlgorithm
RSA_CIPHERS: list[tuple[EncryptionAlgorithm, KeyWrapAlgorithm, padding.AsymmetricPadding]] = [
    (E.rsa1_5, KeyWrapAlgorithm.rsa1_5, padding.PKCS1v15()),
    (E.rsa_oaep, KeyWrapAlgorithm.rsa_oaep, padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)),
    (
        E.rsa_oaep_256,
        KeyWrapAlgorithm.rsa_oaep_256,
        padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
    ),
]
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
EC_CASES = [
    ("P-256", ec.SECP256R1(), S.es256, hashes.SHA256, 32),
    ("P-256K", ec.SECP256K1(), S.es256_k, hashes.SHA256, 32),
    ("P-384", ec.SECP384R1(), S.es384, hashes.SHA384, 48),
    ("P-521", ec.SECP521R1(), S.es512, hashes.SHA512, 66),
]
CRYPTO_PERMISSIONS = ("encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify")


def _int(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _b(n: int, size: int | None = None) -> bytes:
    return n.to_bytes(size or (n.bit_length() + 7) // 8, "big")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _digest(h: type[hashes.HashAlgorithm], data: bytes) -> bytes:
    d = hashes.Hash(h())
    d.update(data)
    return d.finalize()


def _rsa_public(key: KeyVaultKey) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(_int(key.key.e), _int(key.key.n)).public_key()


def _error(err: pytest.ExceptionInfo[HttpResponseError], status: int, code: str) -> str:
    assert err.value.status_code == status, str(err.value)
    assert err.value.error is not None and err.value.error.code == code, str(err.value)
    return str(err.value)


@pytest.fixture(scope="module")
def remote(
    vault: str, make_principal: Callable[..., Principal], crypto_client_for: Callable[..., CryptographyClient]
) -> Callable[[str], CryptographyClient]:
    """CryptographyClients that do every operation on the server (their principal may not GET keys)."""
    who = make_principal(vault, *CRYPTO_PERMISSIONS)
    return lambda kid: crypto_client_for(who, kid, vault)


@pytest.fixture(scope="module")
def rsa_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="module")
def imported_rsa(client: KeyClient, rsa_private: rsa.RSAPrivateKey) -> KeyVaultKey:
    """An RSA key whose private half the test also holds, to check what the server computes."""
    nums = rsa_private.private_numbers()
    pub = nums.public_numbers
    jwk = JsonWebKey(
        kty="RSA", n=_b(pub.n), e=_b(pub.e), d=_b(nums.d), p=_b(nums.p), q=_b(nums.q),
        dp=_b(nums.dmp1), dq=_b(nums.dmq1), qi=_b(nums.iqmp),
    )  # fmt: skip
    return client.import_key(unique("imp"), jwk)


# -- RSA --------------------------------------------------------------------------------------------
def test_rsa_encrypt_decrypt_wrap_unwrap_both_directions(
    client: KeyClient,
    remote: Callable[[str], CryptographyClient],
    imported_rsa: KeyVaultKey,
    rsa_private: rsa.RSAPrivateKey,
) -> None:
    generated = client.create_rsa_key(unique())
    sdk = client.get_cryptography_client(generated.name)
    server_only = remote(imported_rsa.id)
    public = _rsa_public(generated)
    for alg, wrap_alg, pad in RSA_CIPHERS:
        plaintext, cek = os.urandom(40), os.urandom(32)
        # SDK encrypts locally with the public key; kluis decrypts
        enc = sdk.encrypt(alg, plaintext)
        assert enc.key_id == generated.id and enc.algorithm == alg and len(enc.ciphertext) == 256
        assert enc.ciphertext != plaintext
        dec = sdk.decrypt(alg, enc.ciphertext)
        assert dec.plaintext == plaintext and dec.key_id == generated.id
        # cryptography with the key's public numbers; kluis decrypts
        assert sdk.decrypt(alg, public.encrypt(plaintext, pad)).plaintext == plaintext
        # wrap / unwrap, both ways
        wrapped = sdk.wrap_key(wrap_alg, cek)
        assert wrapped.encrypted_key != cek and sdk.unwrap_key(wrap_alg, wrapped.encrypted_key).key == cek
        assert sdk.unwrap_key(wrap_alg, public.encrypt(cek, pad)).key == cek
        # kluis encrypts / wraps (server side); cryptography decrypts with the private key
        srv = server_only.encrypt(alg, plaintext)
        assert srv.key_id == imported_rsa.id and rsa_private.decrypt(srv.ciphertext, pad) == plaintext
        assert rsa_private.decrypt(server_only.wrap_key(wrap_alg, cek).encrypted_key, pad) == cek
        assert server_only.decrypt(alg, rsa_private.public_key().encrypt(plaintext, pad)).plaintext == plaintext
        assert server_only.unwrap_key(wrap_alg, rsa_private.public_key().encrypt(cek, pad)).key == cek
    with pytest.raises(HttpResponseError) as err:  # garbage ciphertext
        sdk.decrypt(E.rsa_oaep_256, os.urandom(256))
    _error(err, 400, "BadParameter")
    with pytest.raises(HttpResponseError) as err:  # more than one RSA block
        server_only.encrypt(E.rsa_oaep_256, os.urandom(300))
    _error(err, 400, "BadParameter")


@pytest.mark.parametrize("scheme", ["RS", "PS"])
def test_rsa_sign_verify(
    scheme: str,
    client: KeyClient,
    remote: Callable[[str], CryptographyClient],
    imported_rsa: KeyVaultKey,
    rsa_private: rsa.RSAPrivateKey,
) -> None:
    key = client.create_rsa_key(unique())
    sdk = client.get_cryptography_client(key.name)
    public = _rsa_public(key)
    server_only = remote(imported_rsa.id)
    for bits, h in HASHES.items():
        alg = SignatureAlgorithm(f"{scheme}{bits}")
        digest = _digest(h, os.urandom(64))
        pad = padding.PKCS1v15() if scheme == "RS" else padding.PSS(padding.MGF1(h()), h.digest_size)
        signed = sdk.sign(alg, digest)  # remote
        assert signed.key_id == key.id and signed.algorithm == alg and len(signed.signature) == 256
        public.verify(signed.signature, digest, pad, utils.Prehashed(h()))  # raises if invalid
        assert sdk.verify(alg, digest, signed.signature).is_valid  # local, with kluis's public key
        assert not sdk.verify(alg, digest, bytes(256)).is_valid
        # server-side verify of a signature made by cryptography
        local_sig = rsa_private.sign(digest, pad, utils.Prehashed(h()))
        res = server_only.verify(alg, digest, local_sig)
        assert res.is_valid is True and res.key_id == imported_rsa.id
        tampered = bytes([local_sig[0] ^ 1]) + local_sig[1:]
        assert server_only.verify(alg, digest, tampered).is_valid is False
        assert server_only.verify(alg, _digest(h, b"other"), local_sig).is_valid is False
        # server-side sign, checked with the private key's public half
        rsa_private.public_key().verify(server_only.sign(alg, digest).signature, digest, pad, utils.Prehashed(h()))
    if scheme == "RS":  # PKCS#1 v1.5 signatures are deterministic: kluis must produce exactly cryptography's
        digest = _digest(hashes.SHA256, b"deterministic")
        expected = rsa_private.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        assert server_only.sign(S.rs256, digest).signature == expected


# -- EC ---------------------------------------------------------------------------------------------
def _raw_to_der(sig: bytes, size: int) -> bytes:
    assert len(sig) == 2 * size
    return utils.encode_dss_signature(_int(sig[:size]), _int(sig[size:]))


@pytest.mark.parametrize(("crv", "curve", "alg", "h", "size"), EC_CASES, ids=[c[0] for c in EC_CASES])
def test_ec_sign_raw_r_s_and_verify(
    crv: str,
    curve: ec.EllipticCurve,
    alg: SignatureAlgorithm,
    h: type[hashes.HashAlgorithm],
    size: int,
    client: KeyClient,
    remote: Callable[[str], CryptographyClient],
) -> None:
    key = client.create_ec_key(unique(), curve=crv, hardware_protected=crv == "P-521")
    public = ec.EllipticCurvePublicNumbers(_int(key.key.x), _int(key.key.y), curve).public_key()
    sdk = client.get_cryptography_client(key.name)
    digest = _digest(h, os.urandom(32))
    signed = sdk.sign(alg, digest)
    assert len(signed.signature) == 2 * size  # JOSE r||s, not DER
    public.verify(_raw_to_der(signed.signature, size), digest, ec.ECDSA(utils.Prehashed(h())))
    assert sdk.verify(alg, digest, signed.signature).is_valid
    assert not sdk.verify(alg, _digest(h, b"x"), signed.signature).is_valid
    # a signature made by cryptography with an imported key, verified on the server
    private = ec.generate_private_key(curve)
    pub = private.public_key().public_numbers()
    imported = client.import_key(
        unique(),
        JsonWebKey(
            kty="EC", crv=crv, x=_b(pub.x, size), y=_b(pub.y, size), d=_b(private.private_numbers().private_value, size)
        ),
    )
    r, s = utils.decode_dss_signature(private.sign(digest, ec.ECDSA(utils.Prehashed(h()))))
    raw = _b(r, size) + _b(s, size)
    server_only = remote(imported.id)
    assert server_only.verify(alg, digest, raw).is_valid is True
    assert server_only.verify(alg, digest, raw[::-1]).is_valid is False
    server_sig = server_only.sign(alg, digest).signature
    private.public_key().verify(_raw_to_der(server_sig, size), digest, ec.ECDSA(utils.Prehashed(h())))


# -- oct (AES) --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aes_keys(client: KeyClient) -> dict[int, tuple[bytes, KeyVaultKey]]:
    """Imported oct-HSM keys of every size, so the test can check kluis's AES output itself."""
    out: dict[int, tuple[bytes, KeyVaultKey]] = {}
    for size in (128, 192, 256):
        secret = os.urandom(size // 8)
        out[size] = (secret, client.import_key(unique("aes"), JsonWebKey(kty="oct-HSM", k=secret)))
    return out


def _post(client: KeyClient, key: KeyVaultKey, op: str, **body: Any) -> Any:
    """A raw operation through the SDK's own pipeline (auth, challenge, api-version)."""
    req = HttpRequest("POST", f"/keys/{key.name}/{key.properties.version}/{op}?api-version=7.6", json=body)
    return client.send_request(req)


def _ok(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text()
    data: dict[str, Any] = resp.json()
    return data


def test_aes_gcm_through_cryptography_client(client: KeyClient, aes_keys: dict[int, tuple[bytes, KeyVaultKey]]) -> None:
    for size, (secret, key) in aes_keys.items():
        alg = EncryptionAlgorithm(f"A{size}GCM")
        crypto = client.get_cryptography_client(key.name)
        plaintext, aad = os.urandom(45), b"header"
        enc = crypto.encrypt(alg, plaintext, additional_authenticated_data=aad)  # remote: GCM is server-only
        assert enc.iv is not None and len(enc.iv) == 12 and enc.tag is not None and len(enc.tag) == 16
        assert enc.aad == aad and len(enc.ciphertext) == len(plaintext)
        assert AESGCM(secret).decrypt(enc.iv, enc.ciphertext + enc.tag, aad) == plaintext
        dec = crypto.decrypt(
            alg, enc.ciphertext, iv=enc.iv, authentication_tag=enc.tag, additional_authenticated_data=aad
        )
        assert dec.plaintext == plaintext
        iv = os.urandom(12)
        sealed = AESGCM(secret).encrypt(iv, plaintext, None)
        local = crypto.decrypt(alg, sealed[:-16], iv=iv, authentication_tag=sealed[-16:])
        assert local.plaintext == plaintext
        with pytest.raises(HttpResponseError) as err:  # wrong tag
            crypto.decrypt(alg, sealed[:-16], iv=iv, authentication_tag=bytes(16))
        _error(err, 400, "BadParameter")
        with pytest.raises(HttpResponseError) as err:  # aad that was not authenticated
            crypto.decrypt(
                alg, sealed[:-16], iv=iv, authentication_tag=sealed[-16:], additional_authenticated_data=b"x"
            )
        _error(err, 400, "BadParameter")
        again = crypto.encrypt(alg, plaintext)
        assert again.iv != enc.iv  # a fresh nonce per encryption
    generated = client.create_oct_key(unique(), size=256, hardware_protected=True)
    crypto = client.get_cryptography_client(generated.name)
    enc = crypto.encrypt(E.a256_gcm, b"round trip")
    assert crypto.decrypt(E.a256_gcm, enc.ciphertext, iv=enc.iv, authentication_tag=enc.tag).plaintext == (
        b"round trip"
    )


def _cbc(secret: bytes, iv: bytes, data: bytes, *, pad: bool, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithms.AES(secret), modes.CBC(iv))
    if decrypt:
        d = cipher.decryptor()
        out = d.update(data) + d.finalize()
        if pad:
            u = PKCS7(128).unpadder()
            out = u.update(out) + u.finalize()
        return out
    if pad:
        p = PKCS7(128).padder()
        data = p.update(data) + p.finalize()
    e = cipher.encryptor()
    return e.update(data) + e.finalize()


def test_aes_cbc_and_cbcpad(client: KeyClient, aes_keys: dict[int, tuple[bytes, KeyVaultKey]]) -> None:
    for size, (secret, key) in aes_keys.items():
        iv, block_data, odd = os.urandom(16), os.urandom(32), os.urandom(21)
        # A*CBC: the SDK has no local implementation, so CryptographyClient goes to kluis
        crypto = client.get_cryptography_client(key.name)
        cbc = EncryptionAlgorithm(f"A{size}CBC")
        enc = crypto.encrypt(cbc, block_data, iv=iv)
        assert enc.iv == iv and enc.ciphertext == _cbc(secret, iv, block_data, pad=False)
        assert crypto.decrypt(cbc, enc.ciphertext, iv=iv).plaintext == block_data
        with pytest.raises(HttpResponseError) as err:  # not block aligned
            crypto.encrypt(cbc, odd, iv=iv)
        _error(err, 400, "BadParameter")
        # A*CBCPAD via raw requests (the SDK would run it locally with a random key: no "k" in the JWK)
        pad_alg = f"A{size}CBCPAD"
        out = _ok(_post(client, key, "encrypt", alg=pad_alg, value=_b64(odd), iv=_b64(iv)))
        assert _unb64(out["value"]) == _cbc(secret, iv, odd, pad=True) and _unb64(out["iv"]) == iv
        assert out["kid"] == key.id
        local = _cbc(secret, iv, odd, pad=True)
        back = _ok(_post(client, key, "decrypt", alg=pad_alg, value=_b64(local), iv=_b64(iv)))
        assert _unb64(back["value"]) == odd
        missing_iv = _post(client, key, "encrypt", alg=pad_alg, value=_b64(odd))
        assert missing_iv.status_code == 400 and missing_iv.json()["error"]["code"] == "BadParameter"
        bad_iv = _post(client, key, "encrypt", alg=pad_alg, value=_b64(odd), iv=_b64(b"short"))
        assert bad_iv.status_code == 400


def test_aes_key_wrap(client: KeyClient, aes_keys: dict[int, tuple[bytes, KeyVaultKey]]) -> None:
    for size, (secret, key) in aes_keys.items():
        alg = f"A{size}KW"
        cek = os.urandom(32)
        out = _ok(_post(client, key, "wrapkey", alg=alg, value=_b64(cek)))
        assert _unb64(out["value"]) == keywrap.aes_key_wrap(secret, cek)  # RFC 3394 is deterministic
        local = keywrap.aes_key_wrap(secret, cek)
        assert _unb64(_ok(_post(client, key, "unwrapkey", alg=alg, value=_b64(local)))["value"]) == cek
        # unwrap is remote in the SDK only if the local provider fails; use the raw call for the negative
        broken = _post(client, key, "unwrapkey", alg=alg, value=_b64(bytes(40)))
        assert broken.status_code == 400 and broken.json()["error"]["code"] == "BadParameter"
        other = "A256KW" if size != 256 else "A128KW"
        mismatch = _post(client, key, "wrapkey", alg=other, value=_b64(cek))
        assert mismatch.status_code == 400


def test_hmac_sign_verify_on_oct_hsm(client: KeyClient) -> None:
    secret = os.urandom(32)
    key = client.import_key(unique(), JsonWebKey(kty="oct-HSM", k=secret, key_ops=["sign", "verify"]))
    value = os.urandom(32)
    for alg, h in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
        out = _ok(_post(client, key, "sign", alg=alg, value=_b64(value)))
        mac = hmac.new(secret, value, h).digest()
        assert _unb64(out["value"]) == mac
        ok = _ok(_post(client, key, "verify", alg=alg, digest=_b64(value), value=_b64(mac)))
        assert ok == {"value": True}
        bad = _ok(_post(client, key, "verify", alg=alg, digest=_b64(value), value=_b64(bytes(len(mac)))))
        assert bad == {"value": False}


# -- errors -----------------------------------------------------------------------------------------
def test_wrong_algorithm_for_key_type_is_400(client: KeyClient, aes_keys: dict[int, tuple[bytes, KeyVaultKey]]) -> None:
    rsa_key = client.create_rsa_key(unique())
    ec_key = client.create_ec_key(unique(), curve="P-256")
    rsa_crypto = client.get_cryptography_client(rsa_key.name)
    ec_crypto = client.get_cryptography_client(ec_key.name)
    oct_crypto = client.get_cryptography_client(aes_keys[128][1].name)
    d32, d48 = os.urandom(32), os.urandom(48)
    calls: list[Callable[[], Any]] = [
        lambda: rsa_crypto.sign(S.es256, d32),
        lambda: rsa_crypto.encrypt(E.a256_gcm, b"x"),
        lambda: ec_crypto.sign(S.rs256, d32),
        lambda: ec_crypto.sign(S.es384, d48),  # P-256 key, P-384 algorithm
        lambda: ec_crypto.sign(S.es256_k, d32),
        lambda: oct_crypto.encrypt(E.a256_gcm, b"x"),  # 128-bit key, 256-bit algorithm
        lambda: oct_crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep, d32),  # RSA algorithm on an AES key
    ]
    for call in calls:
        with pytest.raises(HttpResponseError) as err:
            call()
        _error(err, 400, "BadParameter")
    # EC keys cannot wrap at all, so Key Vault refuses wrapKey in their key_ops up front (400, Azure's
    # 'Unsupported key operation(s): ... Supported values are "sign", "verify".'; see
    # kluis.domain.keys.service.SUPPORTED_KEY_OPS for the evidence)
    with pytest.raises(HttpResponseError) as err:
        client.create_ec_key(unique(), key_operations=["sign", "verify", "wrapKey"])
    assert 'Supported values are "sign", "verify"' in _error(err, 400, "BadParameter")
    unknown = _post(client, rsa_key, "sign", alg="RS257", value=_b64(d32))
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "BadParameter"


def test_wrong_digest_length_is_400(client: KeyClient) -> None:
    rsa_crypto = client.get_cryptography_client(client.create_rsa_key(unique()).name)
    ec_crypto = client.get_cryptography_client(client.create_ec_key(unique(), curve="P-384").name)
    for call in (
        lambda: rsa_crypto.sign(S.rs256, os.urandom(20)),
        lambda: rsa_crypto.sign(S.ps512, os.urandom(32)),
        lambda: ec_crypto.sign(S.es384, os.urandom(32)),
    ):
        with pytest.raises(HttpResponseError) as err:
            call()
        assert "digest" in _error(err, 400, "BadParameter").lower()


def test_key_ops_missing_the_operation_is_403(client: KeyClient, remote: Callable[[str], CryptographyClient]) -> None:
    verify_only = client.create_rsa_key(unique(), key_operations=["verify", "encrypt"])
    crypto = client.get_cryptography_client(verify_only.name)
    with pytest.raises(HttpResponseError) as err:
        crypto.sign(S.rs256, os.urandom(32))
    assert "sign" in _error(err, 403, "Forbidden")
    ciphertext = crypto.encrypt(E.rsa_oaep_256, b"locked").ciphertext  # allowed (and local)
    with pytest.raises(HttpResponseError) as err:
        crypto.decrypt(E.rsa_oaep_256, ciphertext)
    _error(err, 403, "Forbidden")
    with pytest.raises(HttpResponseError) as err:
        remote(verify_only.id).wrap_key(KeyWrapAlgorithm.rsa_oaep, os.urandom(32))
    _error(err, 403, "Forbidden")
    sym = client.create_oct_key(unique(), hardware_protected=True, key_operations=["decrypt"])
    with pytest.raises(HttpResponseError) as err:
        client.get_cryptography_client(sym.name).encrypt(E.a256_gcm, b"x")
    _error(err, 403, "Forbidden")


def test_operations_on_missing_key_or_version_are_404(client: KeyClient) -> None:
    key = client.create_ec_key(unique())
    resp = client.send_request(
        HttpRequest(
            "POST",
            f"/keys/{key.name}/{'0' * 32}/sign?api-version=7.6",
            json={"alg": "ES256", "value": _b64(os.urandom(32))},
        )
    )
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "KeyNotFound"
    resp = client.send_request(
        HttpRequest(
            "POST",
            f"/keys/{unique()}/{'0' * 32}/sign?api-version=7.6",
            json={"alg": "ES256", "value": _b64(os.urandom(32))},
        )
    )
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "KeyNotFound"


# -- random bytes -----------------------------------------------------------------------------------
def test_get_random_bytes(client: KeyClient) -> None:
    first, second = client.get_random_bytes(16), client.get_random_bytes(16)
    assert isinstance(first, bytes) and len(first) == 16 and len(second) == 16 and first != second
    assert len(client.get_random_bytes(1)) == 1 and len(client.get_random_bytes(128)) == 128
    with pytest.raises(HttpResponseError) as err:
        client.get_random_bytes(129)
    assert "count cannot be greater than 128 or less than 1" in _error(err, 400, "BadParameter")
    for body in ({"count": 0}, {"count": -1}, {"count": "16"}, {}):
        resp = client.send_request(HttpRequest("POST", "/rng?api-version=7.6", json=body))
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "BadParameter", body

"""Key release (SKR) through the SDK: a trusted attestation token gets the key, wrapped for its TEE key."""

from __future__ import annotations

import base64
import datetime
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.keys import KeyClient, KeyReleasePolicy
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from tests.e2e.conftest import Principal, unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow
AUTHORITY = "https://attest.kluis.test"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def authority(kluis: KluisServer, tmp_path_factory: pytest.TempPathFactory) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path_factory.mktemp("att") / "authority.pem"
    pem.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    kluis.cli("attestation", "add", "--authority", AUTHORITY, "--key-file", str(pem))
    return key


@pytest.fixture(scope="module")
def tee_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _token(signer: rsa.RSAPrivateKey, tee: rsa.RSAPrivateKey, **claims: object) -> str:
    pub = tee.public_key().public_numbers()
    body = {
        "iss": AUTHORITY,
        "exp": int(time.time()) + 600,
        "nbf": int(time.time()) - 10,
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-runtime": {"keys": [{"kid": "TpmEphemeralEncryptionKey", "kty": "RSA",
                                   "n": _b64(pub.n.to_bytes(256, "big")), "e": _b64(b"\x01\x00\x01")}]},
        **claims,
    }  # fmt: skip
    return jwt.encode(body, signer, algorithm="RS256")


POLICY = json.dumps(
    {
        "version": "1.0.0",
        "anyOf": [{"authority": AUTHORITY, "allOf": [{"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}]}],
    }
).encode()


def test_release_roundtrip(
    kluis: KluisServer, admin: Principal, key_client_for: Callable[..., KeyClient],
    authority: rsa.RSAPrivateKey, tee_key: rsa.RSAPrivateKey, tmp_path: Path,
) -> None:  # fmt: skip
    client = key_client_for(admin)
    name = unique("skr")
    key = client.create_rsa_key(name, exportable=True, release_policy=KeyReleasePolicy(POLICY))
    assert key.properties.exportable is True and key.properties.release_policy is not None
    result = client.release_key(name, _token(authority, tee_key))
    header_b64, payload_b64, sig_b64 = result.value.split(".")
    # the result is signed by kluis: verify against the JWKS it publishes
    jwks = httpx.get(f"{kluis.url}/{admin.tenant}/discovery/v2.0/keys", verify=False).json()["keys"]
    header = json.loads(_unb64(header_b64))
    jwk = next(k for k in jwks if k["kid"] == header["kid"])
    pub = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_unb64(jwk["x"]), "big"), int.from_bytes(_unb64(jwk["y"]), "big"), ec.SECP256R1()
    ).public_key()
    sig = _unb64(sig_b64)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    pub.verify(der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    payload = json.loads(_unb64(payload_b64))
    released = payload["response"]["key"]["key"]
    assert released["kid"] == key.id
    blob = json.loads(_unb64(released["key_hsm"]))
    wrapped = _unb64(blob["ciphertext"])
    aes = tee_key.decrypt(wrapped[:256], padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None))
    private = serialization.load_der_private_key(aes_key_unwrap_with_padding(aes, wrapped[256:]), None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.public_key().public_numbers().n == int.from_bytes(key.key.n, "big")


def test_release_refusals(
    admin: Principal, make_principal: Callable[..., Principal], key_client_for: Callable[..., KeyClient],
    authority: rsa.RSAPrivateKey, tee_key: rsa.RSAPrivateKey,
) -> None:  # fmt: skip
    client = key_client_for(admin)
    name = unique("skr")
    client.create_ec_key(name, exportable=True, release_policy=KeyReleasePolicy(POLICY))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(HttpResponseError) as err:
        client.release_key(name, _token(stranger, tee_key))  # not signed by a trusted authority
    assert err.value.status_code == 400
    with pytest.raises(HttpResponseError) as err:
        client.release_key(name, _token(authority, tee_key, **{"x-ms-attestation-type": "sgx"}))
    assert err.value.status_code == 403  # the policy is not satisfied
    with pytest.raises(HttpResponseError) as err:
        client.release_key(name, _token(authority, tee_key, exp=int(time.time()) - 3600))
    assert err.value.status_code == 400
    plain = unique("plain")
    client.create_ec_key(plain)
    with pytest.raises(HttpResponseError) as err:
        client.release_key(plain, _token(authority, tee_key))
    assert err.value.status_code == 403  # not exportable
    no_release = make_principal(None)
    with pytest.raises(HttpResponseError) as err:
        key_client_for(no_release).release_key(name, _token(authority, tee_key))
    assert err.value.status_code == 403


def test_release_follows_the_keys_state_not_its_time_window(
    admin: Principal, key_client_for: Callable[..., KeyClient],
    authority: rsa.RSAPrivateKey, tee_key: rsa.RSAPrivateKey,
) -> None:  # fmt: skip
    """Azure: outside nbf/exp a key still decrypts, unwraps, verifies and releases; disabled, it does none."""
    client = key_client_for(admin)
    name = unique("skr")
    client.create_ec_key(name, exportable=True, release_policy=KeyReleasePolicy(POLICY))
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    client.update_key_properties(name, expires_on=past)
    assert client.release_key(name, _token(authority, tee_key)).value  # expired: still released
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    client.update_key_properties(name, expires_on=None, not_before=future)
    assert client.release_key(name, _token(authority, tee_key)).value  # not yet valid: still released
    client.update_key_properties(name, enabled=False)
    with pytest.raises(HttpResponseError) as err:
        client.release_key(name, _token(authority, tee_key))
    assert err.value.status_code == 403 and "disabled" in str(err.value)

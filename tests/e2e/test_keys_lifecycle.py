"""Keys lifecycle through the official SDK: create, import, get, list (paging), update, soft delete.

Every assertion is on values kluis returned; public parts are checked with ``cryptography``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.keyvault.keys import JsonWebKey, KeyClient, KeyReleasePolicy, KeyVaultKey
from azure.keyvault.keys.crypto import CryptographyClient, EncryptionAlgorithm, SignatureAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.e2e.conftest import Principal, unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow

DAY = timedelta(days=1)
RELEASE_POLICY = json.dumps(
    {
        "version": "1.0.0",
        "anyOf": [
            {
                "authority": "https://sharedeus.eus.attest.azure.net/",
                "allOf": [{"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}],
            }
        ],
    }
).encode()
CURVES = {"P-256": (ec.SECP256R1(), 32), "P-384": (ec.SECP384R1(), 48), "P-521": (ec.SECP521R1(), 66)}
CURVES["P-256K"] = (ec.SECP256K1(), 32)


def _int(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _b(n: int, size: int | None = None) -> bytes:
    return n.to_bytes(size or (n.bit_length() + 7) // 8, "big")


def _crv(key: KeyVaultKey) -> str:
    crv = key.key.crv
    return str(getattr(crv, "value", crv))


def _rsa_public(key: KeyVaultKey) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(_int(key.key.e), _int(key.key.n)).public_key()


def _ec_public(key: KeyVaultKey) -> ec.EllipticCurvePublicKey:
    curve, size = CURVES[_crv(key)]
    assert len(key.key.x) == size and len(key.key.y) == size
    # raises ValueError unless (x, y) is a point on the curve
    return ec.EllipticCurvePublicNumbers(_int(key.key.x), _int(key.key.y), curve).public_key()


def _error(err: pytest.ExceptionInfo[HttpResponseError], status: int, code: str) -> str:
    assert err.value.status_code == status, str(err.value)
    assert err.value.error is not None and err.value.error.code == code, str(err.value)
    return str(err.value)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def empty(
    admin: Principal, make_vault: Callable[..., str], key_client_for: Callable[..., KeyClient]
) -> tuple[str, KeyClient]:
    """A vault of its own, for tests that count what a list returns."""
    name = make_vault()
    return name, key_client_for(admin, name)


def _absent(client: KeyClient, name: str) -> None:
    with pytest.raises(ResourceNotFoundError):
        client.get_key(name)


# -- create -----------------------------------------------------------------------------------------
def test_create_rsa_sizes_exponents_and_hsm(client: KeyClient, vault: str) -> None:
    made = [
        (client.create_rsa_key(unique(), size=2048), "RSA", 2048, 65537),
        (client.create_rsa_key(unique(), size=3072, public_exponent=3), "RSA", 3072, 3),
        (client.create_rsa_key(unique(), size=4096, hardware_protected=True), "RSA-HSM", 4096, 65537),
        (client.create_key(unique(), "RSA-HSM", size=2048, public_exponent=3), "RSA-HSM", 2048, 3),
        (client.create_key(unique(), "RSA", size=3072, public_exponent=65537), "RSA", 3072, 65537),
        (client.create_rsa_key(unique()), "RSA", 2048, 65537),  # Key Vault's default size
    ]
    for key, kty, size, exponent in made:
        assert key.key_type == kty
        assert key.id == f"https://{vault}.vault.azure.net/keys/{key.name}/{key.properties.version}"
        assert len(key.properties.version or "") == 32
        public = _rsa_public(key)
        assert public.key_size == size and public.public_numbers().e == exponent
        assert len(key.key.n) == size // 8
        assert key.key.d is None and key.key.p is None and key.key.q is None  # never the private part
        assert key.key_operations == ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]
        assert key.properties.enabled is True and key.properties.recovery_level == "Recoverable+Purgeable"
        assert key.properties.created_on is not None and key.properties.created_on == key.properties.updated_on
    assert len({k.key.n for k, *_ in made}) == len(made)


def test_create_ec_every_curve_software_and_hsm(client: KeyClient) -> None:
    for curve in ("P-256", "P-384", "P-521", "P-256K"):
        soft = client.create_ec_key(unique(), curve=curve)
        hsm = client.create_key(unique(), "EC-HSM", curve=curve)
        for key, kty in ((soft, "EC"), (hsm, "EC-HSM")):
            assert key.key_type == kty and key.key.crv == curve
            _ec_public(key)
            assert key.key.d is None
            assert key.key_operations == ["sign", "verify"]
    default = client.create_ec_key(unique())
    assert default.key.crv == "P-256"


def test_create_oct_every_size(client: KeyClient) -> None:
    for size in (128, 192, 256):
        # a vault holds symmetric keys only as oct-HSM (premium): software "oct" is Azure's 400
        # "Invalid kty value: oct" / KeyTypeNotSupported (azure-sdk-for-net#13437)
        with pytest.raises(HttpResponseError) as err:
            client.create_oct_key(unique(), size=size)
        assert "Invalid kty value: oct" in _error(err, 400, "BadParameter")
        assert err.value.error is not None and err.value.error.innererror == {"code": "KeyTypeNotSupported"}
        hsm = client.create_oct_key(unique(), size=size, hardware_protected=True)
        generic = client.create_key(unique(), "oct-HSM", size=size)
        for key, kty in ((hsm, "oct-HSM"), (generic, "oct-HSM")):
            assert key.key_type == kty
            assert key.key.k is None  # symmetric material never leaves the vault
            assert key.key_operations == ["encrypt", "decrypt", "wrapKey", "unwrapKey"]
        # the size is real: only the matching AES-GCM algorithm is accepted
        crypto = client.get_cryptography_client(hsm.name)
        right = EncryptionAlgorithm(f"A{size}GCM")
        wrong = EncryptionAlgorithm("A256GCM" if size != 256 else "A128GCM")
        ok = crypto.encrypt(right, b"sized")
        assert crypto.decrypt(right, ok.ciphertext, iv=ok.iv, authentication_tag=ok.tag).plaintext == b"sized"
        with pytest.raises(HttpResponseError) as err:
            crypto.encrypt(wrong, b"sized")
        _error(err, 400, "BadParameter")


def test_create_with_attributes_ops_and_tags(client: KeyClient) -> None:
    nbf, exp = _now() - DAY, _now() + 30 * DAY
    key = client.create_ec_key(
        unique(),
        curve="P-384",
        key_operations=["sign"],
        enabled=False,
        not_before=nbf,
        expires_on=exp,
        tags={"team": "crypto", "env": "e2e"},
    )
    assert key.key_operations == ["sign"]
    props = key.properties
    assert props.enabled is False and props.not_before == nbf and props.expires_on == exp
    assert props.tags == {"team": "crypto", "env": "e2e"}
    again = client.get_key(key.name)
    assert again.id == key.id and again.properties.enabled is False
    assert again.properties.not_before == nbf and again.properties.expires_on == exp
    assert again.properties.tags == {"team": "crypto", "env": "e2e"} and again.key_operations == ["sign"]
    rsa_key = client.create_rsa_key(unique(), key_operations=["encrypt", "decrypt"], tags={"a": "b"})
    assert rsa_key.key_operations == ["encrypt", "decrypt"] and rsa_key.properties.tags == {"a": "b"}


def test_exportable_key_needs_release_policy(client: KeyClient) -> None:
    policy = KeyReleasePolicy(RELEASE_POLICY)
    key = client.create_rsa_key(unique(), exportable=True, release_policy=policy)
    assert key.properties.exportable is True
    assert key.properties.release_policy is not None
    assert key.properties.release_policy.encoded_policy == RELEASE_POLICY
    assert key.properties.release_policy.content_type == "application/json; charset=utf-8"
    assert key.properties.release_policy.immutable in (None, False)
    got = client.get_key(key.name)
    assert got.properties.exportable is True
    assert got.properties.release_policy is not None
    assert json.loads(got.properties.release_policy.encoded_policy) == json.loads(RELEASE_POLICY)
    plain = client.create_ec_key(unique())
    assert plain.properties.exportable is False and plain.properties.release_policy is None

    with pytest.raises(HttpResponseError) as err:
        client.create_rsa_key(unique(), exportable=True)
    assert "release policy" in _error(err, 400, "BadParameter").lower()
    with pytest.raises(HttpResponseError) as err:
        client.create_ec_key(unique(), release_policy=policy)
    assert "Non-exportable keys must not have release policy" in _error(err, 400, "BadParameter")
    with pytest.raises(HttpResponseError) as err:
        client.create_oct_key(unique(), exportable=False, release_policy=policy, hardware_protected=True)
    _error(err, 400, "BadParameter")

    # updates keep the rule: a new policy on an exportable key is fine, none on a plain key is refused
    other = json.dumps({"version": "1.0.0", "anyOf": [{"authority": "https://a.example", "allOf": []}]}).encode()
    changed = client.update_key_properties(key.name, release_policy=KeyReleasePolicy(other))
    assert changed.properties.release_policy is not None
    assert changed.properties.release_policy.encoded_policy == other and changed.properties.exportable is True
    with pytest.raises(HttpResponseError) as err:
        client.update_key_properties(plain.name, release_policy=policy)
    assert "Non-exportable keys must not have release policy" in _error(err, 400, "BadParameter")
    # exportable is fixed at creation (the SDK cannot even send it on update; raw PATCH bodies can)
    raw_policy = {"data": base64.urlsafe_b64encode(RELEASE_POLICY).decode().rstrip("=")}
    for target, body in (
        (plain, {"attributes": {"exportable": True}}),
        (plain, {"attributes": {"exportable": True}, "release_policy": raw_policy}),
        (key, {"attributes": {"exportable": False}}),
        (key, {"release_policy": None}),  # an exportable key must keep a release policy
    ):
        resp = client.send_request(HttpRequest("PATCH", f"/keys/{target.name}/?api-version=7.6", json=body))
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "BadParameter", resp.text()
    same = client.send_request(
        HttpRequest("PATCH", f"/keys/{key.name}/?api-version=7.6", json={"attributes": {"exportable": True}})
    )
    assert same.status_code == 200 and same.json()["attributes"]["exportable"] is True  # unchanged is fine
    assert client.get_key(plain.name).properties.exportable is False
    assert client.get_key(key.name).properties.release_policy is not None


def test_bad_size_curve_kty_and_name_are_400(client: KeyClient) -> None:
    bad_calls: list[Callable[[str], Any]] = [
        lambda n: client.create_rsa_key(n, size=1024),
        lambda n: client.create_rsa_key(n, size=2047),
        lambda n: client.create_rsa_key(n, public_exponent=4),
        lambda n: client.create_ec_key(n, curve="P-999"),
        lambda n: client.create_key(n, "EC", curve="secp256r1"),
        lambda n: client.create_oct_key(n, size=512),
        lambda n: client.create_key(n, "DSA"),
        lambda n: client.create_key(n, "RSA", curve="P-256"),
        lambda n: client.create_key(n, "EC", curve="P-384", size=256),
        lambda n: client.create_key(n, "oct-HSM", public_exponent=3),
        lambda n: client.create_rsa_key(n, key_operations=["fly"]),
    ]
    for call in bad_calls:
        name = unique()
        with pytest.raises(HttpResponseError) as err:
            call(name)
        _error(err, 400, "BadParameter")
        _absent(client, name)  # nothing was created by the failure
    for bad_name in ("bad_name", "a.b", "x" * 128):
        with pytest.raises(HttpResponseError) as err:
            client.create_rsa_key(bad_name)
        assert f"The request URI contains an invalid name: {bad_name}" in _error(err, 400, "BadParameter")
    with pytest.raises(HttpResponseError) as err:
        client.import_key("bad_name", JsonWebKey(kty="oct", k=os.urandom(32)))
    _error(err, 400, "BadParameter")


# -- import -----------------------------------------------------------------------------------------
def _rsa_jwk(private: rsa.RSAPrivateKey, *, crt: bool = True, **extra: Any) -> JsonWebKey:
    nums = private.private_numbers()
    pub = nums.public_numbers
    fields: dict[str, Any] = {"kty": "RSA", "n": _b(pub.n), "e": _b(pub.e), "d": _b(nums.d)}
    if crt:
        fields.update(p=_b(nums.p), q=_b(nums.q), dp=_b(nums.dmp1), dq=_b(nums.dmq1), qi=_b(nums.iqmp))
    fields.update(extra)
    return JsonWebKey(**fields)


def _ec_jwk(private: ec.EllipticCurvePrivateKey, crv: str) -> JsonWebKey:
    size = CURVES[crv][1]
    pub = private.public_key().public_numbers()
    return JsonWebKey(
        kty="EC",
        crv=crv,
        x=_b(pub.x, size),
        y=_b(pub.y, size),
        d=_b(private.private_numbers().private_value, size),
    )


def test_import_rsa_with_and_without_primes(
    kluis: KluisServer, admin: Principal, client: KeyClient, crypto_client_for: Callable[..., CryptographyClient]
) -> None:
    private = rsa.generate_private_key(65537, 2048)
    digest = hashlib.sha256(b"imported").digest()
    full = client.import_key(unique(), _rsa_jwk(private), tags={"src": "byok"})
    bare = client.import_key(unique(), _rsa_jwk(private, crt=False), hardware_protected=True)
    hsm_kty = client.import_key(unique(), _rsa_jwk(private, kty="RSA-HSM"))
    assert full.key_type == "RSA" and bare.key_type == "RSA-HSM" and hsm_kty.key_type == "RSA-HSM"
    assert full.properties.tags == {"src": "byok"}
    for key in (full, bare, hsm_kty):
        assert key.key.n == _b(private.public_key().public_numbers().n)
        assert key.key.d is None and key.key.p is None
        signed = client.get_cryptography_client(key.name).sign(SignatureAlgorithm.rs256, digest)
        private.public_key().verify(
            signed.signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        )  # raises if kluis signed with anything but the imported private key
    ops = client.import_key(unique(), _rsa_jwk(private, key_ops=["decrypt"]))
    assert ops.key_operations == ["decrypt"]
    ciphertext = private.public_key().encrypt(b"secret", padding.PKCS1v15())
    assert client.get_cryptography_client(ops.name).decrypt(EncryptionAlgorithm.rsa1_5, ciphertext).plaintext == (
        b"secret"
    )


def test_import_ec_and_oct(client: KeyClient) -> None:
    for crv, (curve, _) in CURVES.items():
        private = ec.generate_private_key(curve)
        key = client.import_key(unique(), _ec_jwk(private, crv), hardware_protected=crv == "P-384")
        assert key.key_type == ("EC-HSM" if crv == "P-384" else "EC") and key.key.crv == crv
        assert _ec_public(key).public_numbers() == private.public_key().public_numbers()
        assert key.key.d is None
    secret = os.urandom(32)
    oct_key = client.import_key(unique(), JsonWebKey(kty="oct", k=secret), hardware_protected=True)
    assert oct_key.key_type == "oct-HSM" and oct_key.key.k is None
    enc = client.get_cryptography_client(oct_key.name).encrypt(
        EncryptionAlgorithm.a256_gcm, b"hello", additional_authenticated_data=b"hdr"
    )
    assert enc.iv is not None and enc.tag is not None
    # kluis really uses the imported bytes: decrypt its output locally
    assert AESGCM(secret).decrypt(enc.iv, enc.ciphertext + enc.tag, b"hdr") == b"hello"


def test_import_malformed_or_inconsistent_jwk_is_400(client: KeyClient) -> None:
    private = rsa.generate_private_key(65537, 2048)
    nums = private.private_numbers()
    ec_private = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    bad_ec = _ec_jwk(ec_private, "P-256")
    bad_ec.d = _b(other.private_numbers().private_value, 32)
    bad: list[JsonWebKey] = [
        _rsa_jwk(private, d=_b(nums.d + 2)),  # d does not match n, e
        _rsa_jwk(private, p=_b(nums.p + 2)),  # p is not a factor of n
        JsonWebKey(kty="RSA", n=_b(nums.public_numbers.n), e=_b(nums.public_numbers.e)),  # public part only
        _rsa_jwk(rsa.generate_private_key(65537, 1024)),  # unsupported size
        bad_ec,  # d is not the private key of (x, y)
        JsonWebKey(kty="EC", crv="P-256", x=bad_ec.x, y=bad_ec.y),  # no d
        JsonWebKey(kty="EC", crv="P-999", x=bad_ec.x, y=bad_ec.y, d=bad_ec.d),
        JsonWebKey(kty="oct", k=os.urandom(20)),  # not an AES key length
        JsonWebKey(kty="oct"),
        JsonWebKey(kty="DSA", k=os.urandom(32)),
    ]
    for jwk in bad:
        name = unique()
        with pytest.raises(HttpResponseError) as err:
            client.import_key(name, jwk)
        _error(err, 400, "BadParameter")
        _absent(client, name)
    with pytest.raises(HttpResponseError) as err:  # a key that is not a JSON object at all
        client.send_request(
            HttpRequest("PUT", f"/keys/{unique()}?api-version=7.6", json={"key": "not-a-jwk"})
        ).raise_for_status()
    assert err.value.status_code == 400


# -- get / versions / list --------------------------------------------------------------------------
def test_get_latest_and_specific_version(client: KeyClient, vault: str) -> None:
    name = unique()
    v1 = client.create_ec_key(name, curve="P-256", tags={"v": "1"})
    v2 = client.create_ec_key(name, curve="P-384", tags={"v": "2"})
    assert v1.properties.version != v2.properties.version
    latest = client.get_key(name)
    assert latest.id == v2.id and latest.key.crv == "P-384" and latest.properties.tags == {"v": "2"}
    old = client.get_key(name, v1.properties.version)
    assert old.id == v1.id and old.key.x == v1.key.x and old.properties.tags == {"v": "1"}
    assert client.get_key(name.upper()).id == v2.id  # names are case-insensitive
    with pytest.raises(ResourceNotFoundError) as err:
        client.get_key(name, "0" * 32)
    assert _error(err, 404, "KeyNotFound")
    with pytest.raises(ResourceNotFoundError) as err:
        client.get_key(unique())
    assert "was not found in this key vault" in _error(err, 404, "KeyNotFound")
    attested = client.get_key_attestation(name)  # GET /keys/{name}//attestation: the latest version
    assert attested.id == v2.id and attested.key.x == v2.key.x
    assert client.get_key_attestation(name, v1.properties.version).id == v1.id
    with pytest.raises(ResourceNotFoundError):
        client.get_key_attestation(unique())
    # the raw latest-version addressing the SDKs use: trailing slash and no version
    raw = client.send_request(HttpRequest("GET", f"/keys/{name}/?api-version=2025-07-01"))
    assert raw.status_code == 200 and raw.json()["key"]["kid"] == v2.id


def _pages(pager: Any) -> list[list[Any]]:
    return [list(page) for page in pager.by_page()]


def test_list_keys_and_versions_page_through_next_link(empty: tuple[str, KeyClient]) -> None:
    vault, client = empty
    names = sorted(unique("p") for _ in range(27))
    for n in names:
        client.create_oct_key(n, hardware_protected=True, tags={"n": n})
    pages = _pages(client.list_properties_of_keys())
    assert [len(p) for p in pages] == [25, 2]  # Key Vault's default page size, then nextLink
    listed = [p for page in pages for p in page]
    assert sorted(p.name for p in listed) == names
    for p in listed:
        assert p.id == f"https://{vault}.vault.azure.net/keys/{p.name}"  # versionless in the keys list
        assert p.version is None and p.tags == {"n": p.name} and p.enabled is True
    small = _pages(client.list_properties_of_keys(max_page_size=5))
    assert [len(p) for p in small] == [5, 5, 5, 5, 5, 2]
    assert sorted(p.name for page in small for p in page) == names

    name = names[0]
    versions = [client.get_key(name).properties.version]
    versions += [client.create_oct_key(name, hardware_protected=True).properties.version for _ in range(6)]
    assert len(list(client.list_properties_of_key_versions(name))) == 7  # one page
    vpages = _pages(client.list_properties_of_key_versions(name, max_page_size=3))
    assert [len(p) for p in vpages] == [3, 3, 1]
    listed_versions = [p for page in vpages for p in page]
    assert sorted(p.version for p in listed_versions) == sorted(versions)
    for p in listed_versions:
        assert p.id == f"https://{vault}.vault.azure.net/keys/{name}/{p.version}"  # versioned
        assert p.name == name
    # A name that never existed has no versions: Azure answers an empty page, not 404 (see
    # kluis.domain.lifecycle.Lifecycle.list_versions).
    assert list(client.list_properties_of_key_versions(unique())) == []


def test_list_default_vault_pages_on_localhost(
    kluis: KluisServer, admin: Principal, key_client_for: Callable[..., KeyClient]
) -> None:
    client = key_client_for(admin)
    prefix = unique("dflt")
    names = sorted(f"{prefix}-{i:02d}" for i in range(26))
    for n in names:
        client.create_ec_key(n)
    pages = _pages(client.list_properties_of_keys())
    assert len(pages) >= 2 and all(len(p) <= 25 for p in pages) and len(pages[0]) == 25
    ours = [p for page in pages for p in page if p.name.startswith(prefix)]
    assert sorted(p.name for p in ours) == names
    assert all(p.id == f"{kluis.url}/keys/{p.name}" for p in ours)
    small = _pages(client.list_properties_of_keys(max_page_size=7))
    assert sum(len(p) for p in small) == sum(len(p) for p in pages)
    for n in names[:1]:
        for _ in range(3):
            client.create_ec_key(n)
        versions = _pages(client.list_properties_of_key_versions(n, max_page_size=2))
        assert [len(p) for p in versions] == [2, 2]
        assert all(p.id.startswith(f"{kluis.url}/keys/{n}/") for page in versions for p in page)


def test_maxresults_out_of_range_is_400(client: KeyClient) -> None:
    for bad in (0, 26):
        with pytest.raises(HttpResponseError) as err:
            list(client.list_properties_of_keys(max_page_size=bad))
        _error(err, 400, "BadParameter")


# -- update -----------------------------------------------------------------------------------------
def test_update_is_a_patch(client: KeyClient) -> None:
    name = unique()
    exp = _now() + 60 * DAY
    key = client.create_rsa_key(name, tags={"a": "1"}, expires_on=exp, key_operations=["sign", "verify"])
    v = key.properties.version
    time.sleep(1.1)  # so that "updated" moves
    disabled = client.update_key_properties(name, v, enabled=False)
    assert disabled.properties.enabled is False
    assert disabled.properties.tags == {"a": "1"} and disabled.properties.expires_on == exp
    assert disabled.key_operations == ["sign", "verify"] and disabled.key.n == key.key.n
    assert disabled.properties.updated_on is not None and key.properties.updated_on is not None
    assert disabled.properties.updated_on > key.properties.updated_on
    assert disabled.properties.created_on == key.properties.created_on

    tagged = client.update_key_properties(name, tags={"b": "2"})  # latest version, no version given
    assert tagged.properties.tags == {"b": "2"} and tagged.properties.enabled is False
    assert tagged.properties.expires_on == exp

    nbf, exp2 = _now() - DAY, _now() + 90 * DAY
    changed = client.update_key_properties(
        name, v, enabled=True, not_before=nbf, expires_on=exp2, key_operations=["encrypt", "decrypt"]
    )
    assert changed.properties.enabled is True
    assert changed.properties.not_before == nbf and changed.properties.expires_on == exp2
    assert changed.key_operations == ["encrypt", "decrypt"] and changed.properties.tags == {"b": "2"}
    got = client.get_key(name)
    assert got.properties.not_before == nbf and got.key_operations == ["encrypt", "decrypt"]

    newer = client.create_rsa_key(name)
    client.update_key_properties(name, v, tags={"old": "yes"})
    assert client.get_key(name).properties.tags is None or client.get_key(name).properties.tags == {}
    assert client.get_key(name).id == newer.id
    assert client.get_key(name, v).properties.tags == {"old": "yes"}

    with pytest.raises(ResourceNotFoundError):
        client.update_key_properties(unique(), enabled=False)
    with pytest.raises(HttpResponseError) as err:
        client.update_key_properties(name, key_operations=["teleport"])
    _error(err, 400, "BadParameter")


def test_disabled_expired_and_not_yet_valid_keys(
    kluis: KluisServer,
    vault: str,
    client: KeyClient,
    make_principal: Callable[..., Principal],
    crypto_client_for: Callable[..., CryptographyClient],
) -> None:
    digest = hashlib.sha256(b"state").digest()
    key = client.create_rsa_key(unique())
    public = _rsa_public(key)
    ciphertext = public.encrypt(b"kept", padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None))

    client.update_key_properties(key.name, enabled=False)
    crypto = client.get_cryptography_client(key.name)
    for op in (
        lambda: crypto.sign(SignatureAlgorithm.rs256, digest),
        lambda: crypto.decrypt(EncryptionAlgorithm.rsa_oaep, ciphertext),
    ):
        with pytest.raises(HttpResponseError) as err:
            op()
        assert "disabled" in _error(err, 403, "Forbidden")
    assert client.get_key(key.name).properties.enabled is False  # still readable

    # expired: sign refused, decrypt (and unwrap, verify) stay allowed
    client.update_key_properties(key.name, enabled=True, expires_on=_now() - DAY)
    crypto = client.get_cryptography_client(key.name)
    with pytest.raises(HttpResponseError) as err:
        crypto.sign(SignatureAlgorithm.rs256, digest)
    assert "expired" in _error(err, 403, "Forbidden")
    assert crypto.decrypt(EncryptionAlgorithm.rsa_oaep, ciphertext).plaintext == b"kept"
    wrapped = public.encrypt(b"k" * 32, padding.PKCS1v15())
    assert crypto.unwrap_key(EncryptionAlgorithm.rsa1_5, wrapped).key == b"k" * 32

    # not yet valid: a principal without keys/get makes the SDK go remote for encrypt
    client.update_key_properties(key.name, not_before=_now() + 10 * DAY, expires_on=_now() + 20 * DAY)
    encryptor = make_principal(vault, "encrypt", "sign", "verify")
    remote = crypto_client_for(encryptor, key.id, vault)
    with pytest.raises(HttpResponseError) as err:
        remote.encrypt(EncryptionAlgorithm.rsa_oaep_256, b"too early")
    assert "not yet valid" in _error(err, 403, "Forbidden")
    with pytest.raises(HttpResponseError) as err:
        remote.sign(SignatureAlgorithm.ps256, digest)
    _error(err, 403, "Forbidden")
    client.update_key_properties(key.name, not_before=_now() - DAY)
    assert len(remote.encrypt(EncryptionAlgorithm.rsa_oaep_256, b"now ok").ciphertext) == 256


# -- soft delete ------------------------------------------------------------------------------------
def test_delete_get_list_recover_purge(client: KeyClient, vault: str) -> None:
    name = unique()
    key = client.create_ec_key(name, tags={"t": "1"})
    second = client.create_ec_key(name)
    poller = client.begin_delete_key(name)
    deleted = poller.result()
    poller.wait()
    assert deleted.name == name and deleted.id == second.id
    assert deleted.recovery_id == f"https://{vault}.vault.azure.net/deletedkeys/{name}"
    assert deleted.deleted_date is not None and deleted.scheduled_purge_date is not None
    assert deleted.scheduled_purge_date - deleted.deleted_date == timedelta(days=90)
    with pytest.raises(ResourceNotFoundError):
        client.get_key(name)
    assert name not in [p.name for p in client.list_properties_of_keys()]

    got = client.get_deleted_key(name)
    assert got.id == second.id and got.recovery_id == deleted.recovery_id
    assert got.deleted_date == deleted.deleted_date and got.key.x == second.key.x
    listed = {d.name: d for d in client.list_deleted_keys()}
    assert listed[name].recovery_id == deleted.recovery_id
    assert listed[name].id == f"https://{vault}.vault.azure.net/keys/{name}"
    assert listed[name].scheduled_purge_date == deleted.scheduled_purge_date

    with pytest.raises(ResourceExistsError) as err:
        client.create_ec_key(name)
    msg = _error(err, 409, "Conflict")
    assert "deleted but recoverable" in msg
    assert err.value.error is not None and err.value.error.innererror is not None
    assert err.value.error.innererror["code"] == "ObjectIsDeletedButRecoverable"
    with pytest.raises(ResourceExistsError):
        client.import_key(name, JsonWebKey(kty="oct-HSM", k=os.urandom(16)))

    recovered = client.begin_recover_deleted_key(name)
    recovered.wait()
    back = recovered.result()
    assert back.id == second.id and back.key.x == second.key.x
    versions = sorted(p.version for p in client.list_properties_of_key_versions(name))
    assert versions == sorted([key.properties.version, second.properties.version])
    assert client.get_key(name, key.properties.version).properties.tags == {"t": "1"}
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_key(name)
    with pytest.raises(HttpResponseError):
        client.begin_recover_deleted_key(unique()).result()

    client.begin_delete_key(name).wait()
    purge = client.send_request(HttpRequest("DELETE", f"/deletedkeys/{name}?api-version=7.6"))
    assert purge.status_code == 204 and purge.content == b""
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_key(name)
    assert name not in [d.name for d in client.list_deleted_keys()]
    with pytest.raises(ResourceNotFoundError):
        client.purge_deleted_key(name)
    reborn = client.create_ec_key(name)  # the name is free again
    assert reborn.properties.version not in versions
    assert [p.version for p in client.list_properties_of_key_versions(name)] == [reborn.properties.version]

    other = client.create_rsa_key(unique())
    client.begin_delete_key(other.name).wait()
    assert client.purge_deleted_key(other.name) is None
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_key(other.name)


def test_list_deleted_keys_pages(empty: tuple[str, KeyClient]) -> None:
    _, client = empty
    names = sorted(unique("d") for _ in range(7))
    for n in names:
        client.create_oct_key(n, hardware_protected=True)
        client.begin_delete_key(n)
    pages = _pages(client.list_deleted_keys(max_page_size=3))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(d.name for page in pages for d in page) == names
    assert all(d.recovery_id and d.recovery_id.endswith(f"/deletedkeys/{d.name}") for p in pages for d in p)


def test_purge_needs_permission_and_no_purge_protection(
    kluis: KluisServer,
    admin: Principal,
    make_vault: Callable[..., str],
    make_principal: Callable[..., Principal],
    key_client_for: Callable[..., KeyClient],
) -> None:
    vault = make_vault()
    no_purge = make_principal(vault, "get", "list", "create", "delete", "recover")
    client = key_client_for(no_purge, vault)
    name = unique()
    client.create_ec_key(name)
    client.begin_delete_key(name).wait()
    with pytest.raises(HttpResponseError) as err:
        client.purge_deleted_key(name)
    assert "does not have keys purge permission" in _error(err, 403, "Forbidden")
    assert client.get_deleted_key(name).name == name  # still there

    protected = make_vault("--enable-purge-protection")
    pclient = key_client_for(admin, protected)  # every permission, purge included
    key = pclient.create_ec_key(name)
    assert key.properties.recovery_level == "Recoverable"
    deleted = pclient.begin_delete_key(name).result()
    assert deleted.properties.recovery_level == "Recoverable"
    with pytest.raises(HttpResponseError) as err:
        pclient.purge_deleted_key(name)
    assert "purge protection is enabled" in _error(err, 403, "Forbidden")
    assert pclient.get_deleted_key(name).name == name
    pclient.begin_recover_deleted_key(name).wait()
    assert pclient.get_key(name).id == key.id


def test_retention_days_and_automatic_purge(
    kluis: KluisServer,
    make_vault: Callable[..., str],
    admin: Principal,
    key_client_for: Callable[..., KeyClient],
) -> None:
    vault = make_vault("--retention-days", "7")
    client = key_client_for(admin, vault)
    name, kept = unique(), unique()
    key = client.create_ec_key(name)
    assert key.properties.recovery_level == "CustomizedRecoverable+Purgeable"
    assert key.properties.recoverable_days == 7
    deleted = client.begin_delete_key(name).result()
    assert deleted.scheduled_purge_date is not None and deleted.deleted_date is not None
    assert deleted.scheduled_purge_date - deleted.deleted_date == timedelta(days=7)
    client.create_ec_key(kept)
    kluis.cli("housekeeping")  # retention not over: nothing is purged
    assert client.get_deleted_key(name).name == name

    kluis.cli("time", "set", "--offset", str(8 * 86400))
    try:
        # the count is not asserted: the server's own scheduler (every 30 s) may have done it first
        kluis.cli("housekeeping")
        later = key_client_for(admin, vault)
        with pytest.raises(ResourceNotFoundError):
            later.get_deleted_key(name)
        # tokens live on real time: the client whose token was cached before the jump is still served
        assert client.get_key(kept).name == kept
        assert name not in [d.name for d in later.list_deleted_keys()]
        assert later.get_key(kept).name == kept  # live keys are untouched
        assert later.create_ec_key(name).name == name  # and the name is free
    finally:
        kluis.cli("time", "set", "--offset", "0")


def test_moved_time_is_seen_by_every_worker_at_once(tmp_path: Any) -> None:
    """``kluis time set`` (here: the management API) takes effect on the next request of *every*
    worker, not only the one that served the change. Both workers are warmed first (many fresh
    connections, which the kernel spreads over the workers' sockets), so each has read the old offset
    just before; with the earlier 1 s per-worker cache about half of the signs right after the move
    were still answered (an attacker's finding: 6 of 12)."""
    import ssl

    import httpx

    from kluis.cli.client import AdminClient
    from kluis.config import DataDir
    from tests.e2e.server import admin_clients

    server = KluisServer(tmp_path / "data", extra_args=["--workers", "2"]).start()
    try:
        keys, _, cred = admin_clients(server)
        name = unique()
        key = keys.create_ec_key(name, expires_on=datetime.now(UTC) + timedelta(minutes=10))
        assert key.id is not None
        token = cred.get_token("https://vault.azure.net/.default").token
        url = f"{key.id}/sign?api-version=7.6"
        body = {"alg": "ES256", "value": base64.urlsafe_b64encode(hashlib.sha256(b"x").digest()).decode().rstrip("=")}

        trust = ssl.create_default_context(cafile=server.ca)

        def sign_on_a_fresh_connection() -> int:
            with httpx.Client(verify=trust, timeout=10) as fresh:
                return fresh.post(url, json=body, headers={"Authorization": f"Bearer {token}"}).status_code

        workers = AdminClient(DataDir(server.data_dir))
        try:
            for _ in range(3):
                assert [sign_on_a_fresh_connection() for _ in range(16)] == [200] * 16  # both workers read offset 0
                workers.call("PUT", "/time", {"offsetSeconds": 3600})  # the key expired an hour ago
                statuses = [sign_on_a_fresh_connection() for _ in range(16)]
                assert statuses == [403] * 16, statuses
                workers.call("PUT", "/time", {"offsetSeconds": 0})
        finally:
            workers.call("PUT", "/time", {"offsetSeconds": 0})
    finally:
        server.stop()

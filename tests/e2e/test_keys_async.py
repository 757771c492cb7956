"""The core keys journey with the asynchronous clients (``azure.keyvault.keys.aio``, aiohttp transport).

Direct mode (``https://localhost:PORT``, kluis as the ``adfs`` authority) and through the CONNECT proxy
with challenge verification on. No pytest plugin: each test drives its own event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity.aio import ClientSecretCredential
from azure.keyvault.keys import KeyRotationLifetimeAction, KeyRotationPolicy, KeyRotationPolicyAction
from azure.keyvault.keys.aio import KeyClient
from azure.keyvault.keys.crypto import EncryptionAlgorithm, KeyWrapAlgorithm, SignatureAlgorithm
from azure.keyvault.keys.crypto.aio import CryptographyClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from tests.e2e.conftest import Principal, unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow


def _direct_credential(kluis: KluisServer, who: Principal) -> ClientSecretCredential:
    return ClientSecretCredential("adfs", who.app_id, who.password, authority=kluis.url, connection_verify=kluis.ca)


def _rsa_public(n: bytes, e: bytes) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()


async def _pages(pager: Any) -> list[list[Any]]:
    out = []
    async for page in pager.by_page():
        out.append([item async for item in page])
    return out


async def _direct_journey(kluis: KluisServer, admin: Principal) -> None:
    credential = _direct_credential(kluis, admin)
    async with (
        credential,
        KeyClient(kluis.url, credential, verify_challenge_resource=False, connection_verify=kluis.ca) as client,
    ):
        prefix = unique("async")
        # create (concurrently: aiohttp keeps several requests in flight)
        rsa_key, ec_key, oct_key = await asyncio.gather(
            client.create_rsa_key(f"{prefix}-rsa", size=2048, tags={"mode": "async"}),
            client.create_ec_key(f"{prefix}-ec", curve="P-384"),
            client.create_oct_key(f"{prefix}-oct", size=256, hardware_protected=True),
        )
        assert rsa_key.id.startswith(f"{kluis.url}/keys/{prefix}-rsa/") and len(rsa_key.key.n) == 256
        assert ec_key.key.crv == "P-384" and oct_key.key_type == "oct-HSM" and oct_key.key.k is None
        got = await client.get_key(rsa_key.name)
        assert got.id == rsa_key.id and got.properties.tags == {"mode": "async"}
        assert (await client.get_key(rsa_key.name, rsa_key.properties.version)).key.n == rsa_key.key.n

        # update (PATCH)
        exp = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
        updated = await client.update_key_properties(ec_key.name, expires_on=exp, tags={"x": "y"})
        assert updated.properties.expires_on == exp and updated.properties.tags == {"x": "y"}
        assert updated.properties.enabled is True and updated.key.x == ec_key.key.x

        # list with paging: 26 more keys and 26 versions force a nextLink on each list
        names = [f"{prefix}-p{i:02d}" for i in range(26)]
        await asyncio.gather(*(client.create_ec_key(n) for n in names))
        pages = await _pages(client.list_properties_of_keys())
        assert len(pages) >= 2 and len(pages[0]) == 25
        listed = {p.name: p for page in pages for p in page}
        assert set(names) | {rsa_key.name, ec_key.name, oct_key.name} <= set(listed)
        assert listed[names[0]].id == f"{kluis.url}/keys/{names[0]}" and listed[names[0]].version is None
        for _ in range(25):
            await client.create_ec_key(names[0])
        vpages = await _pages(client.list_properties_of_key_versions(names[0]))
        assert [len(p) for p in vpages] == [25, 1]
        assert all(p.id == f"{kluis.url}/keys/{names[0]}/{p.version}" for page in vpages for p in page)
        small = await _pages(client.list_properties_of_key_versions(names[0], max_page_size=10))
        assert [len(p) for p in small] == [10, 10, 6]

        # crypto: sign remote / verify locally; encrypt locally / decrypt remote; GCM remote
        crypto = client.get_cryptography_client(rsa_key.name)
        digest = hashlib.sha256(b"async").digest()
        signed = await crypto.sign(SignatureAlgorithm.rs256, digest)
        public = _rsa_public(rsa_key.key.n, rsa_key.key.e)
        public.verify(signed.signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        assert (await crypto.verify(SignatureAlgorithm.rs256, digest, signed.signature)).is_valid
        enc = await crypto.encrypt(EncryptionAlgorithm.rsa_oaep_256, b"async secret")
        assert (await crypto.decrypt(EncryptionAlgorithm.rsa_oaep_256, enc.ciphertext)).plaintext == b"async secret"
        wrapped = await crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep, b"k" * 32)
        assert (await crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep, wrapped.encrypted_key)).key == b"k" * 32
        async with CryptographyClient(
            ec_key.id, credential, verify_challenge_resource=False, connection_verify=kluis.ca
        ) as ec_crypto:
            d384 = hashlib.sha384(b"ec").digest()
            sig = (await ec_crypto.sign(SignatureAlgorithm.es384, d384)).signature
            assert len(sig) == 96
            ec.EllipticCurvePublicNumbers(
                int.from_bytes(ec_key.key.x, "big"), int.from_bytes(ec_key.key.y, "big"), ec.SECP384R1()
            ).public_key().verify(
                utils.encode_dss_signature(int.from_bytes(sig[:48], "big"), int.from_bytes(sig[48:], "big")),
                d384,
                ec.ECDSA(utils.Prehashed(hashes.SHA384())),
            )
        oct_crypto = client.get_cryptography_client(oct_key.name)
        gcm = await oct_crypto.encrypt(EncryptionAlgorithm.a256_gcm, b"gcm", additional_authenticated_data=b"a")
        plain = await oct_crypto.decrypt(
            EncryptionAlgorithm.a256_gcm,
            gcm.ciphertext,
            iv=gcm.iv,
            authentication_tag=gcm.tag,
            additional_authenticated_data=b"a",
        )
        assert plain.plaintext == b"gcm"
        with pytest.raises(HttpResponseError) as err:
            await crypto.sign(SignatureAlgorithm.rs256, b"short")
        assert err.value.status_code == 400

        # rotation
        policy = await client.update_key_rotation_policy(
            rsa_key.name,
            KeyRotationPolicy(),
            lifetime_actions=[KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P30D")],
            expires_in="P90D",
        )
        assert policy.expires_in == "P90D"
        assert (await client.get_key_rotation_policy(rsa_key.name)).expires_in == "P90D"
        rotated = await client.rotate_key(rsa_key.name)
        assert rotated.properties.version != rsa_key.properties.version and len(rotated.key.n) == 256
        assert rotated.properties.expires_on is not None and rotated.properties.created_on is not None
        assert rotated.properties.expires_on - rotated.properties.created_on == timedelta(days=90)

        # backup, soft delete, recover, purge, restore
        blob = await client.backup_key(rsa_key.name)
        deleted = await client.delete_key(rsa_key.name)  # the async client waits for the deletion itself
        assert deleted.recovery_id == f"{kluis.url}/deletedkeys/{rsa_key.name}" and deleted.id == rotated.id
        assert (await client.get_deleted_key(rsa_key.name)).id == rotated.id
        assert rsa_key.name in [d.name async for d in client.list_deleted_keys()]
        with pytest.raises(ResourceExistsError):
            await client.create_rsa_key(rsa_key.name)
        recovered = await client.recover_deleted_key(rsa_key.name)
        assert recovered.id == rotated.id and (await client.get_key(rsa_key.name)).id == rotated.id
        await client.delete_key(rsa_key.name)
        await client.purge_deleted_key(rsa_key.name)
        with pytest.raises(ResourceNotFoundError):
            await client.get_deleted_key(rsa_key.name)
        restored = await client.restore_key_backup(blob)
        assert restored.id == rotated.id
        versions = {p.version async for p in client.list_properties_of_key_versions(rsa_key.name)}
        assert versions == {rsa_key.properties.version, rotated.properties.version}

        # random bytes
        first, second = await asyncio.gather(client.get_random_bytes(16), client.get_random_bytes(16))
        assert len(first) == 16 and len(second) == 16 and first != second
        with pytest.raises(HttpResponseError) as err:
            await client.get_random_bytes(129)
        assert err.value.status_code == 400


def test_async_journey_direct(kluis: KluisServer, admin: Principal) -> None:
    asyncio.run(_direct_journey(kluis, admin))


async def _proxied_journey(kluis: KluisServer, vault: str, who: Principal) -> None:
    proxies = {"https": f"http://127.0.0.1:{kluis.proxy_port}"}
    credential = ClientSecretCredential(
        who.tenant, who.app_id, who.password, proxies=proxies, connection_verify=kluis.ca
    )  # login.microsoftonline.com is kluis, through the proxy
    async with (
        credential,
        KeyClient(
            f"https://{vault}.vault.azure.net", credential, proxies=proxies, connection_verify=kluis.ca
        ) as client,
    ):
        names = [unique("px") for _ in range(27)]
        await asyncio.gather(*(client.create_oct_key(n, hardware_protected=True) for n in names))
        pages = await _pages(client.list_properties_of_keys())
        assert [len(p) for p in pages] == [25, 2]
        assert sorted(p.name for page in pages for p in page) == sorted(names)
        assert all(p.id == f"https://{vault}.vault.azure.net/keys/{p.name}" for page in pages for p in page)
        key = await client.create_ec_key(names[0], curve="P-256K")
        assert key.id.startswith(f"https://{vault}.vault.azure.net/keys/{names[0]}/")
        async with CryptographyClient(key, credential, proxies=proxies, connection_verify=kluis.ca) as crypto:
            digest = hashlib.sha256(os.urandom(8)).digest()
            sig = await crypto.sign(SignatureAlgorithm.es256_k, digest)
            assert (await crypto.verify(SignatureAlgorithm.es256_k, digest, sig.signature)).is_valid
        assert (await client.delete_key(names[1])).name == names[1]
        with pytest.raises(HttpResponseError) as err:  # the principal has no purge permission
            await client.purge_deleted_key(names[1])
        assert err.value.status_code == 403 and "purge" in str(err.value)
        assert (await client.get_deleted_key(names[1])).name == names[1]


def test_async_journey_through_proxy(
    kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal]
) -> None:
    vault = make_vault()
    who = make_principal(vault, "create", "get", "list", "delete", "sign", "verify")
    asyncio.run(_proxied_journey(kluis, vault, who))

"""Testing with kluis: a fresh vault per test, the official SDK clients, application code unchanged."""

import asyncio
import hashlib
import os

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm


def sign_report(report: bytes) -> bytes:
    """Application code, as in production: it builds its own client from the environment."""
    credential = DefaultAzureCredential()
    client = KeyClient(f"https://{os.environ['KEY_VAULT_NAME']}.vault.azure.net", credential)
    crypto = CryptographyClient(client.get_key("report-signing"), credential)
    return crypto.sign(SignatureAlgorithm.es256, hashlib.sha256(report).digest()).signature


@pytest.mark.kluis_vault(key_permissions=["get", "sign", "verify"], seed="kluis-seed.yaml")
def test_the_app_signs_with_the_seeded_key(kluis_vault, kluis_env):
    signature = sign_report(b"quarterly numbers")  # kluis_env: the app finds the vault through os.environ

    key = kluis_vault.key_client().get_key("report-signing")
    crypto = CryptographyClient(key, kluis_vault.credential, **kluis_vault.client_options)
    digest = hashlib.sha256(b"quarterly numbers").digest()
    assert crypto.verify(SignatureAlgorithm.es256, digest, signature).is_valid


@pytest.mark.kluis_vault(key_permissions=["get"])
def test_a_missing_permission_is_azures_403(kluis_vault):
    with pytest.raises(HttpResponseError) as refused:
        kluis_vault.key_client().create_rsa_key("not-allowed")
    assert refused.value.status_code == 403


@pytest.mark.kluis_vault(secret_permissions=["set", "delete", "get", "list"], retention_days=7)
def test_deleted_secrets_are_purged_when_retention_ends(kluis_vault, kluis_clock):
    client = kluis_vault.secret_client()
    client.set_secret("api-key", "s3cr3t")
    client.begin_delete_secret("api-key").wait()

    assert kluis_clock.advance(days=8)["purged"] >= 1  # moves the server's clock, runs housekeeping
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret("api-key")


def test_async_clients(kluis_vault):
    async def round_trip():
        async with kluis_vault.async_secret_client() as client:
            await client.set_secret("token", "abc")
            return (await client.get_secret("token")).value

    assert asyncio.run(round_trip()) == "abc"

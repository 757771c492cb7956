"""Vault: sync and async SDK clients with challenge verification on, a ready credential, env, seed and export."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kluis.testing import KluisServer, Vault
from kluis.testing.vault import _closing_credential


class _FakeCredential:
    closed = False

    async def close(self) -> None:
        self.closed = True


class _FakeClient:
    def __init__(self, url: str, credential: Any, **kwargs: Any) -> None:
        self.url, self.credential, self.kwargs, self.closed = url, credential, kwargs, 0

    async def close(self) -> None:
        self.closed += 1

    async def __aenter__(self) -> _FakeClient:
        return self

    async def __aexit__(self, *args: Any) -> None:
        self.closed += 1


class _FakeVault:
    vault_url = "https://v.vault.azure.net"

    def __init__(self) -> None:
        self.client_options = {"proxies": {"https": "http://127.0.0.1:1"}, "connection_verify": "/ca.pem"}
        self.credentials: list[_FakeCredential] = []

    def async_credential(self) -> _FakeCredential:
        self.credentials.append(_FakeCredential())
        return self.credentials[-1]


@pytest.mark.parametrize("exit_by", ["async with", "close"])
def test_async_clients_close_their_credential(exit_by: str) -> None:
    vault = _FakeVault()
    client = _closing_credential(_FakeClient, vault, {"api_version": "7.6"})  # type: ignore[arg-type]

    async def use() -> None:
        if exit_by == "close":
            await client.close()
        else:
            async with client:
                pass

    asyncio.run(use())
    assert type(client).__name__ == "_FakeClient" and client.closed == 1 and vault.credentials[0].closed
    assert client.kwargs == {**vault.client_options, "api_version": "7.6"} and client.url == vault.vault_url


@pytest.mark.slow
def test_sync_clients_and_credential(kluis_vault: Vault) -> None:
    keys, secrets = kluis_vault.key_client(), kluis_vault.secret_client()
    assert keys.create_rsa_key("r", size=2048).key_type == "RSA"
    secrets.set_secret("s", "v")
    assert secrets.get_secret("s").value == "v"
    token = kluis_vault.credential.get_token("https://vault.azure.net/.default")
    assert token.token.count(".") == 2
    assert kluis_vault.credential is kluis_vault.credential  # made once
    kluis_vault.close()


@pytest.mark.slow
def test_async_clients(kluis_vault: Vault) -> None:
    async def journey() -> tuple[Any, str]:
        async with kluis_vault.async_key_client() as keys, kluis_vault.async_secret_client() as secrets:
            key = await keys.create_ec_key("e", curve="P-384")
            await secrets.set_secret("a", "b")
            return key.key.crv, (await secrets.get_secret("a")).value or ""

    assert asyncio.run(journey()) == ("P-384", "b")


@pytest.mark.slow
def test_env_names_this_vault_and_principal(kluis_vault: Vault, kluis_server: KluisServer) -> None:
    env = kluis_vault.env
    assert env["KEY_VAULT_NAME"] == kluis_vault.name and env["VAULT_URL"] == kluis_vault.vault_url
    assert (env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"]) == (kluis_vault.client_id, kluis_vault.client_secret)
    assert env["HTTPS_PROXY"] == kluis_server.proxy_url and env["AZURE_TENANT_ID"] == kluis_vault.tenant_id


@pytest.mark.slow
def test_seed_and_export_round_trip(kluis_vault: Vault) -> None:
    made = kluis_vault.seed(
        {"keys": {"k": {"kty": "EC", "curve": "P-256", "tags": {"a": "b"}}}, "secrets": {"s": {"value": "v"}}}
    )
    assert made == {"keys": ["k"], "secrets": ["s"]}
    exported = kluis_vault.export(include_secret_values=True)
    assert exported["keys"]["k"]["curve"] == "P-256" and exported["keys"]["k"]["tags"] == {"a": "b"}
    assert exported["secrets"]["s"]["value"] == "v"
    assert "value" not in kluis_vault.export()["secrets"]["s"]

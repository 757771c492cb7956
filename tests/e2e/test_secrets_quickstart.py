"""Microsoft's Python secrets quickstart (``kv_secrets.py``, byte for byte) against a running kluis, in
proxy mode with a service principal granted what the quickstart grants (``--secret-permissions
delete get list set``), including the Conflict of a re-run with the same name; then the same flow
with the asynchronous ``SecretClient``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError

from tests.e2e.conftest import unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow
QUICKSTART = Path(__file__).with_name("kv_secrets.py")
# sha256 of the program as Microsoft publishes it ("Quickstart: Azure Key Vault secret client library for
# Python", MicrosoftDocs/azure-security-docs articles/key-vault/secrets/quick-create-python.md): any edit shows.
QUICKSTART_SHA256 = "daf94f71585cfd1b08451dc388aa281ae00986a7437dd55de7ba0897522571fc"


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "HTTPS_PROXY", "https_proxy"))}
    env["REQUESTS_CA_BUNDLE"] = "/nonexistent-so-kluis-env-must-set-it"
    return env


def _quickstart_env(kluis: KluisServer, vault: str) -> dict[str, str]:
    """A service principal with the quickstart's secret permissions, and `kluis env` for it."""
    sp = kluis.cli_json("ad", "sp", "create-for-rbac", "-n", unique("qs"))
    kluis.cli("keyvault", "set-policy", "-n", vault, "--spn", sp["appId"],
              "--secret-permissions", "delete", "get", "list", "set")  # fmt: skip
    lines = kluis.cli("env", "-n", vault, "--client-id", sp["appId"], "--client-secret", sp["password"]).stdout
    env = dict(line.removeprefix("export ").split("=", 1) for line in lines.strip().splitlines())
    return {**_clean_env(), **{k: v.strip("'") for k, v in env.items()}}


def test_quickstart_file_is_microsofts() -> None:
    assert hashlib.sha256(QUICKSTART.read_bytes()).hexdigest() == QUICKSTART_SHA256


def test_secrets_quickstart_unchanged_through_proxy(kluis: KluisServer, make_vault: Callable[..., str]) -> None:
    vault = make_vault()
    env = _quickstart_env(kluis, vault)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(QUICKSTART)], input="mysecret\nS3cr3t value ☃\n",
                              capture_output=True, text=True, timeout=120, env=env)  # fmt: skip

    first = run()
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        "Input a name for your secret > Input a value for your secret > "
        f"Creating a secret in {vault} called 'mysecret' with the value 'S3cr3t value ☃' ...\n"
        " done.\n"
        f"Retrieving your secret from {vault}.\n"
        "Your secret is 'S3cr3t value ☃'.\n"
        f"Deleting your secret from {vault} ...\n"
        " done.\n"
    )
    again = run()
    assert again.returncode != 0
    assert "(Conflict) Secret mysecret is currently in a deleted but recoverable state" in again.stderr
    assert "ObjectIsDeletedButRecoverable" in again.stderr
    deleted = kluis.cli_json("keyvault", "secret", "show-deleted", "--vault-name", vault, "-n", "mysecret")
    assert deleted["recoveryId"] == f"https://{vault}.vault.azure.net/deletedsecrets/mysecret"


def test_secrets_quickstart_flow_with_the_async_client(kluis: KluisServer, make_vault: Callable[..., str]) -> None:
    """The quickstart's set / get / delete, written with ``azure.keyvault.secrets.aio`` and the async
    ``DefaultAzureCredential``, in the quickstart's environment (proxy mode, same permissions)."""
    vault = make_vault()
    # aiohttp (the async SDKs' transport) verifies TLS with Python's default context, which reads
    # SSL_CERT_FILE, not REQUESTS_CA_BUNDLE: point it at the same bundle `kluis env` gives requests.
    env = _quickstart_env(kluis, vault)
    env["SSL_CERT_FILE"] = env["REQUESTS_CA_BUNDLE"]
    program = """
import asyncio, os
from azure.identity.aio import DefaultAzureCredential
from azure.keyvault.secrets.aio import SecretClient

async def main():
    uri = f"https://{os.environ['KEY_VAULT_NAME']}.vault.azure.net"
    async with DefaultAzureCredential() as credential, SecretClient(vault_url=uri, credential=credential) as client:
        await client.set_secret("asyncsecret", "async value")
        got = await client.get_secret("asyncsecret")
        print(f"Your secret is '{got.value}'.")
        deleted = await client.delete_secret("asyncsecret")
        print(deleted.recovery_id)

asyncio.run(main())
"""
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "Your secret is 'async value'.",
        f"https://{vault}.vault.azure.net/deletedsecrets/asyncsecret",
    ]
    again = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode != 0 and "ObjectIsDeletedButRecoverable" in again.stderr
    assert ResourceExistsError.__name__ in again.stderr


def test_async_client_in_process(kluis: KluisServer, make_vault: Callable[..., str]) -> None:
    """Guard for the above: the async flow also runs in this process (asyncio, aiohttp transport)."""
    from azure.identity.aio import ClientSecretCredential
    from azure.keyvault.secrets.aio import SecretClient

    admin = kluis.admin()

    async def flow() -> str:
        cred = ClientSecretCredential("adfs", admin["appId"], admin["password"], authority=kluis.url,
                                      connection_verify=kluis.ca)  # fmt: skip
        async with cred, SecretClient(kluis.url, cred, verify_challenge_resource=False,
                                      connection_verify=kluis.ca) as client:  # fmt: skip
            name = unique("as")
            await client.set_secret(name, "x")
            value = (await client.get_secret(name)).value
            await client.delete_secret(name)
            with pytest.raises(ResourceExistsError):
                await client.set_secret(name, "y")
            return value or ""

    assert asyncio.run(flow()) == "x"

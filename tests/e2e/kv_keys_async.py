# ruff: noqa: F841  (Microsoft's keys quickstart, made async line for line; the unused names are theirs)
import asyncio
import os

from azure.identity.aio import DefaultAzureCredential
from azure.keyvault.keys.aio import KeyClient


async def main():
    keyVaultName = os.environ["KEY_VAULT_NAME"]
    KVUri = "https://" + keyVaultName + ".vault.azure.net"

    credential = DefaultAzureCredential()
    client = KeyClient(vault_url=KVUri, credential=credential)

    keyName = input("Input a name for your key > ")

    print(f"Creating a key in {keyVaultName} called '{keyName}' ...")

    rsa_key = await client.create_rsa_key(keyName, size=2048)

    print(" done.")

    print(f"Retrieving your key from {keyVaultName}.")

    retrieved_key = await client.get_key(keyName)

    print(f"Key with name '{retrieved_key.name}' was found.")
    print(f"Deleting your key from {keyVaultName} ...")

    deleted_key = await client.delete_key(keyName)

    print(" done.")

    await client.close()
    await credential.close()


asyncio.run(main())

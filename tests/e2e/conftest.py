"""Fixtures that start a real kluis and give tests official-SDK clients pointed at it.

The machines here preset REQUESTS_CA_BUNDLE / SSL_CERT_FILE / CURL_CA_BUNDLE to the system bundle;
tests never rely on those: every client gets kluis's CA explicitly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import ClientSecretCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient

from tests.e2e.server import KluisServer

for _var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "AZURE_AUTHORITY_HOST"):
    os.environ.pop(_var, None)


@dataclass
class Principal:
    app_id: str
    password: str
    tenant: str


@pytest.fixture(scope="session")
def kluis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KluisServer]:
    """One server for the session; tests isolate themselves with unique vault/key names."""
    server = KluisServer(tmp_path_factory.mktemp("kluis") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin(kluis: KluisServer) -> Principal:
    a = kluis.admin()
    return Principal(a["appId"], a["password"], a["tenant"])


def unique(prefix: str = "k") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def make_vault(kluis: KluisServer) -> Callable[..., str]:
    kluis.cli("group", "create", "-n", "e2e-rg")

    def make(*extra: str) -> str:
        """A new vault; premium unless ``extra`` names a --sku (the tests use the -HSM key types,
        which a standard vault refuses, as Azure's does: the SDKs' own live tests run on premium
        vaults for that reason, azure-sdk-for-net#6551)."""
        name = unique("v")
        sku = () if "--sku" in extra else ("--sku", "premium")
        kluis.cli("keyvault", "create", "-n", name, "-g", "e2e-rg", *sku, *extra)
        return name

    return make


@pytest.fixture(scope="session")
def make_principal(kluis: KluisServer) -> Callable[..., Principal]:
    def make(vault: str | None = None, *key_permissions: str) -> Principal:
        sp = kluis.cli_json("ad", "sp", "create-for-rbac", "-n", unique("app"))
        if vault is not None and key_permissions:
            kluis.cli(
                "keyvault",
                "set-policy",
                "-n",
                vault,
                "--spn",
                sp["appId"],
                "--key-permissions",
                *key_permissions,
            )
        return Principal(sp["appId"], sp["password"], sp["tenant"])

    return make


def credential(kluis: KluisServer, who: Principal) -> ClientSecretCredential:
    """Direct mode: kluis is the authority (``adfs`` tenant skips MSAL instance discovery)."""
    return ClientSecretCredential(
        "adfs",
        who.app_id,
        who.password,
        authority=kluis.url,
        connection_verify=kluis.ca,
    )


@pytest.fixture(scope="session")
def key_client_for(kluis: KluisServer) -> Callable[..., KeyClient]:
    """A KeyClient on ``https://localhost:PORT`` (the default vault) or ``NAME.vault.azure.net`` via the proxy."""

    def make(who: Principal, vault: str | None = None, **kwargs: Any) -> KeyClient:
        if vault is None:
            return KeyClient(
                kluis.url,
                credential(kluis, who),
                verify_challenge_resource=False,
                connection_verify=kluis.ca,
                **kwargs,
            )
        return KeyClient(
            f"https://{vault}.vault.azure.net",
            proxied_credential(kluis, who),
            transport=proxied_transport(kluis),
            **kwargs,
        )

    return make


@pytest.fixture(scope="module")
def vault(make_vault: Callable[..., str]) -> str:
    """A fresh (premium) vault per test module."""
    return make_vault()


@pytest.fixture(scope="module")
def client(admin: Principal, vault: str, key_client_for: Callable[..., KeyClient]) -> Iterator[KeyClient]:
    """The administrator on this module's vault, through the proxy (challenge verification on)."""
    with key_client_for(admin, vault) as c:
        yield c


def proxied_transport(kluis: KluisServer) -> RequestsTransport:
    import requests

    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": f"http://127.0.0.1:{kluis.proxy_port}"}
    session.verify = kluis.ca
    return RequestsTransport(session=session, session_owner=True, connection_verify=kluis.ca)


def proxied_credential(kluis: KluisServer, who: Principal) -> ClientSecretCredential:
    """Through the proxy, exactly like the unmodified quickstart: login.microsoftonline.com is kluis."""
    return ClientSecretCredential(who.tenant, who.app_id, who.password, transport=proxied_transport(kluis))


@pytest.fixture(scope="session")
def crypto_client_for(kluis: KluisServer) -> Callable[..., CryptographyClient]:
    def make(who: Principal, key: Any, vault: str | None = None) -> CryptographyClient:
        if vault is None:
            return CryptographyClient(
                key, credential(kluis, who), verify_challenge_resource=False, connection_verify=kluis.ca
            )
        return CryptographyClient(key, proxied_credential(kluis, who), transport=proxied_transport(kluis))

    return make


def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path

"""One way to connect an official Key Vault SDK client (``KeyClient``, ``SecretClient``) to kluis.

Signed in as the administrator (credential from the data dir), over HTTPS verified against the kluis
CA. ``--vault-name NAME`` reaches ``https://NAME.vault.azure.net`` through kluis's CONNECT proxy
(``*.localhost`` does not resolve everywhere and the server certificate has no per-vault names); with
the proxy off (``--proxy-port 0``), or for an ``--id`` on localhost/an IP, only the default vault is
reachable, directly on ``https://localhost:PORT``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from kluis.addressing import DEFAULT_VAULT
from kluis.cli.client import CliError, load_credentials, load_settings
from kluis.cli.object_ref import ObjectRef
from kluis.config import DataDir

if TYPE_CHECKING:
    from azure.core.pipeline.transport import RequestsTransport

__all__ = ["connect"]

C = TypeVar("C")


def _transport(ca: str, proxy: str | None) -> RequestsTransport:
    import requests
    from azure.core.pipeline.transport import RequestsTransport

    session = requests.Session()
    session.trust_env = False  # HTTPS_PROXY & co. from the environment must not redirect the CLI
    session.verify = ca
    if proxy:
        session.proxies = {"https": proxy}
    return RequestsTransport(session=session, session_owner=True, connection_verify=ca)


def _quiet_sdk_logs() -> None:
    """The SDK logs a warning whenever its local crypto falls back to the service; the CLI reports the
    outcome itself, so keep those records off stderr."""
    azure_log = logging.getLogger("azure")
    if not any(isinstance(h, logging.NullHandler) for h in azure_log.handlers):
        azure_log.addHandler(logging.NullHandler())


def connect(data_dir: DataDir, ref: ObjectRef, client_class: Callable[..., C]) -> C:
    """``client_class(vault_url, credential, ...)`` for the vault ``ref`` names, signed in as the administrator.

    Raises CliError when no server is configured in ``data_dir``, or when ``ref`` names a vault other
    than the default one while the proxy is off.
    """
    from azure.identity import ClientSecretCredential

    _quiet_sdk_logs()
    settings = load_settings(data_dir)
    creds = load_credentials(data_dir)
    ca = str(data_dir.tls / "ca.pem")
    if settings.proxy_port and not ref.direct:
        proxy = settings.proxy_url
        credential = ClientSecretCredential(creds.tenant, creds.app_id, creds.password, transport=_transport(ca, proxy))
        return client_class(f"https://{ref.vault}.vault.azure.net", credential, transport=_transport(ca, proxy))
    if ref.vault != DEFAULT_VAULT:
        raise CliError(
            f"Vault {ref.vault!r} is only reachable through the kluis proxy, which is off (--proxy-port 0); "
            f"without it only --vault-name {DEFAULT_VAULT} works."
        )
    url = settings.url
    credential = ClientSecretCredential(
        "adfs", creds.app_id, creds.password, authority=url, transport=_transport(ca, None)
    )
    return client_class(url, credential, verify_challenge_resource=False, transport=_transport(ca, None))

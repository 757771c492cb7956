"""Addressing (``--vault-name``/``--name`` or ``--id``) and the official SDK clients behind each key verb."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kluis.addressing import DEFAULT_VAULT, vault_label
from kluis.cli.client import CliError, load_credentials, load_settings
from kluis.config import DataDir

if TYPE_CHECKING:
    from azure.core.pipeline.transport import RequestsTransport
    from azure.keyvault.keys import KeyClient


__all__ = ["DEFAULT_VAULT", "KeyRef", "connect", "parse_key_id", "resolve_ref"]


# -- addressing: --vault-name/--name/--version or --id ---------------------------------------------
@dataclass(frozen=True)
class KeyRef:
    vault: str
    name: str | None = None
    version: str | None = None
    direct: bool = False  # the --id named localhost/an IP: talk to https://localhost:PORT


def parse_key_id(key_id: str, domains: Sequence[str] = ()) -> KeyRef:
    """``https://NAME.vault.azure.net/keys/k[/v]`` (or ``/deletedkeys/k``, or the vault URL alone).

    The host decides the vault as the server does: ``NAME.vault.azure.net``, ``NAME.localhost`` and
    ``NAME.<configured domain>`` are vault NAME (``kluis.addressing``); any other host is the default vault.
    """
    parts = urlsplit(key_id.strip())
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme != "https" or not host:
        raise CliError(f"--id must be a key identifier like https://NAME.vault.azure.net/keys/KEY, not {key_id!r}.")
    label = vault_label(host, domains)
    vault, direct = (label[0], False) if label else (DEFAULT_VAULT, True)
    segs = [s for s in parts.path.split("/") if s]
    if not segs:
        return KeyRef(vault, direct=direct)
    if segs[0].lower() in ("keys", "deletedkeys") and 2 <= len(segs) <= (3 if segs[0].lower() == "keys" else 2):
        return KeyRef(vault, segs[1], segs[2] if len(segs) == 3 else None, direct)
    raise CliError(f"--id is not a key identifier (expected .../keys/NAME[/VERSION]): {key_id!r}.")


def resolve_ref(
    vault_name: str | None,
    name: str | None,
    key_id: str | None,
    version: str | None = None,
    *,
    need_name: bool = True,
    domains: Sequence[str] = (),
) -> KeyRef:
    """What the addressing flags point at; the errors say which flags to give."""
    if key_id:
        if vault_name or name:
            raise CliError("--id cannot be combined with --vault-name or --name.")
        ref = parse_key_id(key_id, domains)
        if need_name and ref.name is None:
            raise CliError("--id must name a key: https://NAME.vault.azure.net/keys/KEY[/VERSION].")
        return KeyRef(ref.vault, ref.name, version or ref.version, ref.direct)
    if not vault_name:
        raise CliError("Give --vault-name" + (" and --name" if need_name else "") + ", or --id.")
    if need_name and not name:
        raise CliError("Give --name (-n) with --vault-name, or --id.")
    return KeyRef(vault_name, name, version)


# -- the SDK clients -------------------------------------------------------------------------------
def _transport(ca: str, proxy: str | None) -> RequestsTransport:
    import requests
    from azure.core.pipeline.transport import RequestsTransport

    session = requests.Session()
    session.trust_env = False  # HTTPS_PROXY & co. from the environment must not redirect the CLI
    session.verify = ca
    if proxy:
        session.proxies = {"https": proxy}
    return RequestsTransport(session=session, session_owner=True, connection_verify=ca)


def connect(data_dir: DataDir, ref: KeyRef) -> KeyClient:
    """A KeyClient for the vault ``ref`` names, signed in as the administrator."""
    from azure.identity import ClientSecretCredential
    from azure.keyvault.keys import KeyClient

    # The SDK logs a warning whenever its local crypto falls back to the service; the CLI reports
    # the outcome itself, so keep those records off stderr.
    azure_log = logging.getLogger("azure")
    if not any(isinstance(h, logging.NullHandler) for h in azure_log.handlers):
        azure_log.addHandler(logging.NullHandler())
    settings = load_settings(data_dir)
    creds = load_credentials(data_dir)
    ca = str(data_dir.tls / "ca.pem")
    if settings.proxy_port and not ref.direct:
        proxy = settings.proxy_url
        credential = ClientSecretCredential(creds.tenant, creds.app_id, creds.password, transport=_transport(ca, proxy))
        return KeyClient(f"https://{ref.vault}.vault.azure.net", credential, transport=_transport(ca, proxy))
    if ref.vault != DEFAULT_VAULT:
        raise CliError(
            f"Vault {ref.vault!r} is only reachable through the kluis proxy, which is off (--proxy-port 0); "
            f"without it only --vault-name {DEFAULT_VAULT} works."
        )
    url = settings.url
    credential = ClientSecretCredential(
        "adfs", creds.app_id, creds.password, authority=url, transport=_transport(ca, None)
    )
    return KeyClient(url, credential, verify_challenge_resource=False, transport=_transport(ca, None))

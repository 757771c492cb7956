"""Addressing (``--vault-name``/``--name`` or ``--id``) and the official ``SecretClient`` behind each
secret verb. The vault part of an identifier is decided exactly as for keys (``kluis.cli.key_client``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kluis.addressing import DEFAULT_VAULT
from kluis.cli.client import CliError, load_credentials, load_settings
from kluis.cli.key_client import KeyRef, _transport, parse_key_id
from kluis.config import DataDir

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient

__all__ = ["connect_secrets", "parse_secret_id", "resolve_secret_ref"]


def parse_secret_id(secret_id: str, domains: Sequence[str] = ()) -> KeyRef:
    """``https://NAME.vault.azure.net/secrets/s[/v]`` (or ``/deletedsecrets/s``, or the vault URL alone)."""
    parts = urlsplit(secret_id.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise CliError(
            f"--id must be a secret identifier like https://NAME.vault.azure.net/secrets/SECRET, not {secret_id!r}."
        )
    vault = parse_key_id(f"https://{parts.netloc}", domains)  # the host decides the vault, as for keys
    segs = [s for s in parts.path.split("/") if s]
    if not segs:
        return vault
    head = segs[0].lower()
    if head in ("secrets", "deletedsecrets") and 2 <= len(segs) <= (3 if head == "secrets" else 2):
        return KeyRef(vault.vault, segs[1], segs[2] if len(segs) == 3 else None, vault.direct)
    raise CliError(f"--id is not a secret identifier (expected .../secrets/NAME[/VERSION]): {secret_id!r}.")


def resolve_secret_ref(
    vault_name: str | None,
    name: str | None,
    secret_id: str | None,
    version: str | None = None,
    *,
    need_name: bool = True,
    domains: Sequence[str] = (),
) -> KeyRef:
    """What the addressing flags point at; the errors say which flags to give."""
    if secret_id:
        if vault_name or name:
            raise CliError("--id cannot be combined with --vault-name or --name.")
        ref = parse_secret_id(secret_id, domains)
        if need_name and ref.name is None:
            raise CliError("--id must name a secret: https://NAME.vault.azure.net/secrets/SECRET[/VERSION].")
        return KeyRef(ref.vault, ref.name, version or ref.version, ref.direct)
    if not vault_name:
        raise CliError("Give --vault-name" + (" and --name" if need_name else "") + ", or --id.")
    if need_name and not name:
        raise CliError("Give --name (-n) with --vault-name, or --id.")
    return KeyRef(vault_name, name, version)


def connect_secrets(data_dir: DataDir, ref: KeyRef) -> SecretClient:
    """A SecretClient for the vault ``ref`` names, signed in as the administrator (through the
    kluis proxy, or directly to the default vault when the proxy is off)."""
    from azure.identity import ClientSecretCredential
    from azure.keyvault.secrets import SecretClient

    settings = load_settings(data_dir)
    creds = load_credentials(data_dir)
    ca = str(data_dir.tls / "ca.pem")
    if settings.proxy_port and not ref.direct:
        proxy = settings.proxy_url
        credential = ClientSecretCredential(creds.tenant, creds.app_id, creds.password, transport=_transport(ca, proxy))
        return SecretClient(f"https://{ref.vault}.vault.azure.net", credential, transport=_transport(ca, proxy))
    if ref.vault != DEFAULT_VAULT:
        raise CliError(
            f"Vault {ref.vault!r} is only reachable through the kluis proxy, which is off (--proxy-port 0); "
            f"without it only --vault-name {DEFAULT_VAULT} works."
        )
    url = settings.url
    credential = ClientSecretCredential(
        "adfs", creds.app_id, creds.password, authority=url, transport=_transport(ca, None)
    )
    return SecretClient(url, credential, verify_challenge_resource=False, transport=_transport(ca, None))

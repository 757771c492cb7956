"""``kluis env`` / ``kluis exec``: the environment that points unmodified SDK programs at kluis.

Zero-change mode (default): HTTPS_PROXY sends ``*.vault.azure.net`` and ``login.microsoftonline.com``
to kluis, whose certificate covers those names; REQUESTS_CA_BUNDLE is certifi's roots plus the
kluis CA (so the same process still reaches real hosts); NODE_EXTRA_CA_CERTS adds the kluis CA.
``SSL_CERT_FILE`` is deliberately not used: neither SDK honours it.
Direct mode: ``https://localhost:PORT`` with ``AZURE_AUTHORITY_HOST`` pointing at kluis and the
``adfs`` tenant (which makes MSAL skip instance discovery); needs ``verify_challenge_resource=False``.
"""

from __future__ import annotations

from kluis.cli.client import CliError, Credentials, load_credentials, load_settings
from kluis.config import DataDir

__all__ = ["build_env"]


def build_env(
    data_dir: DataDir,
    *,
    vault_name: str,
    direct: bool = False,
    managed_identity: bool = False,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> dict[str, str]:
    settings = load_settings(data_dir)
    admin = load_credentials(data_dir)
    creds = Credentials(admin.tenant, client_id, client_secret or "") if client_id else admin
    env: dict[str, str] = {
        "REQUESTS_CA_BUNDLE": str(data_dir.ca_bundle),
        "NODE_EXTRA_CA_CERTS": str(data_dir.tls / "ca.pem"),
        "KEY_VAULT_NAME": vault_name,
    }
    local = settings.url
    if direct:
        if settings.domains:
            env["VAULT_URL"] = f"https://{vault_name}.{settings.domains[0]}:{settings.port}"
        elif vault_name != "default":
            raise CliError(
                "Direct mode reaches only the default vault (https://localhost:PORT). For vault "
                f"'{vault_name}' use the proxy mode (drop --direct) or start kluis with --domain."
            )
        else:
            env["VAULT_URL"] = local
        env["AZURE_AUTHORITY_HOST"] = local
        env["AZURE_TENANT_ID"] = "adfs"
    else:
        env["HTTPS_PROXY"] = settings.proxy_url
        env["VAULT_URL"] = f"https://{vault_name}.vault.azure.net"
        env["AZURE_TENANT_ID"] = creds.tenant
    if managed_identity:
        env["IDENTITY_ENDPOINT"] = f"{local}/msi/token"
        env["IDENTITY_HEADER"] = f"{creds.app_id}:{creds.password}"
        env["AZURE_CLIENT_ID"] = creds.app_id
    else:
        env["AZURE_CLIENT_ID"] = creds.app_id
        env["AZURE_CLIENT_SECRET"] = creds.password
    return env

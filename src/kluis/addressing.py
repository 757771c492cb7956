"""Which host names are kluis's, and which vault each one addresses: the one place that knows.

Vaults are addressed like Azure: ``NAME.vault.azure.net`` (through the CONNECT proxy),
``NAME.<configured domain>`` or ``NAME.localhost``. Bare ``localhost``, IP addresses and the
``--hostname`` names address the ``default`` vault. The server (routing, challenge), the
certificate (its names) and the CLI (parsing ``--id`` URLs) all ask here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

__all__ = [
    "AZURE_VAULT_DOMAIN",
    "CERTIFICATE_NAMES",
    "DEFAULT_VAULT",
    "KLUIS_HOSTS",
    "LOGIN_HOSTS",
    "LOOPBACK_NAMES",
    "MANAGEMENT_HOST",
    "is_ip",
    "vault_label",
    "vault_suffixes",
]

DEFAULT_VAULT = "default"  # the vault that bare localhost / IP / --hostname names address
AZURE_VAULT_DOMAIN = "vault.azure.net"
LOGIN_HOSTS = ("login.microsoftonline.com", "login.windows.net")  # Entra sign-in, served through the proxy
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
MANAGEMENT_HOST = "management.azure.com"  # what az and ARM tokens name; kluis's management API answers it
# The host names kluis answers as itself: the CONNECT proxy intercepts them (and subdomains of
# the vault domain and localhost), and the server certificate covers them.
KLUIS_HOSTS = (AZURE_VAULT_DOMAIN, LOGIN_HOSTS[0], MANAGEMENT_HOST, "localhost")
CERTIFICATE_NAMES = (*LOOPBACK_NAMES[:1], "*.localhost", *LOOPBACK_NAMES[1:], AZURE_VAULT_DOMAIN,
                     f"*.{AZURE_VAULT_DOMAIN}", LOGIN_HOSTS[0], MANAGEMENT_HOST)  # fmt: skip


def vault_suffixes(domains: Sequence[str] = ()) -> tuple[str, ...]:
    """``.vault.azure.net``, ``.localhost`` and ``.D`` for each configured domain, lower-case."""
    names = (AZURE_VAULT_DOMAIN, "localhost", *domains)
    return tuple("." + d.lower().strip(".") for d in names if d.strip("."))


def vault_label(hostname: str, domains: Sequence[str] = ()) -> tuple[str, str] | None:
    """(vault name, parent domain) for ``NAME.<suffix>`` host names; None for any other host."""
    host = hostname.lower().rstrip(".")
    if is_ip(host):
        return None
    for suffix in vault_suffixes(domains):
        label = host[: -len(suffix)]
        if host.endswith(suffix) and label and "." not in label:
            return label, suffix[1:]
    return None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True

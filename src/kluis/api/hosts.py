"""From the Host header to a vault, a base URL and the challenge resource.

Vaults are addressed like Azure: ``https://NAME.vault.azure.net`` (through the proxy),
``https://NAME.<configured domain>[:port]`` or ``https://NAME.localhost:port``. A bare
``localhost``, an IP address or any other host name is the default vault, so a single-vault
setup needs no DNS.

The challenge resource is the vault host's parent domain with the same port, because the
Python SDK checks ``vault_netloc.endswith("." + resource_netloc)``: ``NAME.vault.azure.net``
gets ``https://vault.azure.net`` (Azure's own value) and ``NAME.localhost:8443`` gets
``https://localhost:8443``. A bare host has no parent: it advertises ``https://vault.azure.net``
and clients must pass ``verify_challenge_resource=False`` (the one documented setup that needs it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["AZURE_RESOURCE", "HostInfo", "HostResolver"]

AZURE_RESOURCE = "https://vault.azure.net"


@dataclass(frozen=True)
class HostInfo:
    vault_name: str
    base_url: str  # scheme://host[:port] exactly as the client used it
    resource: str  # what the 401 challenge advertises
    audiences: frozenset[str]  # token audiences accepted for this host
    login: bool  # the host is login.microsoftonline.com (token endpoints only)


class HostResolver:
    def __init__(self, default_vault: str, domains: list[str] | tuple[str, ...] = ()) -> None:
        self._default = default_vault
        self._suffixes = tuple(
            "." + d.lower().strip(".") for d in ("vault.azure.net", "localhost", *domains) if d.strip(".")
        )
        self._cache: dict[str, HostInfo] = {}

    def resolve(self, host_header: str) -> HostInfo:
        info = self._cache.get(host_header)
        if info is None:
            info = self._resolve(host_header)
            if len(self._cache) < 4096:
                self._cache[host_header] = info
        return info

    def _resolve(self, host_header: str) -> HostInfo:
        raw = (host_header or "localhost").strip().lower()
        if raw.startswith("["):  # IPv6 literal
            end = raw.find("]")
            hostname, port = raw[1:end], raw[end + 2 :] if ":" in raw[end:] else ""
        elif raw.count(":") == 1:
            hostname, port = raw.split(":", 1)
        else:
            hostname, port = raw, ""
        hostname = hostname.rstrip(".")
        port_part = f":{port}" if port and port != "443" else ""
        base = f"https://{raw}"
        login = hostname in ("login.microsoftonline.com", "login.windows.net")
        if not _is_ip(hostname):
            for suffix in self._suffixes:
                if hostname.endswith(suffix) and "." not in hostname[: -len(suffix)]:
                    label = hostname[: -len(suffix)]
                    resource = f"https://{suffix[1:]}{port_part}"
                    return HostInfo(label, base, resource, frozenset({AZURE_RESOURCE, resource}), login)
        return HostInfo(self._default, base, AZURE_RESOURCE, frozenset({AZURE_RESOURCE}), login)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

"""From the request's authority (HTTP/1.1 ``Host``, HTTP/2 ``:authority``) to a vault, a base URL
and the challenge resource. Which names are kluis's is decided in ``kluis.addressing``.

A request is served only by the vault its authority names: ``NAME.vault.azure.net``,
``NAME.<configured domain>`` and ``NAME.localhost`` are vault NAME; bare ``localhost``, an IP
address and the ``--hostname`` names are the default vault; any other host addresses no vault
(the data plane answers 404 ``VaultNotFound``), and a request without an authority is a 400.

The challenge resource is the vault host's parent domain with the same port, because the
Python SDK checks ``vault_netloc.endswith("." + resource_netloc)`` (azure-keyvault-keys
``_shared/challenge_auth_policy.py``, ``_validate_challenge_resource``): ``NAME.vault.azure.net``
gets ``https://vault.azure.net`` (Azure's own value), ``NAME.localhost:8443`` gets
``https://localhost:8443`` and a ``--hostname`` with a parent domain gets that parent, so
``vault.corp.test:8443`` advertises ``https://corp.test:8443``. That resource is also an accepted
token audience on the host (the SDK asks for a token for it), beside ``https://vault.azure.net``,
which every host accepts. A host with no parent (bare ``localhost``, an IP address, a one-label
``--hostname``) advertises ``https://vault.azure.net``, and clients must pass
``verify_challenge_resource=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kluis.addressing import AZURE_VAULT_DOMAIN, DEFAULT_VAULT, LOOPBACK_NAMES, is_ip, vault_label

__all__ = ["AZURE_RESOURCE", "HostInfo", "HostResolver"]

AZURE_RESOURCE = f"https://{AZURE_VAULT_DOMAIN}"


@dataclass(frozen=True)
class HostInfo:
    vault_name: str | None  # None: the authority addresses no vault
    base_url: str  # scheme://host[:port] exactly as the client used it
    resource: str  # what the 401 challenge advertises
    audiences: frozenset[str]  # token audiences accepted for this host
    authority: str  # the authority as sent ("" when the request had none)


class HostResolver:
    def __init__(self, domains: Sequence[str] = (), hostnames: Sequence[str] = ()) -> None:
        self._domains = tuple(domains)
        names = [n.strip().lower().rstrip(".") for n in hostnames]
        self._default_names = frozenset((*LOOPBACK_NAMES, *names))
        # --hostname -> its parent domain ("vault.corp.test" -> "corp.test"); one-label names and IP
        # addresses have none. (A name under a vault domain is that vault's, resolved before this.)
        self._parents = {n: n.split(".", 1)[1] for n in names if "." in n.strip(".") and not is_ip(n)}
        self._cache: dict[str, HostInfo] = {}

    def resolve(self, authority: str) -> HostInfo:
        info = self._cache.get(authority)
        if info is None:
            info = self._resolve(authority)
            if len(self._cache) < 4096:
                self._cache[authority] = info
        return info

    def _resolve(self, authority: str) -> HostInfo:
        raw = (authority or "").strip().lower()
        if raw.startswith("["):  # IPv6 literal
            end = raw.find("]")
            hostname, port = raw[1:end], raw[end + 2 :] if ":" in raw[end:] else ""
        elif raw.count(":") == 1:
            hostname, port = raw.split(":", 1)
        else:
            hostname, port = raw, ""
        # A fully qualified name's trailing dot names the same host ("kv.corp.test." is "kv.corp.test"
        # to DNS): the same vault. The advertised resource keeps the dot, so the SDK's
        # endswith("." + resource_netloc) check holds for the URL as the client wrote it; the
        # audience is accepted with the dot and without.
        dot = "." if hostname.endswith(".") else ""
        hostname = hostname.rstrip(".")
        port_part = f":{port}" if port and port != "443" else ""
        base = f"https://{raw or 'localhost'}"
        azure = frozenset({AZURE_RESOURCE})
        label = vault_label(hostname, self._domains)
        parent = label[1] if label is not None else self._parents.get(hostname)
        if parent:
            resource = f"https://{parent}{dot}{port_part}"
            audiences = frozenset({AZURE_RESOURCE, resource, f"https://{parent}{port_part}"})
            return HostInfo(label[0] if label is not None else DEFAULT_VAULT, base, resource, audiences, raw)
        default = DEFAULT_VAULT if hostname and (is_ip(hostname) or hostname in self._default_names) else None
        return HostInfo(default, base, AZURE_RESOURCE, azure, raw)

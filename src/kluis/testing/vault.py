"""A test vault: its URL, a service principal's ready credential, official SDK clients and ``kluis env``.

Clients reach ``https://NAME.vault.azure.net`` through the server's CONNECT proxy and trust the kluis CA
explicitly (``proxies`` + ``connection_verify``), so the SDKs' challenge check runs as against Azure
(verification on) and nothing depends on the process environment: a test may set ``HTTPS_PROXY`` or
CA variables (``kluis_env`` does) without changing these clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from kluis.config import DataDir

if TYPE_CHECKING:
    from azure.identity import ClientSecretCredential
    from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.keys.aio import KeyClient as AsyncKeyClient
    from azure.keyvault.secrets import SecretClient
    from azure.keyvault.secrets.aio import SecretClient as AsyncSecretClient

    from kluis.testing.server import KluisServer

__all__ = ["Vault"]


@dataclass
class Vault:
    """One vault on a :class:`~kluis.testing.server.KluisServer` and the service principal made for it."""

    server: KluisServer = field(repr=False)
    name: str
    tenant_id: str
    client_id: str  # the principal's appId
    client_secret: str = field(repr=False)
    object_id: str
    _credential: ClientSecretCredential | None = field(default=None, init=False, repr=False)

    @property
    def vault_url(self) -> str:
        """``https://NAME.vault.azure.net``: what application code passes to ``KeyClient``."""
        return f"https://{self.name}.vault.azure.net"

    @property
    def client_options(self) -> dict[str, Any]:
        """Keyword arguments that route any SDK client or credential to this server: proxy and CA.

        ``KeyClient(vault.vault_url, vault.credential, **vault.client_options)``, sync or async.
        """
        return {"proxies": {"https": self.server.proxy_url}, "connection_verify": str(self.server.ca_file)}

    @property
    def credential(self) -> ClientSecretCredential:
        """The principal's sync ``ClientSecretCredential``, signing in at kluis through the proxy (made once)."""
        if self._credential is None:
            from azure.identity import ClientSecretCredential

            self._credential = ClientSecretCredential(
                self.tenant_id, self.client_id, self.client_secret, **self.client_options
            )
        return self._credential

    def async_credential(self) -> AsyncClientSecretCredential:
        """A new ``azure.identity.aio.ClientSecretCredential`` for the principal (close it, or use ``async with``)."""
        from azure.identity.aio import ClientSecretCredential

        return ClientSecretCredential(self.tenant_id, self.client_id, self.client_secret, **self.client_options)

    def key_client(self, **kwargs: Any) -> KeyClient:
        """A sync ``KeyClient`` on this vault as its principal; ``kwargs`` go to the client (e.g. ``api_version``)."""
        from azure.keyvault.keys import KeyClient

        return KeyClient(self.vault_url, self.credential, **{**self.client_options, **kwargs})

    def secret_client(self, **kwargs: Any) -> SecretClient:
        """A sync ``SecretClient`` on this vault as its principal."""
        from azure.keyvault.secrets import SecretClient

        return SecretClient(self.vault_url, self.credential, **{**self.client_options, **kwargs})

    def async_key_client(self, **kwargs: Any) -> AsyncKeyClient:
        """An ``azure.keyvault.keys.aio.KeyClient`` (aiohttp); use ``async with``, which also closes its credential."""
        from azure.keyvault.keys.aio import KeyClient

        return cast("AsyncKeyClient", _closing_credential(KeyClient, self, kwargs))

    def async_secret_client(self, **kwargs: Any) -> AsyncSecretClient:
        """An ``azure.keyvault.secrets.aio.SecretClient`` (aiohttp); ``async with`` closes it and its credential."""
        from azure.keyvault.secrets.aio import SecretClient

        return cast("AsyncSecretClient", _closing_credential(SecretClient, self, kwargs))

    @property
    def env(self) -> dict[str, str]:
        """The ``kluis env`` variables for this vault and principal (proxy mode): ``HTTPS_PROXY``, the CA
        variables, ``KEY_VAULT_NAME``, ``VAULT_URL``, ``AZURE_TENANT_ID``/``CLIENT_ID``/``CLIENT_SECRET``."""
        from kluis.cli.environment import build_env

        return build_env(
            DataDir(self.server.data_dir), vault_name=self.name, client_id=self.client_id,
            client_secret=self.client_secret,
        )  # fmt: skip

    def seed(self, spec: Path | str | dict[str, Any]) -> dict[str, list[str]]:
        """Fill the vault from a seed file (YAML or JSON) or its parsed content, as the administrator.

        Returns the names made: ``{"keys": [...], "secrets": [...]}``. See ``kluis seed``.
        """
        from kluis.cli.seed import load_seed, seed_vault

        base = Path.cwd()
        if not isinstance(spec, dict):
            base = Path(spec).parent
            spec = load_seed(Path(spec))
        return seed_vault(DataDir(self.server.data_dir), self.name, spec, base_dir=base)

    def export(self, *, include_secret_values: bool = False) -> dict[str, Any]:
        """The vault's objects in the seed format (public key material only); see ``kluis export``."""
        from kluis.cli.seed import export_vault

        return export_vault(DataDir(self.server.data_dir), self.name, include_secret_values=include_secret_values)

    def close(self) -> None:
        """Close the cached sync credential's connections."""
        if self._credential is not None:
            self._credential.close()
            self._credential = None


def _closing_credential(client_class: Any, vault: Vault, kwargs: dict[str, Any]) -> Any:
    """``client_class(url, credential)`` whose ``close()`` and ``async with`` exit also close the credential
    (an unclosed aiohttp session would otherwise warn when it is collected)."""

    class Closing(client_class):  # type: ignore[misc]
        async def close(self) -> None:
            try:
                await super().close()
            finally:
                await credential.close()

        async def __aexit__(self, *args: Any) -> None:
            try:
                await super().__aexit__(*args)
            finally:
                await credential.close()

    Closing.__name__ = Closing.__qualname__ = client_class.__name__
    credential = vault.async_credential()
    return Closing(vault.vault_url, credential, **{**vault.client_options, **kwargs})

"""How CLI commands reach the running server: data dir -> server.json + admin.json + CA file."""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx

from kluis.config import DataDir, ServerSettings

__all__ = ["AdminClient", "CliError", "Credentials", "load_credentials"]


class CliError(Exception):
    """A failure to show the user as one readable line (no traceback)."""


class Credentials:
    def __init__(self, tenant: str, app_id: str, password: str, object_id: str = "") -> None:
        self.tenant = tenant
        self.app_id = app_id
        self.password = password
        self.object_id = object_id


def load_credentials(data_dir: DataDir) -> Credentials:
    if not data_dir.admin.exists():
        raise CliError(f"No kluis administrator credential in {data_dir.path}; run `kluis serve` first.")
    raw = json.loads(data_dir.admin.read_text())
    return Credentials(raw["tenant"], raw["appId"], raw["password"], raw.get("objectId", ""))


def load_settings(data_dir: DataDir) -> ServerSettings:
    settings = data_dir.read_server()
    if settings is None:
        raise CliError(f"No kluis server configured in {data_dir.path}; run `kluis serve` first.")
    return settings


class AdminClient:
    """The management API as the administrator, over HTTPS verified against the kluis CA."""

    def __init__(self, data_dir: DataDir) -> None:
        self.data_dir = data_dir
        self.settings = load_settings(data_dir)
        self.creds = load_credentials(data_dir)
        self.base = self.settings.url
        self._http = httpx.Client(
            verify=ssl.create_default_context(cafile=str(data_dir.tls / "ca.pem")),
            timeout=30.0,
            trust_env=False,  # kluis's own listener, never through HTTPS_PROXY (a foreign one broke every verb)
        )
        self._token: str | None = None

    def token(self, scope: str = "https://management.azure.com/.default") -> str:
        try:
            r = self._http.post(
                f"{self.base}/{self.creds.tenant}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.creds.app_id,
                    "client_secret": self.creds.password,
                    "scope": scope,
                },
            )
        except httpx.HTTPError as e:
            raise CliError(f"Cannot reach kluis at {self.base}: {e}. Is `kluis serve` running?") from None
        if r.status_code != 200:
            raise CliError(f"Sign-in failed: {r.json().get('error_description', r.text)}")
        token: str = r.json()["access_token"]
        return token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        if self._token is None:
            self._token = self.token()
        try:
            r = self._http.request(
                method,
                f"{self.base}/_kluis/v1{path}",
                json=body,
                params=params or None,
                headers={"authorization": f"Bearer {self._token}"},
            )
        except httpx.HTTPError as e:
            raise CliError(f"Cannot reach kluis at {self.base}: {e}. Is `kluis serve` running?") from None
        if r.status_code == 204:
            return None
        try:
            data = r.json()
        except ValueError:
            raise CliError(f"Unexpected answer from kluis ({r.status_code}): {r.text[:200]}") from None
        if r.status_code >= 400:
            err = data.get("error", {}) if isinstance(data, dict) else {}
            raise CliError(f"({err.get('code', r.status_code)}) {err.get('message', r.text)}")
        return data

"""What a handler gets: the request, its verified caller and vault, its route parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from kluis.api.hosts import HostInfo
from kluis.api.http import Request
from kluis.api.routes import Route
from kluis.api.runtime import Runtime
from kluis.api.throttle import SignInGuard
from kluis.domain.authorization import Caller
from kluis.domain.errors import BadParameter
from kluis.domain.model import VaultRecord
from kluis.domain.views import Page

__all__ = ["RequestContext"]


@dataclass
class RequestContext:
    runtime: Runtime
    request: Request
    host: HostInfo
    request_id: str
    params: dict[str, str | None] = field(default_factory=dict)
    caller: Caller | None = None
    vault_record: VaultRecord | None = None
    api_version: str = ""
    route: Route | None = None
    sign_ins: SignInGuard | None = None  # the token endpoint's record of failed client authentications
    error: str = ""  # "database" when the request failed because the database did (for metrics)
    written_version: str = ""  # the version a create/import/rotate/set/restore made or an update/recover names
    written_name: str = ""  # the object a route without {name} (restore) wrote; its event records it

    @property
    def base(self) -> str:
        """``https://host[:port]`` as the client addressed it; ids in answers start with it."""
        return self.host.base_url

    @property
    def vault(self) -> VaultRecord:
        assert self.vault_record is not None, "data-plane routes always resolve a vault"
        return self.vault_record

    @property
    def name(self) -> str:
        """The ``{name}`` route parameter."""
        return self.params.get("name") or ""

    @property
    def version(self) -> str | None:
        """The ``{version?}`` route parameter (None: latest)."""
        return self.params.get("version")

    async def body(self) -> dict[str, Any]:
        """The JSON object body. The request's own limits apply first (413 over the route's
        ``body_limit``, 408 when too slow: ``kluis.api.http``); BadParameter when missing or not an object."""
        raw = await self.request.body()
        if not raw or (raw[:1].isspace() and not raw.strip()):  # (a JSON object's first byte is "{")
            raise BadParameter("The request body is missing; this operation needs a JSON object.")
        try:
            body = orjson.loads(raw)
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            raise BadParameter("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise BadParameter("The request body must be a JSON object.")
        return body

    def query_int(self, name: str) -> int | None:
        raw = self.request.query_params.get(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise BadParameter(f"The '{name}' query parameter must be an integer.") from None

    def next_link(self, path: str, page: Page[Any], maxresults: int | None) -> str | None:
        if page.next_token is None:
            return None
        query: dict[str, str] = {"api-version": self.api_version, "$skiptoken": page.next_token}
        if maxresults is not None:
            query["maxresults"] = str(maxresults)
        return f"{self.base}{path}?{urlencode(query)}"

"""The application: one dispatcher for the data plane, identity endpoints and management API.

A hand-written dispatcher (instead of a route table of patterns) because Key Vault paths carry
empty segments with meaning: ``/keys/NAME/`` is the latest version and ``/keys/NAME//release``
is the latest version's release. The app speaks RSGI (what ``kluis serve`` runs on granian) and
ASGI (tests, other servers); both feed the same ``respond``.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from kluis.api.admin import MANAGEMENT_AUDIENCES, route_admin
from kluis.api.auth import authenticate
from kluis.api.errors import HttpError, error_response, json_response
from kluis.api.hosts import HostInfo, HostResolver
from kluis.api.http import Request, Response, asgi_headers
from kluis.api.keys import RequestContext, route_deleted_keys, route_keys, route_rng
from kluis.api.oauth import route_identity
from kluis.api.runtime import DEFAULT_VAULT, Runtime
from kluis.config import DataDir, ServerSettings, default_data_dir
from kluis.domain.errors import BadParameter, VaultError

__all__ = ["LATEST_API_VERSION", "KluisApp", "check_api_version", "create_app"]

log = logging.getLogger("kluis.api")

LATEST_API_VERSION = "2026-04-01"
_API_VERSION = re.compile(r"^(?:7\.[0-9](?:-preview(?:\.\d+)?)?|(\d{4})-(\d{2})-(\d{2})(?:-preview(?:\.\d+)?)?)$")
_DATA_PLANE = {"keys": route_keys, "deletedkeys": route_deleted_keys, "rng": route_rng}
_NOT_YET = frozenset({"secrets", "deletedsecrets", "certificates", "deletedcertificates", "storage"})


def check_api_version(value: str | None) -> str:
    """Accept every version an SDK may send (7.x, dated, previews); a missing one is an error."""
    if not value:
        raise BadParameter("The 'api-version' query parameter is missing. Supported: 7.0 to 7.6, 2016-10-01 and later.")
    m = _API_VERSION.match(value)
    if m is None or (m.group(1) is not None and (m.group(1), m.group(2), m.group(3)) < ("2016", "10", "01")):
        raise BadParameter(
            f"The specified version ({value}) is not recognized. Consider using the latest supported "
            f"version ({LATEST_API_VERSION})."
        )
    return value


class KluisApp:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.hosts = HostResolver(DEFAULT_VAULT, runtime.settings.domains)

    async def respond(self, request: Request) -> Response:
        try:
            response = await self.handle(request)
        except Exception as exc:  # the one place where anything unexpected becomes a 500
            response = error_response(exc)
        request_id = request.headers.get("x-ms-client-request-id")
        if request_id:
            response.headers["x-ms-client-request-id"] = request_id
        return response

    # -- RSGI (granian) ------------------------------------------------------------------------
    def __rsgi_init__(self, loop: Any) -> None:
        if self.runtime.pool is not None:
            self.runtime.pool.start()

    def __rsgi_del__(self, loop: Any) -> None:
        self.runtime.close()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        request = Request(scope.method, scope.path, scope.query_string, scope.headers, protocol)
        response = await self.respond(request)
        protocol.response_bytes(response.status_code, response.header_list(), response.body)

    # -- ASGI ------------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":

            async def read_body() -> bytes:
                chunks = []
                while True:
                    message = await receive()
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body"):
                        return b"".join(chunks)

            request = Request(
                scope["method"],
                scope["path"],
                scope["query_string"].decode("latin-1"),
                asgi_headers(scope["headers"]),
                read_body,
            )
            response = await self.respond(request)
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.header_list()],
                }
            )
            await send({"type": "http.response.body", "body": response.body})
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.runtime.pool is not None:
                    self.runtime.pool.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.runtime.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, request: Request) -> Response:
        method = request.method
        segs = request.path.split("/")[1:]
        head = segs[0].lower() if segs else ""
        host = self.hosts.resolve(request.headers.get("host", ""))
        try:
            if head in _DATA_PLANE or head in _NOT_YET:
                return await self._data_plane(request, host, method, head, segs[1:])
            if head == "_kluis":
                return await self._management(request, host, method, segs[1:])
            answer = await route_identity(request, self.runtime, host.base_url, method, segs)
            if answer is not None:
                return answer
            raise HttpError(404, "NotFound", f"The path {request.path} does not exist on this server.")
        except VaultError as exc:
            return error_response(exc)

    async def _data_plane(self, request: Request, host: HostInfo, method: str, head: str, rest: list[str]) -> Response:
        rt = self.runtime
        caller = authenticate(request.headers.get("authorization"), host, rt.verifier, rt.tenant_id, rt.clock.now())
        if isinstance(caller, Response):
            return caller
        version = check_api_version(request.query_params.get("api-version"))
        vault = rt.vault(host.vault_name)
        if head in _NOT_YET:
            raise HttpError(
                501,
                "NotImplemented",
                f"kluis does not serve /{head} yet; keys are supported, secrets and certificates will follow.",
            )
        ctx = RequestContext(rt, request, host, vault, caller, version)
        return await _DATA_PLANE[head](ctx, method, rest)

    async def _management(self, request: Request, host: HostInfo, method: str, segs: list[str]) -> Response:
        if segs == ["health"]:
            return json_response({"status": "ok", "tenant": self.runtime.tenant_id})
        if not segs or segs[0] != "v1":
            raise HttpError(404, "NotFound", "No such management endpoint.")
        mgmt_host = HostInfo(
            host.vault_name, host.base_url, "https://management.azure.com", MANAGEMENT_AUDIENCES, False
        )
        caller = authenticate(
            request.headers.get("authorization"),
            mgmt_host,
            self.runtime.verifier,
            self.runtime.tenant_id,
            self.runtime.clock.now(),
        )
        if isinstance(caller, Response):
            return caller
        return await route_admin(request, self.runtime, caller, method, segs[1:])


def create_app(**overrides: Any) -> KluisApp:
    """ASGI factory for worker processes: configuration comes from the environment set by ``serve``."""
    data_dir = DataDir(default_data_dir())
    settings = data_dir.read_server() or ServerSettings()
    for name, value in overrides.items():
        setattr(settings, name, value)
    if os.environ.get("KLUIS_KEY_POOL"):
        settings.key_pool = int(os.environ["KLUIS_KEY_POOL"])
    return KluisApp(Runtime(data_dir, settings))

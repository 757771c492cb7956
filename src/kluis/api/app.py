"""The application: one dispatcher over the one route table (``kluis.api.table``).

For every request: give it an id (answered as ``x-ms-request-id``), find its route, and by the
route's ``auth``: verify the bearer token (401 with the challenge before the body is read),
check the api-version, resolve the vault from the request's authority, ask the authorization
point for the route's permission, run the handler; then pass the outcome through the event hook.
The app speaks RSGI (what ``kluis serve`` runs on granian) and ASGI (tests, other servers); both
feed the same ``respond``.

The domain and the store are synchronous. On SQLite they run inline on the event loop (a cached
point read costs microseconds, less than a hand-off to a thread). When the runtime has an
executor (PostgreSQL: a network round trip per uncached read or write), a request without a
body is first tried on the loop with the store in cache-only mode (the hot reads: no hand-off);
if it needs the database (``CacheMiss``) it runs again on an executor thread. For a request with
a body, authentication and authorization are tried the same way, the body is then read on the
loop, and the handler (which writes) runs on an executor thread (its coroutine, which then waits for nothing, stepped to
its end there), so a slow query or a 500 ms RSA-4096 key generation never stalls the worker's other
requests, and the order of answers (401 before any body check) is the same as inline. The events of
a successful write are emitted on an executor thread too: its audit record is committed before the
answer, and that commit must not stall the loop either.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, TypeVar

from kluis import __version__
from kluis.api.admin import MANAGEMENT_AUDIENCES
from kluis.api.auth import authenticate
from kluis.api.context import RequestContext
from kluis.api.errors import HttpError, error_response
from kluis.api.hosts import HostInfo, HostResolver
from kluis.api.http import BodyRefused, ClientGone, Request, Response, asgi_headers
from kluis.api.metrics import ENV as METRICS_ENV
from kluis.api.metrics import Metrics
from kluis.api.routes import Auth, Route
from kluis.api.runtime import CacheMiss, Runtime
from kluis.api.table import NOT_YET, ROUTER
from kluis.api.throttle import RateLimitedLog, Shedder, SignInGuard, VaultThrottle, table_path
from kluis.api.tunnels import TunnelTable, split_peer, tunnel_table_path
from kluis.api.versions import check_api_version
from kluis.config import REQUESTS_PER_WORKER, DataDir, ServerSettings, default_data_dir
from kluis.domain.audit import is_durable_write
from kluis.domain.authorization import AdminPermission
from kluis.domain.errors import Forbidden, NotFound, VaultError
from kluis.domain.events import OperationEvent

__all__ = ["KluisApp", "create_app"]

log = logging.getLogger("kluis.api")
# Requests one worker runs before it answers 503: just under granian's own limit (REQUESTS_PER_WORKER),
# past which granian would stop accepting connections and new clients would stall instead.
SHED_AT = REQUESTS_PER_WORKER - 256
access_log = logging.getLogger("kluis.access")

# Key Vault's own response headers, on every data-plane answer (401 challenges and errors too), as
# recorded sessions show them (azure-sdk-for-js keyvault-keys recordings: ``x-ms-keyvault-region:
# westus``, ``x-ms-keyvault-service-version: 1.1.6.0`` in 2020 and 1.9.x later, ``x-ms-keyvault-
# network-info: conn_type=Ipv4;addr=<client ip>;act_addr_fam=InterNetwork;``). The service version
# is Azure's four-part build number; kluis sends its own version in that shape. The address family
# names are .NET's (InterNetwork / InterNetworkV6); no recording of an IPv6 client was found, so
# the IPv6 form follows that naming.
SERVICE_VERSION = ".".join([*__version__.split("+")[0].split("."), "0", "0", "0", "0"][:4])
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")


def _run_to_end(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``, which must not suspend, to its end on this (executor) thread.

    Off the loop a request's coroutines never wait for anything (its body was read on the loop
    before), so stepping the coroutine once finishes it: ~25 us cheaper per request than running
    it on an event loop of the thread's own. One that suspends is a programming error.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a request awaited something other than its body off the event loop")


async def _handle(route: Route, ctx: RequestContext) -> Response:
    return await route.handler(ctx)


async def _off_loop(executor: Executor, coro: Coroutine[Any, Any, T]) -> T:
    """``coro`` run on one of ``executor``'s threads; this loop serves other requests meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(executor, _run_to_end, coro)


@functools.lru_cache(maxsize=4096)
def _network_info(client: str) -> str:
    """``x-ms-keyvault-network-info`` for a client IP (remembered: a client sends many requests)."""
    if ":" in client:
        return f"conn_type=Ipv6;addr={client};act_addr_fam=InterNetworkV6;"
    return f"conn_type=Ipv4;addr={client};act_addr_fam=InterNetwork;"


def _collection(path: str) -> str:
    """The first path segment, lower-case ("keys" of ``/Keys/k1``; "" for ``/``)."""
    segs = path.split("/", 2)
    return segs[1].lower() if len(segs) > 1 else ""


def _peer(client: Any) -> str:
    """The IP of RSGI's ``scope.client`` ("ip:port", "[v6]:port") or ASGI's ``(host, port)``."""
    return split_peer(client)[0]


class KluisApp:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.hosts = HostResolver(runtime.settings.domains, runtime.settings.hostnames)
        self._region = runtime.settings.region
        where, port = runtime.data_dir.path, runtime.settings.port
        self.throttle = VaultThrottle(table_path(where, port, "vaults"), runtime.settings.throttle_limit)
        self.sign_ins = SignInGuard(table_path(where, port, "sign-ins"))
        # The CONNECT proxy's tunnels: their real clients (api/tunnels.py); only when a proxy runs.
        self.tunnels = TunnelTable(tunnel_table_path(where, port)) if runtime.settings.proxy_port else None
        self.shedder = Shedder(SHED_AT)
        self.warnings = RateLimitedLog(log)
        if runtime.settings.metrics_port and os.environ.get(METRICS_ENV):  # kluis serve --metrics-port
            pool = runtime.pool
            metrics = Metrics((lambda: pool.depth(2048)) if pool is not None else None)
            runtime.events.subscribe(metrics)
            if runtime.audit_log is not None:
                runtime.audit_log.on_error = metrics.audit_error

    async def serve(self, request: Request) -> Response:
        """``respond``, unless this worker already runs ``SHED_AT`` requests: then 503 at once."""
        if not self.shedder.enter():
            self.warnings.warning("shed", "worker overloaded: %d requests running; answering 503", self.shedder.running)
            return _overloaded()
        try:
            return await self.respond(request)
        finally:
            self.shedder.leave()

    async def respond(self, request: Request) -> Response:
        started = time.perf_counter()
        ctx = RequestContext(self.runtime, request, self.hosts.resolve(request.authority), _request_id())
        ctx.sign_ins = self.sign_ins
        reads = self.runtime.begin_request()
        try:
            executor = self.runtime.executor
            if executor is None or ROUTER.match(request.method, request.path).auth is Auth.NONE:
                response = await self._dispatch(ctx)  # token endpoint, health: on the loop (their waits are async)
            elif request.method in _NO_BODY:
                response = await self._cached_first(executor, self._dispatch, ctx)
            else:  # authenticate and authorize first, read the body on the loop, then run the handler
                route = await self._cached_first(executor, self._route, ctx)
                if route is None:
                    response = self._no_route(ctx)
                else:
                    await request.body()
                    response = await _off_loop(executor, _handle(route, ctx))
        except _Answer as answer:
            response = answer.response
        except BodyRefused as refused:
            response = _refused(refused)
        except ClientGone:
            log.debug("client %s left before its body arrived (%s %s)", request.client, request.method, request.path)
            response = Response(b"", 499)  # never delivered: the connection is gone
        except VaultError as exc:
            response = error_response(exc)
        except Exception as exc:  # the one place where anything unexpected becomes a 500
            log.exception(
                "unhandled error in request %s (%s %s)", ctx.request_id, request.method, request.path,
                extra={"request_id": ctx.request_id},
            )  # fmt: skip
            if isinstance(exc, self.runtime.database_errors):
                ctx.error = "database"
            response = error_response(exc)
        finally:
            request.release()
            self.runtime.end_request(reads)
        headers = response.headers
        headers["x-ms-request-id"] = ctx.request_id
        client_request_id = request.headers.get("x-ms-client-request-id")
        if client_request_id:
            headers["x-ms-client-request-id"] = client_request_id
        if ctx.route is not None and ctx.route.auth is Auth.VAULT:
            vault = ctx.vault_record
            headers["x-ms-keyvault-region"] = vault.location if vault is not None else self._region
            headers["x-ms-keyvault-service-version"] = SERVICE_VERSION
            headers["x-ms-keyvault-network-info"] = _network_info(request.client)
        if ctx.route is not None:
            event = self._event(ctx, ctx.route, response.status_code, time.perf_counter() - started)
            if self.runtime.executor is not None and is_durable_write(event):
                # Its audit record is committed before the answer (a round trip and a WAL flush on
                # PostgreSQL): on an executor thread, so the loop serves other requests meanwhile.
                await asyncio.get_running_loop().run_in_executor(self.runtime.executor, self.runtime.events.emit, event)
            else:
                self.runtime.events.emit(event)
        return response

    async def _cached_first(
        self, executor: Executor, step: Callable[[RequestContext], Coroutine[Any, Any, T]], ctx: RequestContext
    ) -> T:
        """``step(ctx)`` on the loop if the store's cache can answer all it reads (most requests: no
        hand-off), else again from the start on an executor thread. Steps run this way only read
        (a throttle token taken before a miss is taken again on the second run)."""
        try:
            with self.runtime.cache_only():
                return _run_to_end(step(ctx))
        except CacheMiss:
            return await _off_loop(executor, step(ctx))

    async def _dispatch(self, ctx: RequestContext) -> Response:
        route = await self._route(ctx)
        return await route.handler(ctx) if route is not None else self._no_route(ctx)

    async def _route(self, ctx: RequestContext) -> Route | None:
        """The matched route with ``ctx`` filled in (caller, vault, api-version), after authentication
        and authorization; None when no row matches (``_no_route`` answers)."""
        request = ctx.request
        match = ROUTER.match(request.method, request.path)
        ctx.params = match.params
        ctx.route = match.route
        head = "" if match.route is not None else _collection(request.path)  # no row serves NOT_YET's
        auth = match.auth if match.route is not None else (Auth.VAULT if head in NOT_YET else match.auth)
        if auth is Auth.VAULT:
            self._vault_request(ctx, head)
        elif auth is Auth.MANAGEMENT:
            self._management_request(ctx)
        route = match.route
        if route is not None:
            request.body_limit = route.max_body
        if route is None:
            if match.allowed:
                raise HttpError(405, "MethodNotAllowed", f"The {request.method} method is not allowed on this path.")
            return None
        if route.auth is Auth.VAULT:
            assert ctx.caller is not None and route.permission is not None
            assert not isinstance(route.permission, AdminPermission)
            self.runtime.authorizer.authorize(ctx.vault, ctx.caller, route.permission)
        return route

    def _vault_request(self, ctx: RequestContext, head: str) -> None:
        """Data plane: token, api-version, vault (in that order, as Azure answers). Plain, not async: it
        waits for nothing (a coroutine object per request saved)."""
        rt = self.runtime
        host = ctx.host
        caller = authenticate(
            ctx.request.headers.get("authorization"), host, rt.verifier, rt.tenant_id, int(time.time())
        )
        if isinstance(caller, Response):
            raise _Answer(caller)
        ctx.caller = caller
        ctx.api_version = check_api_version(ctx.request.query_params.get("api-version"))
        ctx.vault_record = self._vault(host)
        retry_after = self.throttle.check(ctx.vault_record.name)
        if retry_after is not None:
            raise _Answer(_throttled(retry_after))
        if head in NOT_YET:
            raise HttpError(
                501,
                "NotImplemented",
                f"kluis does not serve /{head} yet; keys and secrets are supported, certificates will follow.",
            )

    def _vault(self, host: HostInfo) -> Any:
        if not host.authority:
            raise HttpError(400, "BadParameter", "The request has no Host header (HTTP/1.1) or :authority (HTTP/2).")
        if host.vault_name is None:
            raise NotFound(f"No vault is served at host '{host.authority}'.", code="VaultNotFound")
        return self.runtime.management.get_vault(host.vault_name)  # read each time: Runtime.vault

    def _management_request(self, ctx: RequestContext) -> None:
        mgmt_host = HostInfo(
            ctx.host.vault_name, ctx.host.base_url, "https://management.azure.com", MANAGEMENT_AUDIENCES, ""
        )
        rt = self.runtime
        caller = authenticate(
            ctx.request.headers.get("authorization"), mgmt_host, rt.verifier, rt.tenant_id, int(time.time())
        )
        if isinstance(caller, Response):
            raise _Answer(caller)
        if not rt.authorizer.is_admin(caller):
            raise Forbidden("Only the kluis administrator may use the management API.", inner_code="AccessDenied")
        ctx.caller = caller

    @staticmethod
    def _no_route(ctx: RequestContext) -> Response:
        raise HttpError(404, "NotFound", f"The path {ctx.request.path} does not exist on this server.")

    @staticmethod
    def _event(ctx: RequestContext, route: Route, status: int, duration: float) -> OperationEvent:
        caller, params = ctx.caller, ctx.params
        return OperationEvent(  # by keyword: 14 fields of mostly strings, an order mistake would go unseen
            request_id=ctx.request_id,
            operation=route.operation,
            kind=route.kind,
            status=status,
            duration=duration,
            vault=ctx.vault_record.name if ctx.vault_record is not None else "",
            object_name=params.get("name") or ctx.written_name,
            version=params.get("version") or ctx.written_version,
            caller_object_id=caller.object_id if caller else "",
            caller_app_id=caller.app_id if caller else "",
            tenant_id=caller.tenant_id if caller else "",
            client_address=ctx.request.client,
            method=route.method,
            error=ctx.error,
        )

    # -- RSGI (granian) ------------------------------------------------------------------------
    def __rsgi_init__(self, loop: Any) -> None:
        if self.runtime.pool is not None:
            self.runtime.pool.start()
        # Everything made so far (modules, the runtime, its caches' first entries) lives as long as the
        # worker: moved out of the collector's generations, so collections no longer traverse it.
        gc.freeze()

    def _client(self, peer: Any) -> str:
        """The client's IP: the peer's, or for a tunnel of kluis's CONNECT proxy the one it carries."""
        ip, port = split_peer(peer)
        if self.tunnels is not None:
            return self.tunnels.client_of(ip, port) or ip
        return ip

    def __rsgi_del__(self, loop: Any) -> None:
        self.runtime.close()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        headers = scope.headers
        # HTTP/2 has no Host header: its :authority is scope.authority (HTTP/1.1: None, use Host).
        authority = scope.authority or headers.get("host") or ""
        request = Request(
            scope.method,
            scope.path,
            scope.query_string,
            headers,
            _rsgi_chunks(protocol, headers),
            authority,
            self._client(scope.client),
            whole=_rsgi_whole(protocol) if scope.http_version == "1.1" and "transfer-encoding" not in headers else None,
        )
        response = await self.serve(request)
        protocol.response_bytes(response.status_code, response.header_list(), response.body)

    # -- ASGI ------------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":

            async def chunks() -> AsyncIterator[bytes]:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ClientGone()
                    yield message.get("body", b"")
                    if not message.get("more_body"):
                        return

            headers = asgi_headers(scope["headers"])
            request = Request(
                scope["method"],
                scope["path"],
                scope["query_string"].decode("latin-1"),
                headers,
                chunks,
                headers.get("host", ""),  # ASGI servers map HTTP/2 :authority to a host header
                self._client(scope.get("client")),
            )
            response = await self.serve(request)
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


def _rsgi_chunks(protocol: Any, headers: Any) -> Callable[[], AsyncIterator[bytes]]:
    """The body of an RSGI request as it arrives (granian's ``async for chunk in protocol``);
    ClientGone when the connection closes first (granian ends the iteration early or raises)."""

    async def chunks() -> AsyncIterator[bytes]:
        declared = headers.get("content-length")
        expected = int(declared) if declared is not None and declared.isdigit() and len(declared) < 20 else None
        received = 0
        try:
            async for chunk in protocol:
                received += len(chunk)
                yield chunk
        except RuntimeError as exc:  # granian's RSGIProtocolClosed / RSGIProtocolError
            raise ClientGone() from exc
        if expected is not None and received < expected:
            raise ClientGone()

    return chunks


def _rsgi_whole(protocol: Any) -> Callable[[], Awaitable[bytes]]:
    """The body of an HTTP/1.1 RSGI request with a Content-Length in one call (granian's ``await
    protocol()``); ClientGone when the connection closes first. Only HTTP/1.1: its framing bounds
    the body by the Content-Length the dispatcher checked (HTTP/2's DATA frames are not bound by it)."""

    async def whole() -> bytes:
        try:
            body: bytes = await protocol()
        except RuntimeError as exc:  # granian's RSGIProtocolClosed / RSGIProtocolError
            raise ClientGone() from exc
        return body

    return whole


def _throttled(retry_after: int) -> Response:
    """Azure's 429 for a vault past its request rate; Retry-After is kluis's own addition."""
    return error_response(
        HttpError(
            429,
            "Throttled",
            "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
        ),
        {"Retry-After": str(retry_after)},
    )


def _overloaded() -> Response:
    return error_response(
        HttpError(503, "ServiceUnavailable", "The server is busy; retry shortly."), {"Retry-After": "1"}
    )


def _refused(refused: BodyRefused) -> Response:
    """413 / 408 / 503 (+ Retry-After) for a body kluis would not read whole."""
    codes = {413: "BadParameter", 408: "RequestTimeout", 503: "ServiceUnavailable"}
    headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after is not None else None
    response = error_response(HttpError(refused.status, codes.get(refused.status, "BadParameter"), refused.message))
    if headers:
        response.headers.update(headers)
    if refused.status in (408, 413):
        response.headers["connection"] = "close"  # the rest of the body is never read
    return response


# Request ids: unique, not secret (they are logged and answered). A random prefix per process and a
# counter: 32 hex digits like a UUID, without a getrandom() system call per request.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def _new_id_prefix() -> None:  # a forked worker must not repeat its parent's ids
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX, _ID_COUNTER = os.urandom(8).hex(), itertools.count(1)


os.register_at_fork(after_in_child=_new_id_prefix)


def _request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


class _Answer(VaultError):
    """A complete response to send as it is (the 401 challenge), raised out of the dispatch."""

    def __init__(self, response: Response) -> None:
        super().__init__("authentication required")
        self.response = response


def create_app(**overrides: Any) -> KluisApp:
    """ASGI factory for worker processes: configuration comes from the environment set by ``serve``."""
    data_dir = DataDir(default_data_dir())
    settings = data_dir.read_server() or ServerSettings()
    for name, value in overrides.items():
        setattr(settings, name, value)
    if os.environ.get("KLUIS_KEY_POOL"):
        settings.key_pool = int(os.environ["KLUIS_KEY_POOL"])
    return KluisApp(Runtime(data_dir, settings))

"""The smallest request/response layer kluis needs, for both granian's RSGI and plain ASGI.

Why not Starlette's objects: profiling the get-key path showed Starlette's ``Request`` (URL,
QueryParams, Headers) and ``Response`` setup at ~45 µs of ~110 µs per request. kluis reads a
handful of headers and one query parameter, so it keeps the interface it used (``method``,
``path``, ``headers.get``, ``query_params.get``, ``await body()``, ``Response(content,
status_code, headers, media_type)``) and builds each piece only when asked. ``kluis serve`` runs
the app on granian's RSGI interface (measured faster than ASGI for the same work); the ASGI
entry point stays for tests and any other ASGI server.

Bodies are bounded before anything else happens: ``Request.body()`` refuses a Content-Length over
the request's ``body_limit`` at once (413), counts bytes while streaming (so a chunked body stops
at the limit too), reserves every chunk from the worker's ``BodyBudget`` (503 when the worker
already holds its budget of body bytes) and gives up after ``body_timeout`` seconds (408). A
client that goes away mid-body is ``ClientGone``, which the dispatcher logs at debug level.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "DEFAULT_BODY_TIMEOUT",
    "BodyBudget",
    "BodyRefused",
    "ClientGone",
    "HeaderMap",
    "Request",
    "Response",
    "asgi_headers",
]

DEFAULT_BODY_LIMIT = 256 * 1024  # bytes; a route's own limit replaces it (kluis.api.routes.Route.body_limit)
DEFAULT_BODY_TIMEOUT = 20.0  # seconds for a whole body to arrive, from the first read
BODY_BUDGET = 64 * 1024 * 1024  # bytes of request bodies one worker holds at once, all requests together


class HeaderMap(Protocol):
    """Lower-case header names; ``get`` is all the handlers use."""

    def get(self, key: str, default: Any = None) -> Any: ...


class BodyRefused(Exception):
    """The body was not read (whole): ``status`` is 413 (too large), 408 (too slow) or 503 (the
    worker holds its budget of body bytes); ``retry_after`` seconds for 503."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class ClientGone(Exception):
    """The client closed the connection before its body arrived; nobody is left to answer."""


class BodyBudget:
    """Bytes of request bodies held by one worker process, bounded by ``capacity``.

    One asyncio loop per worker, so plain integers suffice (no awaits between check and update).
    """

    def __init__(self, capacity: int = BODY_BUDGET) -> None:
        self.capacity = capacity
        self.held = 0
        self.peak = 0

    def take(self, n: int) -> bool:
        if self.held + n > self.capacity:
            return False
        self.held += n
        self.peak = max(self.peak, self.held)
        return True

    def give(self, n: int) -> None:
        self.held = max(0, self.held - n)


#: The budget of this process (one per worker, as each granian worker is its own process).
WORKER_BUDGET = BodyBudget()

ChunkSource = Callable[[], AsyncIterator[bytes]]
# The whole body in one call, for a request whose framing bounds it (HTTP/1.1 with Content-Length):
# granian reads it in Rust at once, ~10 µs of CPU less per request than chunk by chunk (measured with
# a bare RSGI app under wrk, server CPU per POST of a 60-byte body: 45-47 µs against 54-64 µs).
WholeSource = Callable[[], Awaitable[bytes]]


class Request:
    """``authority`` is HTTP/1.1's Host header or HTTP/2's ``:authority`` ("" when the client sent neither);
    ``client`` the peer address (``host:port`` or "" when unknown); ``chunks`` yields the body as it
    arrives. ``body_limit`` (bytes) and ``body_timeout`` (seconds) are set by the dispatcher per route
    before a handler reads the body; call ``release()`` when the response is done."""

    __slots__ = (
        "_body",
        "_chunks",
        "_held",
        "_query",
        "_whole",
        "authority",
        "body_limit",
        "body_timeout",
        "budget",
        "client",
        "headers",
        "method",
        "path",
        "query_string",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: HeaderMap,
        chunks: ChunkSource,
        authority: str = "",
        client: str = "",
        budget: BodyBudget = WORKER_BUDGET,
        whole: WholeSource | None = None,
    ) -> None:
        self.method = method
        self.authority = authority
        self.client = client
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.budget = budget
        self.body_limit = DEFAULT_BODY_LIMIT
        self.body_timeout = DEFAULT_BODY_TIMEOUT
        self._chunks = chunks
        self._whole = whole
        self._body: bytes | None = None
        self._query: dict[str, str] | None = None
        self._held = 0

    @property
    def query_params(self) -> Mapping[str, str]:
        """Query parameters with names and values percent-decoded (the JS SDK sends ``api%2Dversion``).
        Read-only: the parse of a short query string is shared by the requests that send it."""
        if self._query is None:
            self._query = _query_of(self.query_string)
        return self._query

    async def body(self) -> bytes:
        """The whole body, at most ``body_limit`` bytes; raises BodyRefused (413/408/503) or ClientGone."""
        if self._body is None:
            limit = self.body_limit
            declared = self.headers.get("content-length")
            if declared is not None and declared.isdigit() and len(declared) < 20 and int(declared) > limit:
                raise BodyRefused(413, f"The request body is larger than {limit} bytes.")
            self._body = await self._read_within(limit, self.body_timeout)
        return self._body

    async def _read_within(self, limit: int, seconds: float) -> bytes:
        """``_read`` cancelled after ``seconds`` of waiting for the body (BodyRefused 408). What
        ``asyncio.timeout`` does, with one timer handle and no context object: that cost ~8 µs of every
        request with a body (uvloop). The timer is armed when the read first has to wait: a body that
        is there already (most are, by the time a handler asks) is read with no timer at all."""
        read = self._read(limit)
        try:
            waiting = read.send(None)  # as far as it gets without waiting
        except StopIteration as done:
            body: bytes = done.value
            return body
        rest = _Resume(read, waiting)
        task = asyncio.current_task()
        if task is None:  # not in a task (cannot be cancelled): nothing to bound it with but the caller's own
            return await rest
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = asyncio.get_running_loop().call_later(seconds, expire)
        try:
            return await rest
        except asyncio.CancelledError:
            if expired and task.uncancel() == 0:  # our timer's cancellation, and nobody else's
                raise BodyRefused(408, f"The request body did not arrive within {seconds:g} s.") from None
            raise
        finally:
            timer.cancel()

    async def _read(self, limit: int) -> bytes:
        if self._whole is not None:
            declared = self.headers.get("content-length")
            if declared is not None and declared.isdigit() and len(declared) < 20:
                return await self._read_declared(int(declared), limit)
        parts: list[bytes] = []
        size = 0
        async for chunk in self._chunks():
            if not chunk:
                continue
            size += len(chunk)
            if size > limit:
                raise BodyRefused(413, f"The request body is larger than {limit} bytes.")
            if not self.budget.take(len(chunk)):
                raise BodyRefused(503, "The server is holding too many request bodies; retry shortly.", 1)
            self._held += len(chunk)
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _read_declared(self, size: int, limit: int) -> bytes:
        """A body of exactly ``size`` bytes (its framing says so), read in one call once the worker's
        budget holds room for it; ClientGone when fewer arrive."""
        if size > limit:
            raise BodyRefused(413, f"The request body is larger than {limit} bytes.")
        if size == 0:
            return b""
        if not self.budget.take(size):
            raise BodyRefused(503, "The server is holding too many request bodies; retry shortly.", 1)
        self._held += size
        assert self._whole is not None
        body = await self._whole()
        if len(body) != size:  # the connection ended early (HTTP/1.1 framing never gives more)
            raise ClientGone()
        return body

    def release(self) -> None:
        """Give the body's bytes back to the worker's budget (the dispatcher calls this once per request)."""
        if self._held:
            self.budget.give(self._held)
            self._held = 0


class _Resume:
    """Awaiting it awaits the rest of ``coro``, which was stepped by hand until it yielded ``waiting``:
    what ``await coro`` would have done from there (PEP 380's ``yield from``). What ``coro`` yields
    goes to the task; what the task sends or throws back (a result, a cancellation) goes to ``coro``."""

    __slots__ = ("_coro", "_waiting")

    def __init__(self, coro: Coroutine[Any, Any, bytes], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    def __await__(self) -> Generator[Any, Any, bytes]:
        coro, waiting = self._coro, self._waiting
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    waiting = coro.throw(exc)
                except StopIteration as done:
                    thrown_result: bytes = done.value
                    return thrown_result
            else:
                try:
                    waiting = coro.send(sent)
                except StopIteration as done:
                    result: bytes = done.value
                    return result


class Response:
    __slots__ = ("body", "headers", "status_code")

    def __init__(
        self,
        content: bytes = b"",
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.body = content
        self.status_code = status_code
        self.headers: dict[str, str] = dict(headers) if headers else {}
        if media_type is not None:
            self.headers["content-type"] = media_type

    @classmethod
    def owning(cls, content: bytes, status_code: int, headers: dict[str, str]) -> Response:
        """A response that keeps ``headers``, a dict made for it alone, as its own (no copy)."""
        response = cls.__new__(cls)
        response.body = content
        response.status_code = status_code
        response.headers = headers
        return response

    def header_list(self) -> list[tuple[str, str]]:
        return [*self.headers.items(), ("content-length", str(len(self.body)))]


_QUERY_MEMO = 1024  # entries
_QUERY_MEMO_LENGTH = 128  # characters: "api-version=7.6" and its like; paging tokens are longer
_queries: dict[str, dict[str, str]] = {}


def _query_of(qs: str) -> dict[str, str]:
    """``_parse_query(qs)``, remembered for short query strings (clients repeat ``api-version=7.6``).
    The dict is shared: callers only read it (``Request.query_params`` is a Mapping)."""
    hit = _queries.get(qs)
    if hit is None:
        hit = _parse_query(qs)
        if len(qs) <= _QUERY_MEMO_LENGTH:
            if len(_queries) >= _QUERY_MEMO:
                _queries.clear()
            _queries[qs] = hit
    return hit


def _parse_query(qs: str) -> dict[str, str]:
    """``parse_qsl`` semantics; plain ``a=b&c=d`` (what SDKs send) skips the general parser."""
    if not qs:
        return {}
    if "%" in qs or "+" in qs or ";" in qs:
        return dict(parse_qsl(qs, keep_blank_values=True))
    out: dict[str, str] = {}
    for part in qs.split("&"):
        if part:
            name, _, value = part.partition("=")
            out[name] = value
    return out


def asgi_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}

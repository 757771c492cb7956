"""The smallest request/response layer kluis needs, for both granian's RSGI and plain ASGI.

Why not Starlette's objects: profiling the get-key path showed Starlette's ``Request`` (URL,
QueryParams, Headers) and ``Response`` setup at ~45 µs of ~110 µs per request. kluis reads a
handful of headers and one query parameter, so it keeps the interface it used (``method``,
``path``, ``headers.get``, ``query_params.get``, ``await body()``, ``Response(content,
status_code, headers, media_type)``) and builds each piece only when asked. ``kluis serve`` runs
the app on granian's RSGI interface (measured faster than ASGI for the same work); the ASGI
entry point stays for tests and any other ASGI server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

__all__ = ["HeaderMap", "Request", "Response", "asgi_headers"]


class HeaderMap(Protocol):
    """Lower-case header names; ``get`` is all the handlers use."""

    def get(self, key: str, default: Any = None) -> Any: ...


class Request:
    """``authority`` is HTTP/1.1's Host header or HTTP/2's ``:authority`` ("" when the client sent neither);
    ``client`` is the peer's IP address as text ("" when the server does not say)."""

    __slots__ = ("_body", "_query", "_read_body", "authority", "client", "headers", "method", "path", "query_string")

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: HeaderMap,
        read_body: Callable[[], Awaitable[bytes]],
        authority: str = "",
        client: str = "",
    ) -> None:
        self.method = method
        self.authority = authority
        self.client = client
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self._read_body = read_body
        self._body: bytes | None = None
        self._query: dict[str, str] | None = None

    @property
    def query_params(self) -> Mapping[str, str]:
        """Query parameters with names and values percent-decoded (the JS SDK sends ``api%2Dversion``)."""
        if self._query is None:
            self._query = _parse_query(self.query_string)
        return self._query

    async def body(self) -> bytes:
        if self._body is None:
            self._body = await self._read_body()
        return self._body


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

    def header_list(self) -> list[tuple[str, str]]:
        return [*self.headers.items(), ("content-length", str(len(self.body)))]


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

"""What a handler gets: route parameters, the JSON body (with its limits), integer queries, next links."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest

from kluis.api.context import RequestContext
from kluis.api.hosts import HostResolver
from kluis.api.http import BodyRefused, Request
from kluis.api.runtime import Runtime
from kluis.domain.errors import BadParameter
from kluis.domain.views import Page

LIMIT = 1024  # bytes: the route's body limit in these tests


def _ctx(body: bytes = b"", headers: dict[str, str] | None = None, query: str = "", **kw: Any) -> RequestContext:
    async def chunks() -> AsyncIterator[bytes]:
        reads.append(len(body))
        yield body

    reads: list[int] = []
    request = Request("POST", "/keys/k/create", query, headers or {}, chunks, authority="localhost:8443")
    request.body_limit = LIMIT
    ctx = RequestContext(cast(Runtime, None), request, HostResolver().resolve("localhost:8443"), "rid", **kw)
    ctx.reads = reads  # type: ignore[attr-defined]
    return ctx


def _body(ctx: RequestContext) -> dict[str, Any]:
    return asyncio.run(ctx.body())


def test_route_parameters() -> None:
    ctx = _ctx(params={"name": "k1", "version": None})
    assert ctx.name == "k1" and ctx.version is None and ctx.base == "https://localhost:8443"
    assert _ctx(params={"name": "k1", "version": "v1"}).version == "v1"
    assert _ctx().name == ""


def test_body_is_the_json_object() -> None:
    assert _body(_ctx(b' {"kty": "EC", "n": [1]} ')) == {"kty": "EC", "n": [1]}


def test_declared_oversize_body_is_413_before_it_is_read() -> None:
    ctx = _ctx(b"{}", {"content-length": str(LIMIT + 1)})
    with pytest.raises(BodyRefused) as err:
        _body(ctx)
    assert err.value.status == 413 and ctx.reads == []  # type: ignore[attr-defined]


def test_undeclared_oversize_body_is_413() -> None:
    with pytest.raises(BodyRefused) as err:
        _body(_ctx(b" " * (LIMIT + 1)))
    assert err.value.status == 413
    assert _body(_ctx(b"{}" + b" " * (LIMIT - 2))) == {}  # exactly the limit is fine


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "missing"),
        (b"  \n", "missing"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
    ],
)
def test_bad_bodies(raw: bytes, message: str) -> None:
    with pytest.raises(BadParameter, match=message):
        _body(_ctx(raw))


def test_query_int() -> None:
    ctx = _ctx(query="maxresults=7&empty=&word=seven")
    assert ctx.query_int("maxresults") == 7
    assert ctx.query_int("empty") is None and ctx.query_int("absent") is None
    with pytest.raises(BadParameter, match="'word' query parameter must be an integer"):
        ctx.query_int("word")


def test_next_link() -> None:
    ctx = _ctx(api_version="7.6")
    assert ctx.next_link("/keys", Page(next_token=None), 5) is None
    link = ctx.next_link("/keys", Page(next_token="abc/+="), 5)
    assert link is not None
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://localhost:8443/keys"
    assert parse_qs(parts.query) == {"api-version": ["7.6"], "$skiptoken": ["abc/+="], "maxresults": ["5"]}
    without = ctx.next_link("/keys", Page(next_token="t"), None)
    assert without is not None and "maxresults" not in without

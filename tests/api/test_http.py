"""The small request/response layer: query parsing as parse_qsl does it, lazy body, header lists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

from kluis.api.http import Request, Response, _parse_query, asgi_headers


def test_query_parsing_matches_parse_qsl() -> None:
    for qs in ("api-version=7.6", "api%2Dversion=7.6&maxresults=2", "a=1&a=2&b", "x=%2525&y=a+b", "", "$skiptoken=abc"):
        assert _parse_query(qs) == dict(parse_qsl(qs, keep_blank_values=True)), qs


def test_query_params_are_decoded_and_parsed_once() -> None:
    req = Request("GET", "/keys", "api%2Dversion=7.6&maxresults=5", {}, _never)
    params = req.query_params
    assert params == {"api-version": "7.6", "maxresults": "5"}
    assert req.query_params is params  # parsed on first use, then kept


def test_plain_queries_keep_the_last_value_and_blank_names() -> None:
    assert _parse_query("a=1&a=2&b&&c=") == {"a": "2", "b": "", "c": ""}


async def _never() -> bytes:
    raise AssertionError("the body was read")


def test_body_is_read_once_and_only_when_asked() -> None:
    reads: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        reads.append(1)
        yield b"pay"
        yield b"load"

    req = Request("POST", "/x", "", {"content-type": "application/json"}, chunks, authority="h:1")
    assert reads == []  # constructing a request reads nothing
    assert asyncio.run(req.body()) == b"payload"
    assert asyncio.run(req.body()) == b"payload"
    assert reads == [1] and req.authority == "h:1" and req.headers.get("content-type") == "application/json"


def test_response_headers_and_content_length() -> None:
    r = Response(b"abc", 201, {"x-a": "1"}, media_type="application/json")
    assert r.status_code == 201 and r.body == b"abc"
    assert r.header_list() == [("x-a", "1"), ("content-type", "application/json"), ("content-length", "3")]
    empty = Response(status_code=204)
    assert empty.header_list() == [("content-length", "0")]
    given = {"x-b": "2"}
    Response(headers=given).headers["x-c"] = "3"
    assert given == {"x-b": "2"}  # the response copies the mapping it is given


def test_asgi_headers_are_lower_case_latin1() -> None:
    raw = [(b"Content-Type", b"text/plain"), (b"X-Name", "caf\u00e9".encode("latin-1"))]
    assert asgi_headers(raw) == {"content-type": "text/plain", "x-name": "caf\u00e9"}

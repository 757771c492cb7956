"""The small request/response layer: query parsing as parse_qsl does it, lazy body, header lists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

from kluis.api.http import BodyRefused, ClientGone, Request, Response, _parse_query, asgi_headers


def test_query_parsing_matches_parse_qsl() -> None:
    for qs in ("api-version=7.6", "api%2Dversion=7.6&maxresults=2", "a=1&a=2&b", "x=%2525&y=a+b", "", "$skiptoken=abc"):
        assert _parse_query(qs) == dict(parse_qsl(qs, keep_blank_values=True)), qs


def test_query_params_are_decoded_and_parsed_once() -> None:
    req = Request("GET", "/keys", "api%2Dversion=7.6&maxresults=5", {}, _never)
    params = req.query_params
    assert params == {"api-version": "7.6", "maxresults": "5"}
    assert req.query_params is params  # parsed on first use, then kept


def test_short_query_strings_share_one_parse_and_long_ones_are_parsed_each_time() -> None:
    short = [Request("GET", "/keys", "api-version=7.6", {}, _never).query_params for _ in range(2)]
    assert short[0] == {"api-version": "7.6"} and short[1] is short[0]
    long = "api-version=7.6&$skiptoken=" + "x" * 200
    params = [Request("GET", "/keys", long, {}, _never).query_params for _ in range(2)]
    assert params[0] == params[1] == _parse_query(long) and params[1] is not params[0]


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
    own = {"x-d": "4"}
    owning = Response.owning(b"xy", 202, own)
    assert owning.headers is own and owning.header_list() == [("x-d", "4"), ("content-length", "2")]
    assert owning.status_code == 202 and owning.body == b"xy"


def test_asgi_headers_are_lower_case_latin1() -> None:
    raw = [(b"Content-Type", b"text/plain"), (b"X-Name", "caf\u00e9".encode("latin-1"))]
    assert asgi_headers(raw) == {"content-type": "text/plain", "x-name": "caf\u00e9"}


def test_a_body_that_stops_arriving_is_refused_with_408_after_its_timeout() -> None:
    from kluis.api.http import BodyRefused

    async def slow() -> AsyncIterator[bytes]:
        yield b"{"
        await asyncio.sleep(30)
        yield b"}"

    async def run() -> tuple[int, float]:
        req = Request("POST", "/keys/k/create", "", {}, slow)
        req.body_timeout = 0.2
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            await req.body()
        except BodyRefused as refused:
            assert "0.2 s" in refused.message
            return refused.status, loop.time() - start
        raise AssertionError("the body was not refused")

    status, took = asyncio.run(run())
    assert status == 408 and 0.15 < took < 5


def test_a_cancellation_from_outside_stays_a_cancellation_and_a_fast_body_leaves_no_timer() -> None:
    async def slow() -> AsyncIterator[bytes]:
        await asyncio.sleep(30)
        yield b"x"

    async def fast() -> AsyncIterator[bytes]:
        yield b"ok"

    async def run() -> None:
        loop = asyncio.get_running_loop()
        req = Request("POST", "/", "", {}, fast)
        req.body_timeout = 0.05
        assert await req.body() == b"ok"
        await asyncio.sleep(0.1)  # the timer was cancelled with the read: it must not cancel this task now
        task = asyncio.create_task(Request("POST", "/", "", {}, slow).body())
        await asyncio.sleep(0.05)
        task.cancel()  # e.g. the server shutting down: not a 408
        try:
            await task
        except asyncio.CancelledError:
            assert task.cancelled()
        else:
            raise AssertionError("the read was not cancelled")
        assert loop.time() > 0

    asyncio.run(run())


def test_a_body_that_waits_is_resumed_with_what_it_awaited_and_still_bounded_after_its_first_wait() -> None:
    async def late(parts: list[bytes]) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        for part in parts:
            fut: asyncio.Future[bytes] = loop.create_future()
            loop.call_later(0.01, fut.set_result, part)
            yield await fut  # the value the task sends back must reach the read

    async def stalls_after_the_first_chunk() -> AsyncIterator[bytes]:
        yield b"{"  # read without waiting...
        await asyncio.sleep(30)  # ...then the wait the timer bounds
        yield b"}"

    async def gone() -> AsyncIterator[bytes]:
        await asyncio.sleep(0.01)
        raise ClientGone()
        yield b""  # an async generator

    async def run() -> None:
        req = Request("POST", "/", "", {}, lambda: late([b'{"a":', b"1}"]))
        req.body_timeout = 5
        assert await req.body() == b'{"a":1}' and req._held == 7
        stalled = Request("POST", "/", "", {}, stalls_after_the_first_chunk)
        stalled.body_timeout = 0.1
        try:
            await stalled.body()
        except BodyRefused as refused:
            assert refused.status == 408
        else:
            raise AssertionError("the stalled body was not refused")
        try:
            await Request("POST", "/", "", {}, gone).body()
        except ClientGone:
            pass
        else:
            raise AssertionError("the client's leaving was lost")
        await asyncio.sleep(0.2)  # no timer left behind cancels this task

    asyncio.run(run())


def _whole_request(body: bytes, declared: int, budget_capacity: int = 1 << 20) -> tuple[Request, list[int]]:
    """A request whose body comes in one call (HTTP/1.1 with Content-Length); the list counts calls."""
    from kluis.api.http import BodyBudget

    calls: list[int] = []

    async def whole() -> bytes:
        calls.append(1)
        return body

    headers = {"content-length": str(declared)}
    return Request("POST", "/", "", headers, _never, whole=whole, budget=BodyBudget(budget_capacity)), calls


def test_a_declared_body_is_read_in_one_call_and_held_in_the_budget() -> None:
    req, calls = _whole_request(b'{"a":1}', 7)
    assert asyncio.run(req.body()) == b'{"a":1}' and calls == [1]
    assert req.budget.held == 7
    req.release()
    assert req.budget.held == 0


def test_a_declared_body_is_refused_before_it_is_read() -> None:
    from kluis.api.http import BodyRefused

    too_big, calls = _whole_request(b"", 10)
    too_big.body_limit = 9
    full, full_calls = _whole_request(b"x" * 10, 10, budget_capacity=5)
    for req, status in ((too_big, 413), (full, 503)):
        try:
            asyncio.run(req.body())
        except BodyRefused as refused:
            assert refused.status == status
        else:
            raise AssertionError(f"not refused with {status}")
    assert calls == [] and full_calls == []  # nothing was read


def test_a_declared_body_that_ends_early_means_the_client_left() -> None:
    from kluis.api.http import ClientGone

    req, _ = _whole_request(b"{", 7)
    try:
        asyncio.run(req.body())
    except ClientGone:
        pass
    else:
        raise AssertionError("a short body was accepted")
    empty, calls = _whole_request(b"", 0)
    assert asyncio.run(empty.body()) == b"" and calls == []

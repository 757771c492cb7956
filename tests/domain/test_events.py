from __future__ import annotations

import logging

import pytest

from kluis.domain.events import EventBus, OperationEvent, access_log

EVENT = OperationEvent(request_id="r1", operation="GetKey", kind="key", status=200, duration=0.001)


def test_every_subscriber_sees_every_event() -> None:
    bus = EventBus()
    seen: list[tuple[str, OperationEvent]] = []
    bus.subscribe(lambda e: seen.append(("a", e)))
    bus.subscribe(lambda e: seen.append(("b", e)))
    bus.emit(EVENT)
    assert seen == [("a", EVENT), ("b", EVENT)]


def test_a_failing_subscriber_is_logged_and_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[OperationEvent] = []

    def broken(event: OperationEvent) -> None:
        raise RuntimeError("audit store down")

    bus.subscribe(broken)
    bus.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="kluis.events"):
        bus.emit(EVENT)
    assert seen == [EVENT]
    assert "r1" in caplog.text


def test_access_log_line_carries_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    event = OperationEvent("abc123", "Sign", "key", 403, 0.0042, vault="v1", object_name="k", version="v9")
    with caplog.at_level(logging.INFO, logger="kluis.access"):
        access_log(event)
    assert caplog.messages == ["abc123 Sign 403 vault=v1 object=k/v9 app=- 4.2ms"]


def test_an_event_carries_the_client_address_method_and_error_kind() -> None:
    e = OperationEvent("r", "GetKey", "key", 200, 0.1, client_address="10.1.2.3", method="GET")
    assert (e.client_address, e.method, e.error) == ("10.1.2.3", "GET", "")

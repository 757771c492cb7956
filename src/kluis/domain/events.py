"""The one event hook every completed operation passes through (audit, metrics, access logs).

The HTTP layer emits one ``OperationEvent`` per request it routed, after the answer is decided,
whatever the outcome. Subscribers run inline and must be quick; one that raises is logged and
never changes the answer or stops the other subscribers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["EventBus", "OperationEvent", "Subscriber", "access_log"]

log = logging.getLogger("kluis.events")
_access = logging.getLogger("kluis.access")


@dataclass(slots=True)  # not frozen: built on every request, and a frozen __init__ costs more
class OperationEvent:
    """One completed operation. ``caller_*`` are empty for unauthenticated requests; ``vault`` is
    empty outside the data plane; ``object_name`` / ``version`` come from the route (may be empty);
    ``duration`` is in seconds; ``status`` is the HTTP status answered; ``client_address`` the peer's
    IP (the proxy's for clients behind the CONNECT proxy); ``method`` the HTTP method; ``error`` is
    ``"database"`` when the request failed because the database did, else empty."""

    request_id: str
    operation: str  # Azure's operation name, e.g. "GetKey"
    kind: str  # "key", "secret", "vault", "identity", ...
    status: int
    duration: float
    vault: str = ""
    object_name: str = ""
    version: str = ""
    caller_object_id: str = ""
    caller_app_id: str = ""
    tenant_id: str = ""
    client_address: str = ""
    method: str = ""
    error: str = ""


Subscriber = Callable[[OperationEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, event: OperationEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber failed for request %s", event.request_id)


def access_log(event: OperationEvent) -> None:
    """One line per operation on the ``kluis.access`` logger at INFO (free when that level is off):
    request id, operation, status, vault, object, caller app id, milliseconds."""
    if _access.isEnabledFor(logging.INFO):
        _access.info(
            "%s %s %d vault=%s object=%s%s app=%s %.1fms",
            event.request_id,
            event.operation,
            event.status,
            event.vault or "-",
            event.object_name or "-",
            f"/{event.version}" if event.version else "",
            event.caller_app_id or "-",
            event.duration * 1000,
            extra={"request_id": event.request_id},
        )

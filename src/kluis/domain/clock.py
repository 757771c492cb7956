"""Time as the domain sees it: wall clock plus an offset that tests and operators may move.

Key expiry, retention and rotation all depend on "now"; keeping one clock object lets a test
move time for the whole server (stored in the database so every worker agrees).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock"]


class Clock:
    """Seconds since the epoch, shifted by the offset ``offset_source()`` returns (seconds).

    The source is called on every reading, so it must be cheap and exactly as fresh as the store's
    reads: the runtime's reads the offset through the store's read cache (``Store.cached_setting``:
    on SQLite exact per request by ``PRAGMA data_version``, on PostgreSQL kept by change
    notifications within the store's documented bound). An earlier per-process cache of one second
    let another worker use the old offset for up to a second after ``kluis time set`` (an attacker's
    finding: 6 of 12 signs with a just-expired key were answered).
    """

    __slots__ = ("_source",)

    def __init__(self, offset_source: Callable[[], int] | None = None) -> None:
        self._source = offset_source

    def now(self) -> int:
        """Current time in whole seconds, as Azure's ``unixtime`` fields are."""
        return int(self.now_float())

    def now_float(self) -> float:
        """Current time in seconds (fractional)."""
        if self._source is None:
            return time.time()
        return time.time() + self._source()

"""Time as the domain sees it: wall clock plus an offset that tests and operators may move.

Key expiry, retention and rotation all depend on "now"; keeping one clock object lets a test
move time for the whole server (stored in the database so every worker agrees).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock"]


class Clock:
    """Seconds since the epoch, shifted by an offset read through ``offset_source``.

    The offset is cached for ``ttl`` seconds so a hot path does not read the database per call.
    """

    def __init__(self, offset_source: Callable[[], int] | None = None, *, ttl: float = 1.0) -> None:
        self._source = offset_source
        self._ttl = ttl
        self._offset = 0
        self._read_at = float("-inf")

    def now(self) -> int:
        """Current time in whole seconds, as Azure's ``unixtime`` fields are."""
        return int(self.now_float())

    def now_float(self) -> float:
        real = time.time()
        if self._source is not None:
            mono = time.monotonic()
            if mono - self._read_at > self._ttl:
                self._offset = self._source()
                self._read_at = mono
        return real + self._offset

    def invalidate(self) -> None:
        """Forget the cached offset (after this process changed it)."""
        self._read_at = float("-inf")

"""The domain's clock: wall time plus an offset read through a source on every reading."""

from __future__ import annotations

import time

from kluis.domain.clock import Clock


class Source:
    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.offset


def test_without_a_source_it_is_the_wall_clock() -> None:
    before = time.time()
    now = Clock().now_float()
    assert before <= now <= time.time()
    assert isinstance(Clock().now(), int)


def test_the_offset_moves_time() -> None:
    clock = Clock(Source(-3600))
    assert abs(clock.now() - (time.time() - 3600)) <= 1


def test_the_offset_is_read_on_every_reading() -> None:
    """No time-based cache (it let another worker use an old offset for up to a second): the source,
    the store's exact cached read, decides how fresh the offset is."""
    source = Source(10)
    clock = Clock(source)
    assert clock.now() >= int(time.time()) + 9 and source.reads == 1
    source.offset = 20
    assert clock.now() >= int(time.time()) + 19 and source.reads == 2
    source.offset = -30
    assert clock.now_float() <= time.time() - 29 and source.reads == 3

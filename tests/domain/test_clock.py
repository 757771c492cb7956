"""The domain's clock: wall time plus an offset read through a source, cached for ``ttl`` seconds."""

from __future__ import annotations

import time

import pytest

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


def test_the_offset_is_cached_for_ttl_then_reread(monkeypatch: pytest.MonkeyPatch) -> None:
    mono = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: mono[0])
    source = Source(10)
    clock = Clock(source, ttl=1.0)
    clock.now()
    source.offset = 20
    mono[0] += 1.0
    assert clock.now() < time.time() + 15 and source.reads == 1  # still within the ttl
    mono[0] += 0.01
    assert clock.now() >= int(time.time()) + 19 and source.reads == 2
    source.offset = 30
    clock.invalidate()
    assert clock.now() >= int(time.time()) + 29 and source.reads == 3  # invalidate forces a read

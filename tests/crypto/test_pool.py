from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kluis.crypto.errors import InvalidParameter
from kluis.crypto.keys import KeyMaterial
from kluis.crypto.pool import KeyPool


def _n(key: KeyMaterial) -> int:
    assert isinstance(key.public, rsa.RSAPublicKey)
    return key.public.public_numbers().n


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.mark.parametrize(
    "kwargs",
    [{"sizes": {1024: 1}}, {"sizes": {2048: -1}}, {"public_exponent": 5}, {"idle_seconds": -1.0}],
)
def test_invalid_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        KeyPool(**kwargs)  # type: ignore[arg-type]


def test_concurrent_takers_never_share_a_key() -> None:
    pool = KeyPool(sizes={2048: 6})
    pool.fill()
    assert pool.depth(2048) == 6
    pooled = {_n(key) for key in list(pool._pools[2048])}
    takers = 20
    barrier = threading.Barrier(takers)

    def take(_: int) -> int:
        barrier.wait()
        return _n(pool.take(2048))

    with ThreadPoolExecutor(max_workers=takers) as executor:
        moduli = list(executor.map(take, range(takers)))
    assert len(set(moduli)) == takers
    assert pooled <= set(moduli)  # every pooled key handed out, each exactly once
    assert pool.depth(2048) == 0


def test_take_falls_back_to_inline_generation() -> None:
    pool = KeyPool(sizes={2048: 1})
    pool.fill()
    key = pool.take(2048, public_exponent=3)  # exponent mismatch: not from the pool
    assert isinstance(key.public, rsa.RSAPublicKey) and key.public.public_numbers().e == 3
    assert pool.depth(2048) == 1
    assert pool.take(2048).key_size == 2048
    assert pool.depth(2048) == 0
    assert pool.take(2048).key_size == 2048  # empty pool: generated inline
    with pytest.raises(InvalidParameter):
        pool.take(1024)


def test_refill_after_idle_and_stop_discards() -> None:
    pool = KeyPool(sizes={2048: 2}, idle_seconds=0.05)
    pool.start()
    pool.start()  # idempotent
    try:
        assert _wait_for(lambda: pool.depth(2048) == 2)
        first = {_n(pool.take(2048)), _n(pool.take(2048))}
        assert pool.depth(2048) == 0
        assert _wait_for(lambda: pool.depth(2048) == 2)
        refilled = {_n(key) for key in list(pool._pools[2048])}
        assert not first & refilled
    finally:
        pool.stop()
    assert pool.depth(2048) == 0
    assert not any(t.name == "kluis-rsa-key-pool" and t.is_alive() for t in threading.enumerate())
    time.sleep(0.1)
    assert pool.depth(2048) == 0  # nothing refills after stop
    assert pool.take(2048).key_size == 2048  # still usable, inline


def test_no_refill_while_busy() -> None:
    pool = KeyPool(sizes={2048: 1}, idle_seconds=3.0)
    pool.start()
    try:
        pool.take(2048)  # marks the pool as in use (an empty pool generates inline: slow on a busy machine)
        time.sleep(0.3)
        assert pool.depth(2048) == 0  # still inside the idle window
        assert _wait_for(lambda: pool.depth(2048) == 1)
    finally:
        pool.stop()


def test_restart_after_stop() -> None:
    pool = KeyPool(sizes={2048: 1}, idle_seconds=0.0)
    pool.start()
    pool.stop()
    pool.start()
    try:
        assert _wait_for(lambda: pool.depth(2048) == 1)
    finally:
        pool.stop()
    assert pool.depth(2048) == 0

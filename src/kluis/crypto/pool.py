"""A pool of pre-generated RSA keys, so that CreateKey does not pay for key generation.

RSA-2048 generation costs ~50 ms (and far more for 4096 bits), while creating
a key through the API must take < 5 ms p50.  One low-priority daemon thread
keeps a few keys per size ready.  It only refills once the pool has been idle
for ``idle_seconds``, so it does not compete for CPU with a burst of requests;
during a burst that drains the pool, keys are generated inline.

``cryptography`` releases the GIL while OpenSSL generates the key, so the
refill thread does not stall other Python threads (measured: a tight Python
loop runs at the same speed with a generator thread running).

Pooled keys live only in memory: they are never persisted, and :meth:`stop`
throws them away.  A key is handed out at most once.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType

from kluis.crypto.algorithms import KeyType
from kluis.crypto.keys import RSA_KEY_SIZES, RSA_PUBLIC_EXPONENTS, KeyMaterial, generate

__all__ = ["KeyPool"]

_DEFAULT_SIZES: Mapping[int, int] = MappingProxyType({2048: 16})
_NICE = 10


def _lower_thread_priority() -> None:
    """Make the calling thread yield CPU to request handlers (Linux: per-thread nice value)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)


class KeyPool:
    """Pre-generated RSA keys, by modulus size, for one public exponent."""

    def __init__(
        self,
        *,
        sizes: Mapping[int, int] = _DEFAULT_SIZES,
        public_exponent: int = 65537,
        idle_seconds: float = 0.05,
    ) -> None:
        for size, depth in sizes.items():
            if size not in RSA_KEY_SIZES:
                raise ValueError(f"RSA key size {size} cannot be pooled (allowed: {RSA_KEY_SIZES})")
            if depth < 0:
                raise ValueError(f"pool depth for {size} must not be negative")
        if public_exponent not in RSA_PUBLIC_EXPONENTS:
            raise ValueError(f"public exponent must be one of {RSA_PUBLIC_EXPONENTS}")
        if idle_seconds < 0:
            raise ValueError("idle_seconds must not be negative")
        self._targets: dict[int, int] = dict(sizes)
        self._exponent = public_exponent
        self._idle = idle_seconds
        self._pools: dict[int, deque[KeyMaterial]] = {size: deque() for size in self._targets}
        self._cond = threading.Condition()
        self._last_used = float("-inf")
        self._thread: threading.Thread | None = None
        self._stopped: threading.Event | None = None

    # --- public API ---------------------------------------------------------

    def start(self) -> None:
        """Start the background refill thread (no-op if already running)."""
        with self._cond:
            if self._thread is not None:
                return
            stopped = threading.Event()
            thread = threading.Thread(target=self._run, args=(stopped,), name="kluis-rsa-key-pool", daemon=True)
            self._thread, self._stopped = thread, stopped
            thread.start()

    def stop(self) -> None:
        """Stop the refill thread and discard every pooled key."""
        with self._cond:
            thread, stopped = self._thread, self._stopped
            self._thread = self._stopped = None
            if stopped is not None:
                stopped.set()
            for pool in self._pools.values():
                pool.clear()
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def take(self, size: int, public_exponent: int = 65537) -> KeyMaterial:
        """A fresh key of ``size`` bits: from the pool if one is ready, else generated inline."""
        key: KeyMaterial | None = None
        with self._cond:
            self._last_used = time.monotonic()
            pool = self._pools.get(size) if public_exponent == self._exponent else None
            if pool:
                was_full = len(pool) >= self._targets[size]
                key = pool.popleft()
                if was_full:  # the refiller may be waiting with no deadline; give it one
                    self._cond.notify()
        if key is None:
            key = generate(KeyType.RSA, size=size, public_exponent=public_exponent)
        return key

    def depth(self, size: int) -> int:
        """Keys of ``size`` bits ready right now."""
        with self._cond:
            pool = self._pools.get(size)
            return len(pool) if pool is not None else 0

    def fill(self) -> None:
        """Top every pool up synchronously, in the calling thread (warm-up and tests)."""
        for size in self._targets:
            while self.depth(size) < self._targets[size]:
                self._add(size, generate(KeyType.RSA, size=size, public_exponent=self._exponent), None)

    # --- refill thread -----------------------------------------------------

    def _add(self, size: int, key: KeyMaterial, stopped: threading.Event | None) -> bool:
        with self._cond:
            if stopped is not None and stopped.is_set():
                return False
            if len(self._pools[size]) < self._targets[size]:
                self._pools[size].append(key)
        return True

    def _deficit(self) -> int | None:
        """The smallest size that is below target (cheapest first), or None when all are full."""
        for size in sorted(self._targets):
            if len(self._pools[size]) < self._targets[size]:
                return size
        return None

    def _next_size(self, stopped: threading.Event) -> int | None:
        """Block until a size needs a key and the pool has been idle long enough; None on stop."""
        with self._cond:
            while not stopped.is_set():
                size = self._deficit()
                if size is None:
                    self._cond.wait()
                    continue
                quiet_for = time.monotonic() - self._last_used
                if quiet_for < self._idle:
                    self._cond.wait(self._idle - quiet_for)
                    continue
                return size
            return None

    def _run(self, stopped: threading.Event) -> None:
        _lower_thread_priority()
        while (size := self._next_size(stopped)) is not None:
            key = generate(KeyType.RSA, size=size, public_exponent=self._exponent)
            if not self._add(size, key, stopped):
                return

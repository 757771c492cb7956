"""Throttling like Key Vault's, load shedding, and slowing failed sign-ins.

- ``VaultThrottle``: a token bucket per vault, shared by every worker of one node through a small
  memory-mapped table (``SharedBuckets``), so the number configured (``--throttle-limit``,
  requests per 10 seconds per vault, Azure's unit) is the number a client sees from that node.
  Nodes sharing one database throttle each on their own. Past it: Azure's 429 ``Throttled``; the
  ``Retry-After`` header (seconds until the bucket has a token again) is kluis's own addition.
- ``SignInGuard``: failed client authentications at the token endpoint, counted per (client id,
  client address) in another shared table. Past ``FREE_FAILURES`` the next attempts of that pair
  wait (doubling, at most ``MAX_DELAY`` seconds) before they are answered, so guessing is slow, and
  a victim's client signing in from another address is never slowed by an attacker's failures.
- ``Shedder``: requests a worker runs at once; past the limit, 503 + ``Retry-After`` at once
  instead of queueing (the answer costs nothing: no body is read, no token checked).
- ``RateLimitedLog``: at most one line per ``interval`` seconds for a repeated warning.

Buckets live in a file in the data directory (mode 0600), one per port; a table slot is (key
hash, tokens, last refill), found by linear probing, locked with ``flock`` for the few
microseconds of an update. When the table is full the stalest
slot is reused (its owner gets a full bucket again: throttling can only err on the lenient side).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import math
import os
import struct
import threading
import time
from pathlib import Path

from kluis.api.mapped import map_file

__all__ = [
    "FREE_FAILURES",
    "MAX_DELAY",
    "WINDOW",
    "RateLimitedLog",
    "SharedBuckets",
    "Shedder",
    "SignInGuard",
    "VaultThrottle",
    "table_path",
]

WINDOW = 10.0  # seconds: Azure states its vault limits per 10 seconds
FREE_FAILURES = 5  # failed sign-ins of one (client id, address) before answers are delayed
FAILURE_MEMORY = 900.0  # seconds for FREE_FAILURES failures to be forgotten (one every 3 minutes)
MAX_DELAY = 10.0  # seconds: the longest a failing pair waits

_SLOT = struct.Struct("<Qdd")  # key hash, tokens, last refill (time.monotonic: one clock for all processes)
_SLOTS = 4096
_PROBE = 8


def table_path(data_dir: Path, port: int, name: str) -> Path:
    """Where the node's shared table ``name`` lives: in the data directory (SQLite's WAL already
    needs every process of a database on one host), one file per listening port."""
    return data_dir / f"throttle-{port}-{name}.bin"


@functools.lru_cache(maxsize=4096)
def _slot_hash(key: str) -> int:
    """A stable 64-bit hash of a bucket key (never 0: 0 marks an empty slot); memoized, keys repeat."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1


class SharedBuckets:
    """Token buckets keyed by string, in a file every worker maps. ``capacity`` tokens, refilled at
    ``rate`` per second. ``take`` returns 0.0 when a token was taken, else the seconds to wait."""

    def __init__(self, path: Path, capacity: float, rate: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self._fd, self._map = map_file(path, _SLOT.size * _SLOTS)
        # flock excludes other processes only: threads share the descriptor, so they also take this
        # lock (requests run on a worker's executor threads when the store is PostgreSQL)
        self._threads = threading.Lock()

    def take(self, key: str, cost: float = 1.0, now: float | None = None, *, force: bool = False) -> float:
        moment = time.monotonic() if now is None else now
        h = _slot_hash(key)
        start = h % _SLOTS
        with self._threads:
            return self._take(h, start, moment, cost, force)

    def _take(self, h: int, start: int, moment: float, cost: float, force: bool) -> float:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            index, tokens, last = self._find(h, start, moment)
            tokens = min(self.capacity, tokens + max(0.0, moment - last) * self.rate)
            if force:  # record regardless: the bucket may go into debt (at most 64 tokens)
                tokens = max(tokens - cost, -64.0)
                wait = 0.0
            elif tokens >= cost:
                tokens -= cost
                wait = 0.0
            else:
                wait = (cost - tokens) / self.rate if self.rate > 0 else math.inf
            _SLOT.pack_into(self._map, index * _SLOT.size, h, tokens, moment)
            return wait
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def level(self, key: str, now: float | None = None) -> float:
        """Tokens left for ``key`` (``capacity`` for a key never seen), without taking one."""
        moment = time.monotonic() if now is None else now
        h = _slot_hash(key)
        with self._threads:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                _, tokens, last = self._find(h, h % _SLOTS, moment, claim=False)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return min(self.capacity, tokens + max(0.0, moment - last) * self.rate)

    def _find(self, h: int, start: int, now: float, *, claim: bool = True) -> tuple[int, float, float]:
        stalest, stalest_at = start, math.inf
        for i in range(_PROBE):
            index = (start + i) % _SLOTS
            key, tokens, last = _SLOT.unpack_from(self._map, index * _SLOT.size)
            if key == h:
                return index, tokens, last
            if key == 0:
                return index, self.capacity, now
            if last < stalest_at:
                stalest, stalest_at = index, last
        return stalest, self.capacity, now  # reuse the stalest slot (lenient on collision)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


class VaultThrottle:
    """``limit`` requests per WINDOW seconds per vault on this node (0: off)."""

    def __init__(self, path: Path, limit: int) -> None:
        self.limit = limit
        self._buckets = SharedBuckets(path, capacity=float(limit), rate=limit / WINDOW) if limit > 0 else None
        # A worker takes tokens from the shared table in leases of up to 16 (one file lock per lease,
        # not per request). A lease is at most limit/1000 tokens, so the limit a client sees is exact
        # to 0.1% per worker; small limits (under 2,000) lease one token at a time: exact.
        self._lease = max(1, min(16, limit // 1000))
        self._leased: dict[str, int] = {}

    def check(self, vault_name: str) -> int | None:
        """None when the request may go on, else the Retry-After in whole seconds (at least 1)."""
        if self._buckets is None:
            return None
        key = vault_name.lower()
        left = self._leased.get(key, 0)
        if left > 0:
            self._leased[key] = left - 1
            return None
        if self._lease > 1 and self._buckets.take(key, cost=float(self._lease)) == 0.0:
            self._leased[key] = self._lease - 1
            return None
        wait = self._buckets.take(key)
        return None if wait == 0.0 else max(1, math.ceil(wait))

    def close(self) -> None:
        if self._buckets is not None:
            self._buckets.close()


class SignInGuard:
    """Failed sign-ins per (client id, client address): ``delay`` says how long to hold the next answer."""

    def __init__(self, path: Path) -> None:
        # Each failure takes a token; FREE_FAILURES tokens to start with, all back after FAILURE_MEMORY s.
        self._buckets = SharedBuckets(path, capacity=float(FREE_FAILURES), rate=FREE_FAILURES / FAILURE_MEMORY)

    @staticmethod
    def _key(client_id: str, address: str) -> str:
        return f"{client_id.lower()}|{address}"

    def delay(self, client_id: str, address: str) -> float:
        """Seconds to wait before answering this pair: 0 while it has failures to spare, then 0.5 s,
        doubling with each further failure, at most MAX_DELAY."""
        left = self._buckets.level(self._key(client_id, address))
        if left >= 1.0:
            return 0.0
        return min(MAX_DELAY, 0.5 * 2 ** min(max(0.0, -left), 8.0))

    def failed(self, client_id: str, address: str) -> None:
        self._buckets.take(self._key(client_id, address), force=True)

    def close(self) -> None:
        self._buckets.close()


class Shedder:
    """Requests this worker is running; ``enter`` is False past ``limit`` (answer 503 then)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.shed = 0

    def enter(self) -> bool:
        if self.running >= self.limit:
            self.shed += 1
            return False
        self.running += 1
        return True

    def leave(self) -> None:
        self.running -= 1


class RateLimitedLog:
    """``warning`` at most once per ``interval`` seconds per message key; the next line says how many were left out."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self._log = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -math.inf) < self._interval:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return
        skipped = self._skipped.pop(key, 0)
        self._last[key] = now
        suffix = f" ({skipped} more like this in the last {self._interval:g} s)" if skipped else ""
        self._log.warning(message + suffix, *args)

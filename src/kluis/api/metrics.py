"""Prometheus metrics, fed by the event hook, served on their own port by the supervisor.

granian runs several worker processes, so the metrics use prometheus_client's *multiprocess mode*:
each process (workers, and the supervisor for scheduler runs) writes its values to memory-mapped
files in ``DATA_DIR/metrics`` (the directory is emptied when ``kluis serve`` starts and named by
``PROMETHEUS_MULTIPROC_DIR``, which must be set before prometheus_client is first imported); the
supervisor's listener (``--metrics-port``, plain HTTP, 127.0.0.1 by default) sums them on every scrape.

Series (all prefixed ``kluis_``):

- ``requests_total{operation,status}``: routed requests by Azure operation name and HTTP status;
- ``request_duration_seconds{operation}``: latency histogram (seconds, from routing to the answer);
- ``throttled_requests_total{vault}``: requests answered 429 by the per-vault throttle;
- ``database_errors_total{source}``: requests that failed on the database (``request``) and failed
  audit flushes (``audit``);
- ``scheduler_runs_total{outcome}``: scheduler ticks (``ok`` / ``failed``), ``scheduler_objects_total{action}``;
- ``key_pool_size``: pre-generated RSA keys ready, summed over live workers.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kluis.domain.events import OperationEvent

__all__ = ["ENV", "Metrics", "prepare_directory", "scheduler_run", "serve_metrics"]

ENV = "PROMETHEUS_MULTIPROC_DIR"
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_POOL_EVERY = 1.0  # seconds between key-pool gauge updates


def prepare_directory(path: Path) -> None:
    """Empty (or create, 0700) the multiprocess directory and name it in this process's environment,
    which the workers inherit. Call before anything imports prometheus_client."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(mode=0o700, parents=True)
    os.environ[ENV] = str(path)


class _Series:
    """The metric objects (created once per process, after ``ENV`` is set)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter("kluis_requests", "Routed requests.", ["operation", "status"])
        self.latency = Histogram(
            "kluis_request_duration_seconds", "Request latency in seconds.", ["operation"], buckets=_BUCKETS
        )
        self.throttled = Counter("kluis_throttled_requests", "Requests answered 429 by the vault throttle.", ["vault"])
        self.db_errors = Counter("kluis_database_errors", "Failures of the database.", ["source"])
        self.scheduler_runs = Counter("kluis_scheduler_runs", "Scheduler ticks.", ["outcome"])
        self.scheduler_objects = Counter("kluis_scheduler_objects", "Objects the scheduler acted on.", ["action"])
        self.key_pool = Gauge("kluis_key_pool_size", "Pre-generated RSA keys ready.", multiprocess_mode="livesum")


_series: _Series | None = None


def _get() -> _Series:
    global _series
    if _series is None:
        _series = _Series()
    return _series


class Metrics:
    """An ``EventBus`` subscriber that counts every event; ``pool_depth`` gives the key pool's size."""

    def __init__(self, pool_depth: Callable[[], int] | None = None) -> None:
        self._s = _get()
        self._pool_depth = pool_depth
        self._pool_at = 0.0
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def __call__(self, event: OperationEvent) -> None:
        key = (event.operation, event.status)
        pair = self._children.get(key)
        if pair is None:
            pair = (
                self._s.requests.labels(event.operation, str(event.status)),
                self._s.latency.labels(event.operation),
            )
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(event.duration)
        if event.status == 429:
            self._s.throttled.labels(event.vault).inc()
        if event.error == "database":
            self._s.db_errors.labels("request").inc()
        if self._pool_depth is not None:
            now = time.monotonic()
            if now - self._pool_at >= _POOL_EVERY:
                self._pool_at = now
                self._s.key_pool.set(self._pool_depth())

    def audit_error(self) -> None:
        """An audit flush failed (the audit log's ``on_error``)."""
        self._s.db_errors.labels("audit").inc()


def scheduler_run(ok: bool, purged: int = 0, rotated: int = 0, failed: int = 0) -> None:
    """Count one scheduler tick (a no-op when metrics are off)."""
    if ENV not in os.environ:
        return
    s = _get()
    s.scheduler_runs.labels("ok" if ok else "failed").inc()
    for action, n in (("purged", purged), ("rotated", rotated), ("failed", failed)):
        if n:
            s.scheduler_objects.labels(action).inc(n)


def serve_metrics(host: str, port: int, directory: Path) -> Any:
    """Start the scrape listener (a daemon thread) summing every process's files; returns the server
    (``.shutdown()`` stops it). OSError when the port is taken."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server

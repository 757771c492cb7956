"""Prometheus metrics: the subscriber's series, and multiprocess aggregation behind the scrape listener."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from kluis.api.metrics import ENV, prepare_directory
from tests.e2e.server import free_port

# Two "workers" (processes) record events into one directory; a third serves the scrape.
_WORKER = textwrap.dedent(
    """
    import os, sys
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
    from kluis.api.metrics import Metrics, scheduler_run
    from kluis.domain.events import OperationEvent
    m = Metrics(lambda: 7)
    for status in (200, 200, 429):
        m(OperationEvent("r", "GetKey", "key", status, 0.003, vault="v1"))
    m(OperationEvent("r", "CreateKey", "key", 500, 0.2, error="database"))
    m.audit_error()
    scheduler_run(True, purged=2)
    """
)


def test_events_from_several_processes_are_summed_on_one_scrape(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    (directory / "stale.db").parent.mkdir()
    (directory / "stale.db").write_bytes(b"old")
    prepare = (
        f"from pathlib import Path; from kluis.api.metrics import prepare_directory as p; p(Path({str(directory)!r}))"
    )
    subprocess.run([sys.executable, "-c", prepare], check=True, timeout=60)
    assert not (directory / "stale.db").exists()  # a new start forgets the last run's values
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _WORKER, str(directory)], check=True, timeout=60)
    port = free_port()
    serve = textwrap.dedent(
        f"""
        import os, sys, time
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(directory)!r}
        from pathlib import Path
        from kluis.api.metrics import serve_metrics
        serve_metrics("127.0.0.1", {port}, Path({str(directory)!r}))
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    server = subprocess.Popen([sys.executable, "-c", serve], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.kill()
        server.wait(10)
    assert 'kluis_requests_total{operation="GetKey",status="200"} 4.0' in text
    assert 'kluis_requests_total{operation="GetKey",status="429"} 2.0' in text
    assert 'kluis_throttled_requests_total{vault="v1"} 2.0' in text
    assert 'kluis_database_errors_total{source="request"} 2.0' in text
    assert 'kluis_database_errors_total{source="audit"} 2.0' in text
    assert 'kluis_request_duration_seconds_bucket{le="0.005",operation="GetKey"} 6.0' in text
    assert 'kluis_scheduler_runs_total{outcome="ok"} 2.0' in text
    assert 'kluis_scheduler_objects_total{action="purged"} 4.0' in text
    assert "kluis_key_pool_size" in text  # livesum of processes still alive (none here)


def test_prepare_directory_sets_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)  # restored after the test
    prepare_directory(tmp_path / "m")
    assert os.environ[ENV] == str(tmp_path / "m") and (tmp_path / "m").is_dir()
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o700

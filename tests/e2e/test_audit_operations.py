"""Audit and operations against a real ``kluis serve``: audit records for SDK calls (and nothing secret in
them), ``kluis audit verify`` finding a tampered row, health and readiness, a metrics scrape, JSON logs,
backup while serving + restore into a new data dir that serves the same keys and secrets, and an
acknowledged write's audit record surviving SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import KluisServer, admin_clients, free_port

pytestmark = pytest.mark.slow

SECRET_VALUE = "s3cr3t-value-that-must-never-reach-the-audit-log"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KluisServer, int]]:
    metrics_port = free_port()
    server = KluisServer(
        tmp_path_factory.mktemp("audit") / "data",
        extra_args=["--workers", "2", "--key-pool", "0", "--metrics-port", str(metrics_port),
                    "--audit-flush-ms", "100", "--log-format", "json", "--access-log"],
    ).start()  # fmt: skip
    yield server, metrics_port
    server.stop()


def _audit(server: KluisServer, *args: str) -> list[dict[str, Any]]:
    out = server.cli("audit", "list", *args, "-o", "json").stdout
    return [json.loads(line) for line in out.splitlines()]


def _wait_for(fetch: Callable[[], list[dict[str, Any]]], count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = fetch()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_sdk_calls_are_audited_with_caller_and_no_secrets(served: tuple[KluisServer, int]) -> None:
    server, _ = served
    keys, secrets, cred = admin_clients(server)
    with keys, secrets:
        keys.create_ec_key("audited-key", curve="P-256")
        keys.get_key("audited-key")
        secrets.set_secret("audited-secret", SECRET_VALUE)
        assert secrets.get_secret("audited-secret").value == SECRET_VALUE
    admin = server.admin()
    (create,) = _audit(server, "--operation", "CreateKey", "--vault", "default")
    assert (create["name"], create["status"], create["vault"], create["kind"]) == ("audited-key", 200, "default", "key")
    assert create["callerAppId"] == admin["appId"] and create["callerObjectId"] == admin["objectId"]
    assert create["tenantId"] == admin["tenant"] and create["clientAddress"] == "127.0.0.1"
    assert len(create["requestId"]) == 32 and create["time"].endswith("+00:00")
    # reads are batched: they appear within the flush interval of the worker that served them
    gets = _wait_for(lambda: _audit(server, "--operation", "GetSecret", "--caller", admin["appId"]), 1)
    assert [g["name"] for g in gets] == ["audited-secret"] and gets[0]["version"] == ""
    everything = server.cli("audit", "list", "-o", "json").stdout
    token = cred.get_token("https://vault.azure.net/.default").token
    for secret in (SECRET_VALUE, admin["password"], token, token.split(".")[2]):
        assert secret not in everything
    assert server.cli("audit", "verify", "-o", "json").returncode == 0


_OPERATION, _NAME, _STATUS = 6, 8, 10  # places in a stored record (a row of an audit batch's body)


def _stored(db: Path) -> list[tuple[int, int, list[Any]]]:
    """Every audit record in the database file, read straight from its rows: (batch id, index, fields)."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        batches = conn.execute("SELECT id, body FROM audit_batches ORDER BY id").fetchall()
    finally:
        conn.close()
    return [(batch_id, i, row) for batch_id, body in batches for i, row in enumerate(json.loads(body))]


def test_verify_names_a_tampered_row_of_the_live_database(served: tuple[KluisServer, int]) -> None:
    server, _ = served
    server.cli("group", "create", "-n", "rg-tamper")
    db = server.data_dir / "kluis.db"
    batch_id, index, _ = [r for r in _stored(db) if r[2][_OPERATION] == "CreateGroup"][-1]
    conn = sqlite3.connect(db, timeout=30)
    try:
        (body,) = conn.execute("SELECT body FROM audit_batches WHERE id = ?", (batch_id,)).fetchone()
        rows = json.loads(body)
        rows[index][_STATUS] = 404
        with conn:
            conn.execute("UPDATE audit_batches SET body = ? WHERE id = ?", (json.dumps(rows).encode(), batch_id))
        res = server.cli("audit", "verify", "-o", "json", check=False)
        first = batch_id * 10_000  # one MAC per stored batch: verify names the batch's first record
        assert res.returncode == 1 and json.loads(res.stdout)["firstBroken"]["id"] == first
        assert f"broken at record {first} " in res.stderr
    finally:
        with conn:  # put it back: the other tests share this server's log
            conn.execute("UPDATE audit_batches SET body = ? WHERE id = ?", (body, batch_id))
        conn.close()
    assert server.cli("audit", "verify", check=False).returncode == 0


def test_health_readiness_metrics_and_json_logs(served: tuple[KluisServer, int]) -> None:
    server, metrics_port = served
    tls = ssl.create_default_context(cafile=server.ca)
    assert httpx.get(f"{server.url}/healthz", verify=tls).json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz", verify=tls)
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "kek": "ok"}
    keys, _, _ = admin_clients(server)
    with keys:
        keys.create_ec_key("metered", curve="P-256")
        for _ in range(3):
            keys.get_key("metered")
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}
    assert samples['kluis_requests_total{operation="GetKey",status="200"}'] >= 3
    assert samples['kluis_requests_total{operation="CreateKey",status="200"}'] >= 1
    assert samples['kluis_request_duration_seconds_count{operation="GetKey"}'] >= 3
    assert samples['kluis_requests_total{operation="Readiness",status="200"}'] >= 1
    log = (server.data_dir.parent / f"kluis-{server.port}.log").read_text()
    access = [json.loads(x) for x in log.splitlines() if x.startswith("{") and '"kluis.access"' in x]
    assert any(a["message"].startswith(a["request_id"]) and " GetKey 200 " in a["message"] for a in access)


def test_backup_while_serving_restores_into_a_new_data_dir(served: tuple[KluisServer, int], tmp_path: Path) -> None:
    server, _ = served
    keys, secrets, _ = admin_clients(server)
    with keys, secrets:
        keys.create_rsa_key("kept-key", size=2048)
        secrets.set_secret("kept-secret", SECRET_VALUE)
        snapshot = tmp_path / "kluis.snapshot"
        info = json.loads(server.cli("backup", "--out", str(snapshot), "-o", "json").stdout)
        keys.create_ec_key("after-backup", curve="P-256")  # still serving
    assert info["bytes"] > 0 and snapshot.exists()
    restored = tmp_path / "restored"
    res = server.cli("restore", str(snapshot), "--data-dir", str(restored), "-o", "json")
    assert "kek.key is missing" in res.stderr and info["kekFingerprint"] in res.stderr
    refused = server.cli("restore", str(snapshot), "--force", check=False)  # the live data dir
    assert refused.returncode == 1 and "kluis serve is running" in refused.stderr
    shutil.copy(server.data_dir / "kek.key", restored / "kek.key")
    shutil.copy(server.data_dir / "admin.json", restored / "admin.json")  # the same administrator
    second = KluisServer(restored, extra_args=["--workers", "1", "--key-pool", "0"]).start()
    try:
        keys2, secrets2, _ = admin_clients(second)
        with keys2, secrets2:
            assert keys2.get_key("kept-key").key_type == "RSA"
            assert secrets2.get_secret("kept-secret").value == SECRET_VALUE
            assert "after-backup" not in {k.name for k in keys2.list_properties_of_keys()}
            # an acknowledged write's audit record survives SIGKILL of the whole server
            keys2.create_ec_key("survives-sigkill", curve="P-256")
        assert second.process is not None
        os.killpg(second.process.pid, signal.SIGKILL)  # the group this test started: supervisor + worker
        second.process.wait(10)
        second.process = None
    finally:
        second.stop()
    stored = _stored(restored / "kluis.db")
    rows = [r[_STATUS] for _, _, r in stored if r[_OPERATION] == "CreateKey" and r[_NAME] == "survives-sigkill"]
    assert rows == [200]

"""The root of trust against a real ``kluis serve``: a KEK on a PKCS#11 token (SoftHSM2) that survives a
restart, and ``kluis kek rotate`` while the server serves: SDK calls keep succeeding during and after,
a restart on the new KEK serves the same keys and secrets, a backup made before the rotation restores,
and the audit chains still verify."""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm

from tests.conftest import SOFTHSM_TOKEN
from tests.e2e.server import KluisServer, admin_clients, join_node
from tests.pgserver import PostgresServer
from tests.softhsm import SoftHsm

pytestmark = pytest.mark.slow

SECRET = "root-of-trust-secret-value"
DIGEST = hashlib.sha256(b"signed under a data key").digest()


def _signer(server: KluisServer, keys: KeyClient, cred: ClientSecretCredential, name: str) -> CryptographyClient:
    return CryptographyClient(keys.get_key(name), cred, verify_challenge_resource=False, connection_verify=server.ca)


def _ready(server: KluisServer) -> dict[str, object]:
    r = httpx.get(f"{server.url}/readyz", verify=ssl.create_default_context(cafile=server.ca), timeout=10)
    answer: dict[str, object] = r.json()
    return answer


def test_a_pkcs11_kek_on_softhsm_serves_across_a_restart(softhsm: SoftHsm, tmp_path: Path) -> None:
    uri = softhsm.uri(SOFTHSM_TOKEN, "kek-e2e-serve")
    data = tmp_path / "data"
    made = json.loads(
        KluisServer(data).cli("kek", "init-pkcs11", uri, "-o", "json").stdout
    )  # the key is made on the token, never outside it
    # two workers: each forked worker re-initialises the PKCS#11 module before it unwraps its data keys
    server = KluisServer(data, extra_args=["--workers", "2", "--key-pool", "0", "--kek", uri]).start()
    try:
        assert not (data / "kek.key").exists()
        assert _ready(server) == {"status": "ok", "checks": {"database": "ok", "kek": "ok"}}
        keys, secrets, cred = admin_clients(server)
        key = keys.create_ec_key("hsm-rooted", curve="P-256")
        signature = _signer(server, keys, cred, "hsm-rooted").sign(SignatureAlgorithm.es256, DIGEST).signature
        secrets.set_secret("hsm-secret", SECRET)
    finally:
        server.stop()
    assert json.loads((data / "server.json").read_text())["kek"] == uri
    server.start()
    try:
        keys, secrets, cred = admin_clients(server)
        assert keys.get_key("hsm-rooted").key.x == key.key.x
        signer = _signer(server, keys, cred, "hsm-rooted")
        assert signer.verify(SignatureAlgorithm.es256, DIGEST, signature).is_valid
        assert signer.verify(SignatureAlgorithm.es256, DIGEST, signer.sign(SignatureAlgorithm.es256, DIGEST).signature)
        assert secrets.get_secret("hsm-secret").value == SECRET
    finally:
        server.stop()
    # without the token's PIN it refuses to start, in one line naming the token and the expected fingerprint
    refused = KluisServer(data, extra_args=["--workers", "1", "--key-pool", "0", "--kek", uri.replace(
        "pin-source=env:", "pin-source=env:NO_SUCH_")])  # fmt: skip
    with pytest.raises(RuntimeError, match="exited with 1"):
        refused.start()
    log = (tmp_path / f"kluis-{refused.port}.log").read_text()
    assert "NO_SUCH_KLUIS_TEST_PKCS11_PIN is not set" in log and made["fingerprint"] in log, log
    assert "Traceback" not in log


def test_rotating_the_kek_while_serving(softhsm: SoftHsm, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = KluisServer(data, extra_args=["--workers", "2", "--key-pool", "0", "--audit-flush-ms", "50"]).start()
    uri = softhsm.uri(SOFTHSM_TOKEN, "kek-e2e-rotate")
    try:
        keys, secrets, cred = admin_clients(server)
        key = keys.create_ec_key("rotated-kek", curve="P-256")
        secrets.set_secret("rotated-secret", SECRET)
        backup = keys.backup_key("rotated-kek")  # made before the rotation
        signer = _signer(server, keys, cred, "rotated-kek")
        failures: list[BaseException] = []
        calls = [0]
        stop = threading.Event()

        def load() -> None:  # SDK calls that must keep succeeding through the rotation
            while not stop.is_set():
                try:
                    assert keys.get_key("rotated-kek").key.x == key.key.x
                    assert secrets.get_secret("rotated-secret").value == SECRET
                    signer.sign(SignatureAlgorithm.es256, DIGEST)
                    calls[0] += 1
                except BaseException as e:
                    failures.append(e)
                    return

        worker = threading.Thread(target=load)
        worker.start()
        try:
            time.sleep(0.5)
            made = server.cli("kek", "init-pkcs11", uri, "-o", "json")
            before = calls[0]
            rotated = json.loads(server.cli("kek", "rotate", "--to", uri, "-o", "json").stdout)
            during = calls[0] - before
            time.sleep(1.0)
            after = calls[0] - before - during
        finally:
            stop.set()
            worker.join(30)
        assert not failures, failures
        assert during > 0 and after > 0, (during, after)
        assert rotated["to"] == json.loads(made.stdout)["fingerprint"] and rotated["dataKeys"] == 3
        assert _ready(server)["status"] == "ok"  # still serving on its unwrapped data keys
        keys.create_ec_key("made-after-rotation", curve="P-256")
    finally:
        server.stop()
    assert json.loads((data / "server.json").read_text())["kek"] == uri
    server.extra_args = ["--workers", "1", "--key-pool", "0", "--kek", uri]  # restart on the new KEK
    server.start()
    try:
        keys, secrets, cred = admin_clients(server)
        assert secrets.get_secret("rotated-secret").value == SECRET
        assert keys.get_key("made-after-rotation").key_type == "EC"
        keys.begin_delete_key("rotated-kek").wait()
        keys.purge_deleted_key("rotated-kek")
        restored = keys.restore_key_backup(backup)  # the backup key is a data key of its own: re-wrapped
        assert restored.key.x == key.key.x
        assert _signer(server, keys, cred, "rotated-kek").sign(SignatureAlgorithm.es256, DIGEST).signature
        time.sleep(0.3)  # the batched audit records of these calls are written
        verify = server.cli("audit", "verify", "-o", "json")
        assert json.loads(verify.stdout)["ok"] is True
    finally:
        server.stop()
    # the old key file no longer opens the database: a start with it names the new KEK's fingerprint
    old = KluisServer(data, extra_args=["--workers", "1", "--key-pool", "0", "--kek", ""])
    with pytest.raises(RuntimeError, match="exited with 1"):
        old.start()
    log = (tmp_path / f"kluis-{old.port}.log").read_text()
    assert f"expects {rotated['to']}" in log and "Traceback" not in log, log


def _ready_within(server: KluisServer, seconds: float) -> tuple[int, dict[str, object]]:
    """/readyz's status and body once it names a detail, or the last answer after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        r = httpx.get(f"{server.url}/readyz", verify=ssl.create_default_context(cafile=server.ca), timeout=10)
        if "details" in r.json() or time.monotonic() > deadline:
            return r.status_code, r.json()
        time.sleep(0.05)


def test_readyz_names_the_kek_after_a_rotation_to_an_env_source_while_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: after ``kluis kek rotate --to env:VAR`` the serving node's kek.key holds another key than
    the database's; /readyz stays 200 and names it under details.kek (both fingerprints, the next start),
    and the log warns once per interval, not per poll."""
    import base64
    import os

    data = tmp_path / "data"
    server = KluisServer(data, extra_args=["--workers", "1", "--key-pool", "0"]).start()
    try:
        assert _ready(server) == {"status": "ok", "checks": {"database": "ok", "kek": "ok"}}
        monkeypatch.setenv("KLUIS_TEST_E2E_KEK", base64.b64encode(os.urandom(32)).decode())
        rotated = json.loads(server.cli("kek", "rotate", "--to", "env:KLUIS_TEST_E2E_KEK", "-o", "json").stdout)
        status, body = _ready_within(server, 2.0)
        for _ in range(3):
            _ready(server)
    finally:
        server.stop()
    assert status == 200 and body["status"] == "ok" and body["checks"] == {"database": "ok", "kek": "ok"}, body
    detail = str(dict(body["details"])["kek"])  # type: ignore[call-overload]
    assert str(data / "kek.key") in detail and rotated["from"] in detail and rotated["to"] in detail, detail
    assert "next start needs the database's KEK" in detail
    log = (tmp_path / f"kluis-{server.port}.log").read_text()
    assert log.count("Readiness: ") == 1 and rotated["to"] in log, log


def test_readyz_on_a_second_node_names_the_kek_after_the_first_node_rotated(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """Two nodes on one PostgreSQL database; ``kluis kek rotate`` on node 1's data dir: node 2 keeps
    serving (/readyz 200) and names its kek.key, no longer the database's KEK, under details.kek."""
    url = postgres_server.new_database()
    args = ["--database", url, "--workers", "1", "--key-pool", "0", "--scheduler-interval", "3600"]
    (tmp_path / "n1").mkdir()
    first = KluisServer(tmp_path / "n1" / "data", extra_args=args).start()
    nodes = [first]
    try:
        second_dir = tmp_path / "n2" / "data"
        second = join_node(first, second_dir, args)
        nodes.append(second)
        assert _ready(second) == {"status": "ok", "checks": {"database": "ok", "kek": "ok"}}
        rotated = json.loads(first.cli("kek", "rotate", "-o", "json").stdout)
        status, body = _ready_within(second, 3.0)
        assert _ready(first) == {"status": "ok", "checks": {"database": "ok", "kek": "ok"}}  # kek.key is new
    finally:
        for node in nodes:
            node.stop()
    assert status == 200 and body["status"] == "ok" and body["checks"] == {"database": "ok", "kek": "ok"}, body
    detail = str(dict(body["details"])["kek"])  # type: ignore[call-overload]
    assert str(second_dir / "kek.key") in detail and rotated["from"] in detail and rotated["to"] in detail, detail

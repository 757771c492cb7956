"""The root key (``kek.key``) is never replaced silently, and the state files are private.

A kluis whose key-encryption key file is missing or wrong must refuse to start, name the file
and the fingerprint the database expects, exit non-zero, and leave no new ``kek.key`` behind.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.server import KluisServer, free_port

pytestmark = pytest.mark.slow


def _serve(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``kluis serve`` expected to stop by itself (it must refuse to start)."""
    return subprocess.run(
        [sys.executable, "-m", "kluis", "serve", "--data-dir", str(data_dir), "--port", str(free_port()),
         "--proxy-port", "0", "--workers", "1", "--key-pool", "0"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "KLUIS_DATA_DIR": str(data_dir), "COLUMNS": "400"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir that has served (so the database holds sealed data) and is stopped."""
    server = KluisServer(tmp_path_factory.mktemp("rootkey") / "data", extra_args=["--workers", "1"]).start()
    server.cli("group", "create", "-n", "rk")
    server.stop()
    return server.data_dir


def _fingerprint(text: str) -> str:
    found = re.findall(r"[0-9a-f]{4}(?::[0-9a-f]{4}){7}", text)
    assert found, text
    return found[0]


def test_state_files_are_private(stopped: Path) -> None:
    for name in ("kluis.db", "kluis.db-wal", "kluis.db-shm", "kek.key", "admin.json"):
        path = stopped / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert stat.S_IMODE(stopped.stat().st_mode) == 0o700


def test_missing_kek_is_refused_without_writing_a_new_one(stopped: Path, tmp_path: Path) -> None:
    kek = stopped / "kek.key"
    saved = tmp_path / "kek.saved"
    saved.write_bytes(kek.read_bytes())
    kek.unlink()
    try:
        res = _serve(stopped)
        out = res.stdout + res.stderr
        assert res.returncode != 0, out
        assert f"{kek} is missing" in out and "Traceback" not in out, out
        assert not kek.exists(), "a new kek.key was written for a database with sealed data"
        expected = _fingerprint(out)
    finally:
        kek.write_bytes(saved.read_bytes())
        os.chmod(kek, 0o600)
    # the fingerprint named is the one of the real key: a wrong key names it as expected
    kek.write_bytes(os.urandom(32))
    try:
        res = _serve(stopped)
        out = " ".join((res.stdout + res.stderr).split())
        assert res.returncode != 0 and "Traceback" not in out, out
        assert str(kek) in out and f"expects {expected}" in out and "is not the key of the database" in out, out
    finally:
        kek.write_bytes(saved.read_bytes())
    res = _serve_and_stop(stopped)
    assert res == 0


def test_truncated_kek_is_refused(stopped: Path, tmp_path: Path) -> None:
    kek = stopped / "kek.key"
    good = kek.read_bytes()
    kek.write_bytes(good[:10])
    try:
        res = _serve(stopped)
        out = " ".join((res.stdout + res.stderr).split())
        assert res.returncode != 0 and "holds 10 bytes" in out and "Traceback" not in out, out
    finally:
        kek.write_bytes(good)


def _serve_and_stop(data_dir: Path) -> int | None:
    """With the right key back in place the same data dir starts and serves again."""
    server = KluisServer(data_dir, extra_args=["--workers", "1"]).start()
    try:
        assert server.cli("group", "show", "-n", "rk").returncode == 0
    finally:
        code = server.stop()
    return code

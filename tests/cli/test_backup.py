"""``kluis backup`` / ``kluis restore``: a snapshot of a live store, and the refusals that protect a data dir."""

from __future__ import annotations

import fcntl
import json
import shutil
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from kluis.api.runtime import Runtime, kek_fingerprint
from kluis.cli.main import app
from kluis.config import DataDir, ServerSettings


def _cli(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def _source(tmp_path: Path) -> tuple[DataDir, Runtime]:
    data = DataDir(tmp_path / "src")
    rt = Runtime(data, ServerSettings(key_pool=0), bootstrap=True)
    rt.keys.create_key(rt.vault("default"), "k1", kty="EC", curve="P-256")
    return data, rt


def test_backup_of_an_open_store_restores_into_a_new_data_dir(tmp_path: Path) -> None:
    data, rt = _source(tmp_path)
    try:
        out = tmp_path / "snap.db"
        code, stdout, _ = _cli("backup", "--out", str(out), "--data-dir", str(data.path))
        assert code == 0
        info = json.loads(stdout)
        assert info["kekFingerprint"] == kek_fingerprint(data.kek.read_bytes()) and info["bytes"] > 0
        assert out.stat().st_mode & 0o777 == 0o600
        # sealed material stays sealed: the snapshot holds no private key in clear
        conn = sqlite3.connect(out)
        sealed = conn.execute("SELECT sealed FROM object_versions").fetchone()[0]
        conn.close()
        assert b'"d"' not in sealed
        code, _, err = _cli("backup", "--out", str(out), "--data-dir", str(data.path))
        assert code == 1 and "already exists" in err
    finally:
        rt.close()
    target = DataDir(tmp_path / "new")
    code, stdout, err = _cli("restore", str(out), "--data-dir", str(target.path))
    assert code == 0 and json.loads(stdout)["kekPresent"] is False
    assert "kek.key is missing" in err and info["kekFingerprint"] in err
    shutil.copy(data.kek, target.kek)
    restored = Runtime(target, ServerSettings(key_pool=0))
    try:
        assert restored.keys.get_key(restored.vault("default"), "k1", None).name == "k1"
        assert restored.tenant_id == rt.tenant_id
    finally:
        restored.close()


def test_restore_refuses_a_running_server_an_existing_database_and_another_kek(tmp_path: Path) -> None:
    data, rt = _source(tmp_path)
    rt.close()
    snap = tmp_path / "snap.db"
    assert _cli("backup", "--out", str(snap), "--data-dir", str(data.path))[0] == 0
    with open(data.serve_lock, "a+") as lock:  # what `kluis serve` holds while it runs
        fcntl.flock(lock, fcntl.LOCK_SH)
        code, _, err = _cli("restore", str(snap), "--data-dir", str(data.path), "--force")
        assert code == 1 and "kluis serve is running" in err
    code, _, err = _cli("restore", str(snap), "--data-dir", str(data.path))
    assert code == 1 and "pass --force" in err
    assert _cli("restore", str(snap), "--data-dir", str(data.path), "--force")[0] == 0
    other = DataDir(tmp_path / "other").ensure()
    other.kek.write_bytes(b"\x02" * 32)
    code, _, err = _cli("restore", str(snap), "--data-dir", str(other.path))
    assert code == 1 and "is not the key the snapshot was sealed with" in err
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 10)
    code, _, err = _cli("restore", str(junk), "--data-dir", str(tmp_path / "x"))
    assert code == 1 and "not a kluis database snapshot" in err

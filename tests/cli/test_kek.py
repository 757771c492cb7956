"""``kluis kek rotate`` / ``kluis kek init-pkcs11``: JSON answers, and one-line errors that change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from kluis.api.runtime import Runtime, kek_fingerprint
from kluis.cli.main import app
from kluis.config import DataDir, ServerSettings
from tests.conftest import SOFTHSM_TOKEN


def _cli(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def _data(tmp_path: Path) -> DataDir:
    data = DataDir(tmp_path / "d")
    Runtime(data, ServerSettings(key_pool=0), bootstrap=True).close()
    data.write_server(ServerSettings(key_pool=0))
    return data


def test_rotate_in_place_prints_both_fingerprints(tmp_path: Path) -> None:
    data = _data(tmp_path)
    old = data.kek.read_bytes()
    code, out, err = _cli("kek", "rotate", "--data-dir", str(data.path))
    assert code == 0, err
    answer = json.loads(out)
    assert answer["from"] == kek_fingerprint(old) and answer["to"] == kek_fingerprint(data.kek.read_bytes())
    assert answer["dataKeys"] == 3 and Path(answer["oldKeyBackup"]).read_bytes() == old
    assert answer["database"] == str(data.database)


def test_rotate_from_a_wrong_kek_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    data = _data(tmp_path)
    kek = data.kek.read_bytes()
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(b"\x05" * 32)
    code, out, err = _cli("kek", "rotate", "--from", f"file:{wrong}", "--data-dir", str(data.path))
    assert code == 1 and out == ""
    assert (
        err.startswith(f"ERROR: The key-encryption key file {wrong} is not the key of the database")
        and err.count("\n") == 1
    )
    assert f"expects {kek_fingerprint(kek)}" in err
    assert data.kek.read_bytes() == kek and sorted(p.name for p in data.path.glob("kek.key*")) == ["kek.key"]
    code, _, err = _cli("kek", "rotate", "--data-dir", str(tmp_path / "empty"))
    assert code == 1 and "No database at" in err


def test_init_pkcs11_makes_a_key_once(softhsm: Any) -> None:
    uri = softhsm.uri(SOFTHSM_TOKEN, "kek-cli")
    code, out, err = _cli("kek", "init-pkcs11", uri)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["source"] == uri and "kek-cli" in answer["kek"] and len(answer["fingerprint"]) == 39
    code, out, err = _cli("kek", "init-pkcs11", uri)
    assert code == 1 and "already has a key labelled 'kek-cli'" in err and err.count("\n") == 1


def test_rotate_refuses_an_unknown_scheme_and_a_second_rotation(tmp_path: Path, monkeypatch: Any) -> None:
    import fcntl

    data = _data(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = _cli("kek", "rotate", "--to", "garbage:xyz", "--data-dir", str(data.path))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "unknown scheme 'garbage': give file:PATH, env:VAR, pkcs11:... or a path" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with open(data.path / "kek.rotate.lock", "a+") as lock:  # another rotation holds the lock
        fcntl.flock(lock, fcntl.LOCK_EX)
        code, out, err = _cli("kek", "rotate", "--data-dir", str(data.path))
    assert code == 1 and "Another `kluis kek rotate` is running on" in err and err.count("\n") == 1
    assert sorted(p.name for p in data.path.glob("kek.key*")) == ["kek.key"]


def test_serve_refuses_an_unknown_kek_scheme(tmp_path: Path) -> None:
    code, _, err = _cli("serve", "--kek", "foo:bar", "--data-dir", str(tmp_path / "d"))
    assert code == 1 and "unknown scheme 'foo'" in err and not (tmp_path / "d").exists()


def test_restore_advice_names_the_kek_source_in_use() -> None:
    from kluis.cli.backup import missing_kek_advice

    env = missing_kek_advice("env:KLUIS_KEK", "ab:cd")
    assert "environment variable KLUIS_KEK" in env and "ab:cd" in env and "kek.key" not in env
    token = missing_kek_advice("pkcs11:token=t;object=k?module-path=/m.so", "ab:cd")
    assert "PKCS#11 token" in token and "kek.key" not in token
    assert missing_kek_advice("file:/d/kek.key", "ab:cd").startswith("/d/kek.key is missing: put the key-encryption")

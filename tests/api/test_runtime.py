"""The composition root: what a first start creates, and what every later Runtime on the same data dir shares."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from kluis.api.runtime import DEFAULT_GROUP, DEFAULT_VAULT, Runtime
from kluis.config import DataDir, ServerSettings, StartupError
from kluis.domain.authorization import KeyPermission
from kluis.domain.errors import NotFound
from kluis.identity.secrets import check_secret
from kluis.identity.tokens import Principal

SETTINGS = ServerSettings(key_pool=0)


@pytest.fixture
def data_dir(tmp_path: Path) -> DataDir:
    return DataDir(tmp_path / "d")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_bootstrap_creates_kek_tenant_admin_and_default_vault(data_dir: DataDir) -> None:
    rt = Runtime(data_dir, SETTINGS, bootstrap=True)
    try:
        assert _mode(data_dir.path) == 0o700 and _mode(data_dir.kek) == 0o600 and _mode(data_dir.admin) == 0o600
        assert len(data_dir.kek.read_bytes()) == 32
        creds = json.loads(data_dir.admin.read_text())
        assert creds["tenant"] == rt.tenant_id and creds["objectId"] == rt.admin_object_id()
        admin = rt.management.principal_by_app_id(creds["appId"])
        assert admin is not None and admin.is_admin and check_secret(creds["password"], admin.secret_hash)
        vault = rt.vault(DEFAULT_VAULT)
        assert vault.group_name == DEFAULT_GROUP
        policies = rt.management.list_policies(DEFAULT_VAULT)
        assert [p.object_id for p in policies] == [rt.admin_object_id()]
        assert set(policies[0].keys) == {perm.value for perm in KeyPermission}  # "all", expanded
    finally:
        rt.close()


def test_a_second_runtime_shares_tenant_keys_and_administrator(data_dir: DataDir) -> None:
    first = Runtime(data_dir, SETTINGS, bootstrap=True)
    second = Runtime(data_dir, SETTINGS)  # a worker: no bootstrap
    try:
        assert second.tenant_id == first.tenant_id and second.key_id == first.key_id
        assert second.admin_object_id() == first.admin_object_id()
        token = first.issuer.issue(Principal("o", "a", first.tenant_id), audience="https://vault.azure.net")[0]
        assert second.verifier.verify(token, audiences={"https://vault.azure.net"}).object_id == "o"
        key = first.keys.create_key(first.vault(DEFAULT_VAULT), "shared", kty="EC")
        assert second.keys.get_key(second.vault(DEFAULT_VAULT), "shared").jwk == key.jwk  # same KEK
    finally:
        second.close()
        first.close()


def test_bootstrapping_again_changes_nothing(data_dir: DataDir) -> None:
    Runtime(data_dir, SETTINGS, bootstrap=True).close()
    creds = data_dir.admin.read_text()
    again = Runtime(data_dir, SETTINGS, bootstrap=True)
    try:
        assert data_dir.admin.read_text() == creds
        assert [v.name for v in again.management.list_vaults()] == [DEFAULT_VAULT]
    finally:
        again.close()


def test_a_lost_credential_file_replaces_the_administrator_secret(data_dir: DataDir) -> None:
    Runtime(data_dir, SETTINGS, bootstrap=True).close()
    old = json.loads(data_dir.admin.read_text())
    data_dir.admin.unlink()
    rt = Runtime(data_dir, SETTINGS, bootstrap=True)
    try:
        new = json.loads(data_dir.admin.read_text())
        assert new["password"] != old["password"] and new["tenant"] == old["tenant"]
        assert rt.management.principal_by_app_id(old["appId"]) is None  # the old credential is gone
        assert rt.admin_object_id() == new["objectId"]
        assert rt.management.list_policies(DEFAULT_VAULT)[0].object_id == new["objectId"]
    finally:
        rt.close()


def test_without_bootstrap_an_empty_data_dir_is_an_error(data_dir: DataDir) -> None:
    data_dir.ensure()
    with pytest.raises(StartupError, match=r"No key-encryption key .*kluis serve"):
        Runtime(data_dir, SETTINGS)


def test_clock_offset_is_shared_through_the_database(data_dir: DataDir) -> None:
    first = Runtime(data_dir, SETTINGS, bootstrap=True)
    second = Runtime(data_dir, SETTINGS)
    try:
        assert second.clock.now() <= int(time.time()) + 1  # the current offset (0), read and cached
        first.set_clock_offset(1000)
        assert first.clock.now() >= int(time.time()) + 999  # this process sees it at once
        # and so does another process's runtime (another worker) on its next reading: no time-based cache
        assert second.clock.now() >= int(time.time()) + 999
        assert first.clock_offset() == 1000 and second.clock_offset() == 1000
        first.set_clock_offset(-50)
        assert second.clock.now() <= int(time.time()) - 49
    finally:
        second.close()
        first.close()


def test_unknown_vault_and_housekeeping(data_dir: DataDir) -> None:
    rt = Runtime(data_dir, SETTINGS, bootstrap=True)
    try:
        with pytest.raises(NotFound) as err:
            rt.vault("nosuch")
        assert err.value.code == "VaultNotFound"
        vault = rt.vault(DEFAULT_VAULT)
        rt.keys.create_key(vault, "k", kty="EC")
        rt.keys.lifecycle.delete(vault, "k")
        rt.set_clock_offset(91 * 86400)
        result = rt.housekeeping()
        assert (result.purged, result.acted, result.failed) == (1, 0, 0)
    finally:
        rt.close()


# -- a shared (PostgreSQL) database: nodes join what the first node made --------------------------


def _node(tmp_path: Path, name: str, url: str, *, kek_from: DataDir | None = None) -> tuple[DataDir, Runtime]:
    d = DataDir(tmp_path / name).ensure()
    if kek_from is not None:
        d.kek.write_bytes(kek_from.kek.read_bytes())
    return d, Runtime(d, ServerSettings(key_pool=0, database=url), bootstrap=True)


def test_a_second_node_joins_the_first_nodes_tenant_administrator_and_ca(tmp_path: Path, postgres_url: str) -> None:
    d1, first = _node(tmp_path, "n1", postgres_url)
    d2 = DataDir(tmp_path / "n2").ensure()
    try:
        with pytest.raises(StartupError, match=r"copy the first node's kek\.key"):
            Runtime(d2, ServerSettings(key_pool=0, database=postgres_url), bootstrap=True)
        d2.kek.write_bytes(d1.kek.read_bytes())
        second = Runtime(d2, ServerSettings(key_pool=0, database=postgres_url), bootstrap=True)
        try:
            assert second.tenant_id == first.tenant_id and second.key_id == first.key_id
            assert second.signing_key_der == first.signing_key_der  # tokens from either node verify on both
            assert json.loads(d2.admin.read_text()) == json.loads(d1.admin.read_text())  # one administrator
            assert len(first.management.list_vaults()) == 1  # one default vault, not one per node
            (d1.tls).mkdir()
            (d1.tls / "ca.pem").write_text("CA CERT 1")
            (d1.tls / "ca-key.pem").write_text("CA KEY 1")
            assert first.share_ca(d1.tls) is False  # published: the database now keeps node 1's CA
            (d2.tls).mkdir()
            (d2.tls / "ca.pem").write_text("a CA node 2 made on its own")
            (d2.tls / "ca-key.pem").write_text("its key")
            assert second.share_ca(d2.tls) is True  # replaced by the cluster's CA
            assert (d2.tls / "ca.pem").read_text() == "CA CERT 1" and (d2.tls / "ca-key.pem").read_text() == "CA KEY 1"
            assert _mode(d2.tls / "ca-key.pem") == 0o600 and second.share_ca(d2.tls) is False
        finally:
            second.close()
    finally:
        first.close()


def test_a_node_with_another_kek_is_refused(tmp_path: Path, postgres_url: str) -> None:
    _, first = _node(tmp_path, "n1", postgres_url)
    first.close()
    d2 = DataDir(tmp_path / "n2").ensure()
    d2.kek.write_bytes(b"\x07" * 32)
    with pytest.raises(StartupError, match="not the key of the database"):
        Runtime(d2, ServerSettings(key_pool=0, database=postgres_url), bootstrap=True)


def test_one_scheduler_tick_at_a_time_across_nodes(tmp_path: Path, postgres_url: str) -> None:
    d1, first = _node(tmp_path, "n1", postgres_url)
    _, second = _node(tmp_path, "n2", postgres_url, kek_from=d1)
    try:
        vault = first.vault(DEFAULT_VAULT)
        view = first.keys.create_key(vault, "rotating", kty="EC", curve="P-256")
        first.keys.lifecycle.reschedule(vault.vault_id, "rotating", 1)  # due now
        with first.store.exclusive("scheduler") as held:  # node 1 is in the middle of a tick...
            assert held and second.housekeeping().acted == 0  # ...so node 2 skips its own
        assert second.housekeeping().acted == 1 and first.housekeeping().acted == 0  # rotated once
        versions = first.keys.lifecycle.list_versions(vault, "rotating", maxresults=None, token=None).items
        assert len(versions) == 2 and versions[0].version == view.version
    finally:
        first.close()
        second.close()


# -- the key-encryption key: sources and rotation --------------------------------------------------


def _key_and_backup(rt: Runtime) -> tuple[dict[str, object], bytes]:
    vault = rt.vault(DEFAULT_VAULT)
    key = rt.keys.create_key(vault, "rooted", kty="EC", curve="P-256")
    return key.jwk, rt.key_backup.backup(vault, "rooted")


def test_an_env_kek_is_used_and_its_absence_named(data_dir: DataDir, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import os

    monkeypatch.setenv("KLUIS_TEST_RT_KEK", base64.b64encode(os.urandom(32)).decode())
    settings = ServerSettings(key_pool=0, kek="env:KLUIS_TEST_RT_KEK")
    rt = Runtime(data_dir, settings, bootstrap=True)
    try:
        jwk, _ = _key_and_backup(rt)
        fingerprint = rt.kek.fingerprint
    finally:
        rt.close()
    assert not data_dir.kek.exists()  # the key lives in the variable only
    again = Runtime(data_dir, settings)
    try:
        assert again.keys.get_key(again.vault(DEFAULT_VAULT), "rooted").jwk == jwk
    finally:
        again.close()
    monkeypatch.delenv("KLUIS_TEST_RT_KEK")
    with pytest.raises(StartupError) as err:
        Runtime(data_dir, settings, bootstrap=True)
    assert "KLUIS_TEST_RT_KEK is not set" in str(err.value) and f"fingerprint {fingerprint}" in str(err.value)
    assert not data_dir.kek.exists()  # no key file made up instead


def test_a_pkcs11_kek_serves_and_a_wrong_pin_is_one_line(data_dir: DataDir, softhsm: Any) -> None:
    from kluis.api.runtime import init_pkcs11_kek
    from tests.conftest import SOFTHSM_TOKEN

    uri = softhsm.uri(SOFTHSM_TOKEN, "kek-runtime")
    made = init_pkcs11_kek(uri)
    settings = ServerSettings(key_pool=0, kek=uri)
    rt = Runtime(data_dir, settings, bootstrap=True)
    try:
        jwk, _ = _key_and_backup(rt)
        assert rt.kek.fingerprint == made["fingerprint"] and rt.readiness() == {"database": "ok", "kek": "ok"}
    finally:
        rt.close()
    assert not data_dir.kek.exists()
    again = Runtime(data_dir, settings)
    try:
        assert again.keys.get_key(again.vault(DEFAULT_VAULT), "rooted").jwk == jwk
    finally:
        again.close()
    wrong_pin = ServerSettings(key_pool=0, kek=softhsm.uri(SOFTHSM_TOKEN, "kek-runtime", pin_env="KLUIS_NO_SUCH_PIN"))
    with pytest.raises(StartupError, match=f"KLUIS_NO_SUCH_PIN is not set.*expects .*{made['fingerprint']}"):
        Runtime(data_dir, wrong_pin)


def test_rotating_the_key_file_in_place_keeps_everything(data_dir: DataDir) -> None:
    from kluis.api.runtime import kek_fingerprint, rotate_database_kek

    rt = Runtime(data_dir, SETTINGS, bootstrap=True)
    data_dir.write_server(SETTINGS)
    try:
        jwk, blob = _key_and_backup(rt)
        old_key = data_dir.kek.read_bytes()
        result = rotate_database_kek(data_dir, None)
        assert result["from"] == kek_fingerprint(old_key) and result["dataKeys"] == 3
        new_key = data_dir.kek.read_bytes()
        assert new_key != old_key and result["to"] == kek_fingerprint(new_key) and _mode(data_dir.kek) == 0o600
        backup = Path(str(result["oldKeyBackup"]))
        assert backup.parent == data_dir.path and backup.name.startswith("kek.key.") and backup.name.endswith(".bak")
        assert backup.read_bytes() == old_key and _mode(backup) == 0o600
        assert not Path(str(data_dir.kek) + ".new").exists()
        # the running runtime keeps serving on its unwrapped keys, and is still ready
        vault = rt.vault(DEFAULT_VAULT)
        assert rt.keys.get_key(vault, "rooted").jwk == jwk and rt.readiness()["kek"] == "ok"
    finally:
        rt.close()
    after = Runtime(data_dir, SETTINGS)  # a start after the rotation: the new key file
    try:
        vault = after.vault(DEFAULT_VAULT)
        after.keys.lifecycle.delete(vault, "rooted")
        after.keys.lifecycle.purge(vault, "rooted")
        assert after.key_backup.restore(vault, blob).jwk == jwk  # a backup from before the rotation
    finally:
        after.close()
    data_dir.kek.write_bytes(backup.read_bytes())  # the old key no longer opens the database
    with pytest.raises(StartupError, match="is not the key of the database"):
        Runtime(data_dir, SETTINGS)


def test_rotating_to_another_source_updates_server_json(data_dir: DataDir, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import os

    from kluis.api.runtime import rotate_database_kek

    rt = Runtime(data_dir, SETTINGS, bootstrap=True)
    data_dir.write_server(SETTINGS)
    try:
        jwk, _ = _key_and_backup(rt)
    finally:
        rt.close()
    monkeypatch.delenv("KLUIS_TEST_NEW_KEK", raising=False)
    with pytest.raises(StartupError, match=r"The new key-encryption key: .*KLUIS_TEST_NEW_KEK is not set"):
        rotate_database_kek(data_dir, "env:KLUIS_TEST_NEW_KEK")
    copy = data_dir.path / "copy-of-kek.key"
    copy.write_bytes(data_dir.kek.read_bytes())
    with pytest.raises(StartupError, match="is the database's key-encryption key already"):
        rotate_database_kek(data_dir, f"file:{copy}")
    monkeypatch.setenv("KLUIS_TEST_NEW_KEK", base64.b64encode(os.urandom(32)).decode())
    result = rotate_database_kek(data_dir, "env:KLUIS_TEST_NEW_KEK")
    assert result["source"] == "env:KLUIS_TEST_NEW_KEK" and result["oldKeyBackup"] is None
    saved = data_dir.read_server()
    assert saved is not None and saved.kek == "env:KLUIS_TEST_NEW_KEK"
    with pytest.raises(StartupError, match="is not the key of the database"):
        Runtime(data_dir, SETTINGS)  # the key file is the old KEK now
    after = Runtime(data_dir, saved)
    try:
        assert after.keys.get_key(after.vault(DEFAULT_VAULT), "rooted").jwk == jwk
    finally:
        after.close()


def test_readiness_names_a_kek_source_that_is_not_the_databases(data_dir: DataDir) -> None:
    rt = Runtime(data_dir, SETTINGS, bootstrap=True)
    try:
        assert rt.readiness() == {"database": "ok", "kek": "ok"}
        data_dir.kek.unlink()
        assert rt.readiness()["kek"].startswith("unusable: Cannot read the key-encryption key file")
    finally:
        rt.close()


def test_rotating_to_a_new_key_file_creates_it_private(data_dir: DataDir, tmp_path: Path) -> None:
    from kluis.api.runtime import kek_fingerprint, rotate_database_kek

    Runtime(data_dir, SETTINGS, bootstrap=True).close()
    data_dir.write_server(SETTINGS)
    target = tmp_path / "elsewhere" / "new.key"
    target.parent.mkdir()
    result = rotate_database_kek(data_dir, f"file:{target}")
    assert _mode(target) == 0o600 and result["to"] == kek_fingerprint(target.read_bytes())
    saved = data_dir.read_server()
    assert saved is not None and saved.kek == f"file:{target}"
    Runtime(data_dir, saved).close()  # the next start opens the database with the new file


def test_rotating_the_kek_of_a_shared_postgresql_database(tmp_path: Path, postgres_url: str) -> None:
    from kluis.api.runtime import kek_fingerprint, rotate_database_kek

    d1, first = _node(tmp_path, "n1", postgres_url)
    try:
        jwk, blob = _key_and_backup(first)
        result = rotate_database_kek(d1, None, database=postgres_url)
        assert result["to"] == kek_fingerprint(d1.kek.read_bytes()) and result["database"] == postgres_url
        assert first.keys.get_key(first.vault(DEFAULT_VAULT), "rooted").jwk == jwk  # still serving
    finally:
        first.close()
    stale = DataDir(tmp_path / "n2").ensure()
    stale.kek.write_bytes(Path(str(result["oldKeyBackup"])).read_bytes())  # a node still on the old KEK
    with pytest.raises(StartupError, match=f"expects {result['to']}"):
        Runtime(stale, ServerSettings(key_pool=0, database=postgres_url))
    _, second = _node(tmp_path, "n3", postgres_url, kek_from=d1)
    try:
        vault = second.vault(DEFAULT_VAULT)
        assert second.keys.get_key(vault, "rooted").jwk == jwk
        second.keys.lifecycle.delete(vault, "rooted")
        second.keys.lifecycle.purge(vault, "rooted")
        assert second.key_backup.restore(vault, blob).jwk == jwk
    finally:
        second.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_no_secret_value_private_key_data_key_or_kek_is_in_the_database_files(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Scan every file of the database (SQLite: the db, its WAL and shm; PostgreSQL: the whole cluster
    directory after a CHECKPOINT) for what must never be at rest in the clear."""
    import uuid

    url, root = "", tmp_path / "d"
    if backend == "postgresql":
        server = request.getfixturevalue("postgres_server")
        url, root = server.new_database(), server.data
    data = DataDir(tmp_path / "d")
    rt = Runtime(data, ServerSettings(key_pool=0, database=url), bootstrap=True)
    try:
        vault = rt.vault(DEFAULT_VAULT)
        marker = f"secret-value-{uuid.uuid4().hex}"
        rt.secrets.set_secret(vault, "scanned-secret", marker)
        forbidden = {"secret value": marker.encode()}
        for name, kty in (("scanned-oct", "oct-HSM"), ("scanned-ec", "EC")):
            view = rt.keys.create_key(vault, name, kty=kty)
            with rt.store.read() as tx:
                record = tx.get_version(vault.vault_id, "key", name, view.version)
            assert record is not None
            forbidden[f"{kty} private key"] = rt.keys.lifecycle.unseal(record)
        with rt.store.read() as tx:
            wrapped = tx.list_wrapped_keys()
        for row, key in zip(wrapped, rt.kek.unwrap([r.wrapped for r in wrapped]), strict=True):
            forbidden[f"data key {row.key_id} ({row.purpose})"] = key
        forbidden["KEK"] = data.kek.read_bytes()
    finally:
        rt.close()
    if backend == "postgresql":
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        files = [p for p in root.rglob("*") if p.is_file()]
    else:
        files = [p for p in root.iterdir() if p.name.startswith("kluis.db")]
    blobs = [p.read_bytes() for p in files]
    assert any(b"scanned-secret" in b for b in blobs), "the scan does not see what is stored in the clear"
    found = [
        (what, str(p)) for what, value in forbidden.items() for p, b in zip(files, blobs, strict=True) if value in b
    ]
    assert not found, found


def test_restore_checks_the_kek_source_the_data_dir_uses(
    data_dir: DataDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import os

    from kluis.api.runtime import backup_database, restore_database

    key = os.urandom(32)
    monkeypatch.setenv("KLUIS_TEST_RESTORE_KEK", base64.b64encode(key).decode())
    settings = ServerSettings(key_pool=0, kek="env:KLUIS_TEST_RESTORE_KEK")
    Runtime(data_dir, settings, bootstrap=True).close()
    snapshot = tmp_path / "snap.db"
    backup_database(data_dir, snapshot)
    target = DataDir(tmp_path / "target").ensure()
    target.write_server(settings)
    assert restore_database(target, snapshot)["kekPresent"] is True  # the variable holds the snapshot's KEK
    Runtime(target, settings).close()
    monkeypatch.setenv("KLUIS_TEST_RESTORE_KEK", base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(
        RuntimeError, match=r"environment variable KLUIS_TEST_RESTORE_KEK .* is not the key the snapshot"
    ):
        restore_database(target, snapshot, force=True)
    monkeypatch.delenv("KLUIS_TEST_RESTORE_KEK")
    with pytest.raises(RuntimeError, match=r"KLUIS_TEST_RESTORE_KEK is not set .*the snapshot needs"):
        restore_database(target, snapshot, force=True)


# -- rotation safety: no way to lose the only copy of the database's KEK ------------------------------


def _started(data_dir: DataDir) -> bytes:
    """A bootstrapped data dir with server.json (default kek.key); the KEK's bytes."""
    Runtime(data_dir, SETTINGS, bootstrap=True).close()
    data_dir.write_server(SETTINGS)
    return data_dir.kek.read_bytes()


def _opens(data_dir: DataDir) -> None:
    saved = data_dir.read_server()
    Runtime(data_dir, saved if saved is not None else SETTINGS).close()


def test_a_second_rotation_while_one_runs_is_refused_and_the_first_ones_key_survives(
    data_dir: DataDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import kluis.api.runtime as runtime_module
    from kluis.api.runtime import kek_fingerprint, rotate_database_kek

    _started(data_dir)
    inside, release = threading.Event(), threading.Event()
    real = runtime_module.rotate_kek

    def slow(*args: Any, **kwargs: Any) -> Any:  # the first rotation pauses with its new key staged
        inside.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime_module, "rotate_kek", slow)
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(rotate_database_kek(data_dir, None)))
    first.start()
    try:
        assert inside.wait(30)
        staged_before = sorted(p.name for p in data_dir.path.glob("kek.key*"))
        with pytest.raises(StartupError, match="Another `kluis kek rotate` is running"):
            rotate_database_kek(data_dir, None)
        assert sorted(p.name for p in data_dir.path.glob("kek.key*")) == staged_before  # wrote nothing
    finally:
        release.set()
        first.join(30)
    assert results and results[0]["to"] == kek_fingerprint(data_dir.kek.read_bytes())
    _opens(data_dir)


def test_a_start_during_a_rotation_waits_for_it_and_opens_the_new_key(
    data_dir: DataDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start reads the database's fingerprint and the key file under the rotate lock, so it never
    compares a fingerprint from before a rotation's commit with a key file from after it."""
    import threading

    import kluis.api.runtime as runtime_module
    from kluis.api.runtime import rotate_database_kek

    _started(data_dir)
    inside, release = threading.Event(), threading.Event()
    real = runtime_module.rotate_kek

    def slow(*args: Any, **kwargs: Any) -> Any:
        inside.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime_module, "rotate_kek", slow)
    rotation = threading.Thread(target=lambda: rotate_database_kek(data_dir, None))
    rotation.start()
    opened: list[str] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            rt = Runtime(data_dir, SETTINGS, bootstrap=True)  # kluis serve's start
            opened.append(rt.kek.fingerprint)
            rt.close()
        except BaseException as e:  # surfaced below
            errors.append(e)

    try:
        assert inside.wait(30)
        starting = threading.Thread(target=start)
        starting.start()
        starting.join(1.0)
        assert starting.is_alive() and not opened  # waits for the rotation instead of racing it
    finally:
        release.set()
        rotation.join(30)
    starting.join(30)
    assert not errors and opened == [kek_fp(data_dir.kek)]  # the key the rotation committed


def test_the_staged_key_name_is_unique_to_the_attempt(data_dir: DataDir) -> None:
    from kluis.api.runtime import rotate_database_kek

    _started(data_dir)
    stray = data_dir.path / "kek.key.new"
    stray.write_bytes(b"\x07" * 32)  # not ours: a rotation must neither overwrite nor use it
    result = rotate_database_kek(data_dir, None)
    assert stray.read_bytes() == b"\x07" * 32 and result["to"] != kek_fp(stray)
    _opens(data_dir)


def kek_fp(path: Path) -> str:
    from kluis.api.runtime import kek_fingerprint

    return kek_fingerprint(path.read_bytes())


def _interrupt_after_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C between the commit and the staged key's move into place (os.replace of a ``.new`` file)."""
    import os

    real = os.replace

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        if str(src).endswith(".new"):
            raise KeyboardInterrupt
        real(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_a_rotation_interrupted_after_its_commit_keeps_the_new_key_and_the_next_start_rolls_it_forward(
    data_dir: DataDir, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from kluis.api.runtime import rotate_database_kek

    old = _started(data_dir)
    with monkeypatch.context() as m:
        _interrupt_after_commit(m)
        with pytest.raises(KeyboardInterrupt):
            rotate_database_kek(data_dir, None)
    (staged,) = data_dir.path.glob("kek.key.*.new")  # the only copy of the key the database expects: kept
    new = staged.read_bytes()
    assert data_dir.kek.read_bytes() == old
    caplog.set_level("WARNING", logger="kluis.kek")
    rt = Runtime(data_dir, SETTINGS, bootstrap=True)  # kluis serve's start
    rt.close()
    assert data_dir.kek.read_bytes() == new and not list(data_dir.path.glob("kek.key.*.new"))
    assert [b.read_bytes() for b in data_dir.path.glob("kek.key.*.bak")] == [old, old]  # rotation's and roll-forward's
    assert sum("Rolled an interrupted `kluis kek rotate` forward" in r.message for r in caplog.records) == 1


def test_a_rotation_after_a_killed_one_rolls_it_forward_instead_of_deleting_its_key(
    data_dir: DataDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kluis.api.runtime import kek_fingerprint, rotate_database_kek

    _started(data_dir)
    with monkeypatch.context() as m:
        _interrupt_after_commit(m)
        with pytest.raises(KeyboardInterrupt):
            rotate_database_kek(data_dir, None)
    (staged,) = data_dir.path.glob("kek.key.*.new")
    staged.rename(data_dir.path / "kek.key.new")  # the name an older kluis staged under
    result = rotate_database_kek(data_dir, None)
    assert result["to"] == kek_fingerprint(data_dir.kek.read_bytes())
    _opens(data_dir)


def test_a_start_with_no_matching_key_lists_the_key_files_found(data_dir: DataDir) -> None:
    from kluis.api.runtime import kek_fingerprint, rotate_database_kek

    old = _started(data_dir)
    result = rotate_database_kek(data_dir, None)
    data_dir.kek.write_bytes(b"\x02" * 32)  # the current key, lost
    with pytest.raises(StartupError) as caught:
        Runtime(data_dir, SETTINGS, bootstrap=True)
    message = str(caught.value)
    assert f"expects {result['to']}" in message and "\n" not in message
    assert f"Key files found: {result['oldKeyBackup']} ({kek_fingerprint(old)})" in message


def test_a_start_error_names_at_most_five_key_files_newest_first(data_dir: DataDir) -> None:
    import os

    _started(data_dir)
    for i in range(8):  # old backups pile up over years of rotations
        bak = data_dir.path / f"kek.key.2026010{i}T000000Z.bak"
        bak.write_bytes(bytes([i + 1]) * 32)
        os.utime(bak, (1_700_000_000 + i, 1_700_000_000 + i))
    data_dir.kek.write_bytes(b"\x0f" * 32)
    with pytest.raises(StartupError) as caught:
        Runtime(data_dir, SETTINGS, bootstrap=True)
    message = str(caught.value)
    assert message.count(".bak (") == 5 and message.endswith(" and 3 older.")
    assert "kek.key.20260107T000000Z.bak" in message and "kek.key.20260100T000000Z.bak" not in message


def test_an_unknown_scheme_is_an_error_not_a_relative_file(
    data_dir: DataDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kluis.api.runtime import kek_source_of, rotate_database_kek

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(StartupError, match=r"unknown scheme 'foo': give file:PATH, env:VAR, pkcs11:\.\.\. or a path"):
        Runtime(data_dir, ServerSettings(key_pool=0, kek="foo:bar"), bootstrap=True)
    _started(data_dir)
    with pytest.raises(StartupError, match="unknown scheme 'garbage'"):
        rotate_database_kek(data_dir, "garbage:xyz")
    assert list(cwd.iterdir()) == [] and sorted(p.name for p in data_dir.path.glob("kek.key*")) == ["kek.key"]
    rotate_database_kek(data_dir, "rel.key")  # a relative path: stored absolute
    saved = data_dir.read_server()
    assert saved is not None and saved.kek == f"file:{cwd / 'rel.key'}"
    assert kek_source_of("file:x.key", data_dir) == f"file:{cwd / 'x.key'}" and kek_source_of("", data_dir) == ""
    monkeypatch.chdir(tmp_path)
    _opens(data_dir)


def test_plain_rotate_after_moving_to_env_makes_a_fresh_key_and_sets_the_retired_file_aside(
    data_dir: DataDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import os

    from kluis.api.runtime import kek_fingerprint, rotate_database_kek

    retired = _started(data_dir)
    monkeypatch.setenv("KLUIS_TEST_ROTATE_KEK", base64.b64encode(os.urandom(32)).decode())
    rotate_database_kek(data_dir, "env:KLUIS_TEST_ROTATE_KEK")
    result = rotate_database_kek(data_dir, None)  # README: a new random kek.key
    assert result["to"] != kek_fingerprint(retired) and result["to"] == kek_fingerprint(data_dir.kek.read_bytes())
    assert Path(result["retiredKeyFile"]).read_bytes() == retired
    saved = data_dir.read_server()
    assert saved is not None and saved.kek == ""
    _opens(data_dir)


def test_readiness_stays_ready_after_rotations_with_a_detail_for_the_next_start(data_dir: DataDir) -> None:
    import base64
    import os

    from kluis.api.runtime import rotate_database_kek

    _started(data_dir)
    rt = Runtime(data_dir, SETTINGS)
    try:
        rotate_database_kek(data_dir, None)  # in place: kek.key holds the database's new KEK
        assert rt.readiness_report() == ({"database": "ok", "kek": "ok"}, {})
        os.environ["KLUIS_TEST_READY_KEK"] = base64.b64encode(os.urandom(32)).decode()
        try:
            rotate_database_kek(data_dir, "env:KLUIS_TEST_READY_KEK")  # kek.key is retired now
            checks, details = rt.readiness_report()
        finally:
            del os.environ["KLUIS_TEST_READY_KEK"]
        assert checks == {"database": "ok", "kek": "ok"}
        assert "is not the database's key-encryption key" in details["kek"] and "next start" in details["kek"]
    finally:
        rt.close()


def test_readiness_names_the_kek_after_one_rotation_to_an_env_source(
    data_dir: DataDir, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """README's example: a fresh node, then ``kluis kek rotate --to env:VAR``; the node's kek.key still
    holds the KEK it started with, which is no longer the database's: /readyz stays ready and says so."""
    import base64
    import logging
    import os

    from kluis.api.runtime import kek_fingerprint, rotate_database_kek

    started = _started(data_dir)
    rt = Runtime(data_dir, SETTINGS)
    try:
        assert rt.readiness_report() == ({"database": "ok", "kek": "ok"}, {})
        monkeypatch.setenv("KLUIS_TEST_READY_KEK", base64.b64encode(os.urandom(32)).decode())
        result = rotate_database_kek(data_dir, "env:KLUIS_TEST_READY_KEK")
        with caplog.at_level(logging.WARNING, logger="kluis"):
            checks, details = rt.readiness_report()
            again = rt.readiness_report()
        assert checks == {"database": "ok", "kek": "ok"} and again == (checks, details)
        detail = details["kek"]
        assert str(data_dir.kek) in detail and kek_fingerprint(started) in detail and result["to"] in detail
        assert "next start needs the database's KEK" in detail
        warned = [r for r in caplog.records if r.levelno == logging.WARNING and "Readiness" in r.getMessage()]
        assert len(warned) == 1  # once per interval, not per call
    finally:
        rt.close()


def test_readiness_has_no_detail_while_a_rotation_has_staged_the_new_key_file(data_dir: DataDir) -> None:
    """Between a rotation's commit and moving its staged key file into place the next start rolls
    forward, so the node's key file is not reported."""
    from kluis.api.runtime import rotate_database_kek

    _started(data_dir)
    rt = Runtime(data_dir, SETTINGS)
    try:
        rotate_database_kek(data_dir, None)
        new = data_dir.kek.read_bytes()
        backup = sorted(data_dir.path.glob("kek.key.*.bak"))[-1]
        (data_dir.path / "kek.key.0123456789ab.new").write_bytes(new)  # as if the move had not happened yet
        data_dir.kek.write_bytes(backup.read_bytes())
        assert rt.readiness_report() == ({"database": "ok", "kek": "ok"}, {})
    finally:
        rt.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_readiness_on_a_node_sharing_a_database_another_node_rotated(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Two nodes on one database; ``kluis kek rotate`` of node 1's data dir: node 2's kek.key still
    holds the KEK node 2 started with, no longer the database's; node 2's /readyz names it."""
    from kluis.api.runtime import kek_fingerprint, rotate_database_kek

    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else str(tmp_path / "shared.db")
    d1, first = _node(tmp_path, "n1", url)
    d2, second = _node(tmp_path, "n2", url, kek_from=d1)
    try:
        old = kek_fingerprint(d2.kek.read_bytes())
        assert second.readiness_report() == ({"database": "ok", "kek": "ok"}, {})
        result = rotate_database_kek(d1, None, database=url)
        assert first.readiness_report() == ({"database": "ok", "kek": "ok"}, {})  # its kek.key is the new KEK
        deadline = time.monotonic() + 2.0  # PostgreSQL: the cached settings follow the notification
        while True:
            checks, details = second.readiness_report()
            if details or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert checks == {"database": "ok", "kek": "ok"}
        assert str(d2.kek) in details["kek"] and old in details["kek"] and result["to"] in details["kek"]
        with pytest.raises(StartupError, match=f"expects {result['to']}"):
            Runtime(d2, ServerSettings(key_pool=0, database=url))  # what the detail warns of
    finally:
        second.close()
        first.close()


def test_two_rotations_in_one_second_keep_both_old_keys(data_dir: DataDir, monkeypatch: pytest.MonkeyPatch) -> None:
    from kluis.api.runtime import rotate_database_kek

    first = _started(data_dir)
    frozen = time.gmtime()
    monkeypatch.setattr(time, "gmtime", lambda *_: frozen)
    one = rotate_database_kek(data_dir, None)
    second = data_dir.kek.read_bytes()
    two = rotate_database_kek(data_dir, None)
    assert one["oldKeyBackup"] != two["oldKeyBackup"]
    assert Path(one["oldKeyBackup"]).read_bytes() == first and Path(two["oldKeyBackup"]).read_bytes() == second


def test_a_key_file_in_a_missing_directory_is_one_clear_line(data_dir: DataDir, tmp_path: Path) -> None:
    from kluis.api.runtime import rotate_database_kek

    nowhere = tmp_path / "no-such-dir" / "k.key"
    with pytest.raises(StartupError) as caught:
        Runtime(data_dir, ServerSettings(key_pool=0, kek=f"file:{nowhere}"), bootstrap=True)
    assert str(caught.value) == (
        f"Cannot create the key-encryption key file {nowhere}: the directory {nowhere.parent} does not exist."
    )
    _started(data_dir)
    with pytest.raises(StartupError, match=r"^The new key-encryption key: Cannot create .* does not exist\.$"):
        rotate_database_kek(data_dir, f"file:{nowhere}")
    _opens(data_dir)

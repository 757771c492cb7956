"""The composition root: what a first start creates, and what every later Runtime on the same data dir shares."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

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
        second.clock.now()  # cache the current offset (0)
        first.set_clock_offset(1000)
        assert first.clock_offset() == 1000 and second.clock_offset() == 1000
        assert first.clock.now() >= int(time.time()) + 999  # this process sees it at once
        second.clock.invalidate()
        assert second.clock.now() >= int(time.time()) + 999
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

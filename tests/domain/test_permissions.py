from __future__ import annotations

import pytest

from kluis.domain.errors import BadParameter, Forbidden
from kluis.domain.permissions import KEY_PERMISSIONS, Caller, normalise, require
from kluis.store import PolicyRecord, VaultRecord

VAULT = VaultRecord("vid", "myvault", "rg", "local", 90, False, 0)
CALLER = Caller("oid-1", "app-1", "tenant-1")


def test_normalise_is_case_insensitive_and_expands_all() -> None:
    assert normalise("keys", ["GET", "wrapkey", "get"]) == ["get", "wrapKey"]
    assert normalise("keys", ["all"]) == list(KEY_PERMISSIONS)
    with pytest.raises(BadParameter):
        normalise("keys", ["teleport"])
    with pytest.raises(BadParameter):
        normalise("secrets", ["sign"])


def test_require_fails_closed_and_names_the_permission() -> None:
    require(PolicyRecord("vid", "oid-1", ["get"]), VAULT, CALLER, "keys", "get")
    with pytest.raises(Forbidden) as err:
        require(PolicyRecord("vid", "oid-1", ["get"]), VAULT, CALLER, "keys", "create")
    assert "does not have keys create permission on key vault 'myvault;location=local'" in err.value.message
    assert "appid=app-1;oid=oid-1" in err.value.message and err.value.inner_code == "AccessDenied"
    with pytest.raises(Forbidden):
        require(None, VAULT, CALLER, "keys", "get")

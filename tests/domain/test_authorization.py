from __future__ import annotations

import pytest

from kluis.domain.authorization import (
    AccessPolicyAuthorizer,
    Caller,
    KeyPermission,
    SecretPermission,
    VaultAccess,
    normalise,
)
from kluis.domain.errors import BadParameter, Forbidden
from tests.domain.conftest import World

CALLER = Caller("reader", "reader-app", "t")


def test_normalise_is_case_insensitive_and_expands_all() -> None:
    assert normalise("keys", ["GET", "wrapkey", "get"]) == ["get", "wrapKey"]
    assert normalise("keys", ["all"]) == [p.value for p in KeyPermission]
    assert normalise("secrets", ["all"]) == [p.value for p in SecretPermission]
    with pytest.raises(BadParameter):
        normalise("keys", ["teleport"])
    with pytest.raises(BadParameter):
        normalise("secrets", ["sign"])
    for blank in ("", " "):  # was dropped, so {"keys": [""]} granted nothing without a word (tester)
        with pytest.raises(BadParameter, match="Invalid keys permission"):
            normalise("keys", ["get", blank])


def test_access_policies_fail_closed_and_name_the_permission(world: World) -> None:
    authorizer = AccessPolicyAuthorizer(world.store)
    world.principal("reader", "get", "list")
    authorizer.authorize(world.vault, CALLER, KeyPermission.GET)
    with pytest.raises(Forbidden) as err:
        authorizer.authorize(world.vault, CALLER, KeyPermission.CREATE)
    assert "does not have keys create permission on key vault 'vault1;location=local'" in err.value.message
    assert "appid=reader-app;oid=reader" in err.value.message and err.value.inner_code == "AccessDenied"
    with pytest.raises(Forbidden, match="secrets get permission"):  # key permissions grant nothing on secrets
        authorizer.authorize(world.vault, CALLER, SecretPermission.GET)
    nobody = Caller("nobody", "nobody-app", "t")
    world.principal("nobody")
    with pytest.raises(Forbidden):
        authorizer.authorize(world.vault, nobody, KeyPermission.GET)


def test_vault_access_needs_some_policy(world: World) -> None:
    authorizer = AccessPolicyAuthorizer(world.store)
    world.principal("reader", "get")
    authorizer.authorize(world.vault, CALLER, VaultAccess.ANY)
    world.principal("nobody")
    with pytest.raises(Forbidden):
        authorizer.authorize(world.vault, Caller("nobody", "nobody-app", "t"), VaultAccess.ANY)


def test_only_the_administrator_is_admin(world: World) -> None:
    authorizer = AccessPolicyAuthorizer(world.store)
    with world.store.write() as tx:
        tx.put_setting("admin_object_id", b"owner-oid")
    assert authorizer.is_admin(Caller("owner-oid", "owner-app", "t"))
    assert not authorizer.is_admin(CALLER)

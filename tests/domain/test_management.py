from __future__ import annotations

import pytest

from kluis.domain.errors import BadParameter, Conflict, NotFound
from tests.domain.conftest import World


def test_vault_names_and_retention(world: World) -> None:
    for bad in ("ab", "1vault", "vault-", "v--x", "a" * 25, "bad_name"):
        with pytest.raises(BadParameter):
            world.mgmt.create_vault(bad, "rg")
    with pytest.raises(BadParameter):
        world.mgmt.create_vault("okname", "rg", retention_days=6)
    with pytest.raises(NotFound):
        world.mgmt.create_vault("okname", "no-such-group")
    with pytest.raises(Conflict):
        world.mgmt.create_vault("VAULT1", "rg")


def test_creator_gets_all_permissions_and_set_policy_replaces_per_kind(world: World) -> None:
    policies = world.mgmt.list_policies("vault1")
    assert len(policies) == 1 and "purge" in policies[0].keys and "set" in policies[0].secrets
    world.principal("sp1")
    p = world.mgmt.set_policy("vault1", "sp1", keys=["get", "list"])
    p = world.mgmt.set_policy("vault1", "sp1", secrets=["get"])
    assert p.keys == ["get", "list"] and p.secrets == ["get"]
    world.mgmt.delete_policy("vault1", "sp1")
    with pytest.raises(NotFound):
        world.mgmt.delete_policy("vault1", "sp1")


def test_group_delete_takes_its_vaults(world: World) -> None:
    world.keys.create_key(world.vault, "k", kty="EC")
    assert world.mgmt.delete_group("rg") == ["vault1"]
    with pytest.raises(NotFound):
        world.mgmt.get_vault("vault1")
    assert world.mgmt.create_group("rg").name == "rg"
    assert world.mgmt.create_group("rg").name == "rg"  # idempotent like az group create


def test_find_principal_by_app_id_object_id_or_name(world: World) -> None:
    world.principal("sp9")
    assert world.mgmt.find_principal("sp9-app").object_id == "sp9"
    assert world.mgmt.find_principal("sp9").object_id == "sp9"
    with pytest.raises(NotFound):
        world.mgmt.find_principal("ghost")

from __future__ import annotations

import pytest

from kluis.domain.errors import BadParameter
from kluis.domain.paging import decode_token, encode_token
from tests.domain.conftest import World


def test_roundtrip_and_garbage() -> None:
    assert decode_token(encode_token("key-7")) == "key-7"
    assert decode_token(None) is None and decode_token("") is None
    for bad in ("garbage!!", "eyJ4IjoxfQ", "bm90IGpzb24"):
        with pytest.raises(BadParameter):
            decode_token(bad)


def test_list_paging_uses_opaque_tokens(world: World) -> None:
    for i in range(3):
        world.keys.create_key(world.vault, f"p{i}", kty="EC")
    first = world.keys.list_keys(world.vault, maxresults=2, token=None)
    assert first.next_token is not None and "p1" not in first.next_token
    rest = world.keys.list_keys(world.vault, maxresults=2, token=first.next_token)
    assert [k.name for k in first.items + rest.items] == ["p0", "p1", "p2"] and rest.next_token is None
    with pytest.raises(BadParameter):
        world.keys.list_keys(world.vault, maxresults=2, token="p0")
    with pytest.raises(BadParameter):
        world.keys.list_versions(world.vault, "p0", maxresults=2, token=encode_token("x"))

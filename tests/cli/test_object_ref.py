"""Addressing for every object kind: --vault-name/--name/--version or --id, as az takes them."""

from __future__ import annotations

import pytest

from kluis.cli.client import CliError
from kluis.cli.object_ref import KEY, SECRET, Kind, ObjectRef, parse_object_id, resolve_ref

KID = "https://myvault.vault.azure.net/keys/k1/0123456789abcdef"


def test_kind_spells_its_identifiers() -> None:
    assert KEY.collection == "keys" and KEY.example == "https://NAME.vault.azure.net/keys/KEY"
    assert Kind("certificate").collection == "certificates"


def test_parse_key_ids_on_vault_hosts() -> None:
    assert parse_object_id(KID, KEY) == ObjectRef("myvault", "k1", "0123456789abcdef")
    assert parse_object_id("https://MyVault.vault.azure.net/keys/k1/", KEY) == ObjectRef("myvault", "k1", None)
    assert parse_object_id("https://myvault.vault.azure.net/deletedkeys/k1", KEY) == ObjectRef("myvault", "k1")
    assert parse_object_id("https://myvault.vault.azure.net", KEY) == ObjectRef("myvault")
    assert parse_object_id("https://v2.localhost:8443/keys/k", KEY) == ObjectRef("v2", "k")
    assert parse_object_id("https://v3.kv.example.com/keys/k", KEY, ["kv.example.com"]) == ObjectRef("v3", "k")


def test_parse_secret_ids() -> None:
    assert parse_object_id("https://v1.vault.azure.net/secrets/s/abc", SECRET) == ObjectRef("v1", "s", "abc")
    assert parse_object_id("https://v1.vault.azure.net/secrets/s", SECRET) == ObjectRef("v1", "s", None)
    assert parse_object_id("https://v1.vault.azure.net/deletedsecrets/s", SECRET) == ObjectRef("v1", "s", None)
    assert parse_object_id("https://v2.kms.example.com:8443/secrets/s", SECRET, ["kms.example.com"]) == ObjectRef(
        "v2", "s"
    )
    assert parse_object_id("https://localhost:8443/secrets/s", SECRET) == ObjectRef("default", "s", None, True)


def test_default_vault_is_direct() -> None:
    assert parse_object_id("https://localhost:8443/keys/k/v", KEY) == ObjectRef("default", "k", "v", direct=True)
    assert parse_object_id("https://127.0.0.1:8443/keys/k", KEY) == ObjectRef("default", "k", None, direct=True)
    assert parse_object_id("https://a.b.vault.azure.net/keys/k", KEY).direct  # two labels: not a vault host


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        ("http://myvault.vault.azure.net/keys/k", KEY),
        ("myvault/keys/k", KEY),
        ("https://myvault.vault.azure.net/secrets/s", KEY),
        ("https://myvault.vault.azure.net/keys/a/b/c", KEY),
        ("https://myvault.vault.azure.net/deletedkeys/a/b", KEY),
        ("https://v1.vault.azure.net/keys/k", SECRET),
        ("nonsense", SECRET),
        ("https://v1.vault.azure.net/deletedsecrets/s/v", SECRET),
    ],
)
def test_parse_rejects_what_is_not_an_identifier_of_the_kind(bad: str, kind: Kind) -> None:
    with pytest.raises(CliError, match=f"{kind.noun} identifier"):
        parse_object_id(bad, kind)


def test_messages_name_the_kind() -> None:
    with pytest.raises(CliError) as e:
        parse_object_id("http://v.vault.azure.net/secrets/s", SECRET)
    assert str(e.value) == (
        "--id must be a secret identifier like https://NAME.vault.azure.net/secrets/SECRET, "
        "not 'http://v.vault.azure.net/secrets/s'."
    )
    with pytest.raises(CliError) as e:
        parse_object_id("https://v.vault.azure.net/secrets/s", KEY)
    assert str(e.value) == (
        "--id is not a key identifier (expected .../keys/NAME[/VERSION]): 'https://v.vault.azure.net/secrets/s'."
    )


def test_resolve_ref() -> None:
    assert resolve_ref(KEY, "v", "k", None, "ver") == ObjectRef("v", "k", "ver")
    assert resolve_ref(KEY, None, None, KID, None) == ObjectRef("myvault", "k1", "0123456789abcdef")
    assert resolve_ref(KEY, None, None, KID, "other").version == "other"
    assert resolve_ref(KEY, "v", None, None, need_name=False) == ObjectRef("v")
    assert resolve_ref(SECRET, None, None, "https://v.vault.azure.net", need_name=False) == ObjectRef("v")
    with pytest.raises(CliError, match="cannot be combined"):
        resolve_ref(KEY, "v", None, KID)
    with pytest.raises(CliError, match="--name"):
        resolve_ref(KEY, "v", None, None)
    with pytest.raises(CliError, match="--vault-name"):
        resolve_ref(KEY, None, "k", None)
    with pytest.raises(CliError, match=r"must name a key: https://NAME.vault.azure.net/keys/KEY\[/VERSION\]"):
        resolve_ref(KEY, None, None, "https://myvault.vault.azure.net")
    with pytest.raises(CliError, match="must name a secret"):
        resolve_ref(SECRET, None, None, "https://v.vault.azure.net")


def test_named_is_the_required_name() -> None:
    assert ObjectRef("v", "k").named == "k"
    with pytest.raises(AssertionError):
        _ = ObjectRef("v").named

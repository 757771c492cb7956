"""SecretService rules on a real SQLite store and real sealing: versions, the value rules, PATCH
semantics, disabled / nbf / exp, soft delete, backup and values sealed at rest."""

from __future__ import annotations

import pytest

from kluis.crypto import Sealer, new_kek
from kluis.domain.backup import BackupEnvelope, ObjectBackup
from kluis.domain.errors import BadParameter, Conflict, Forbidden, NotFound
from kluis.domain.secrets.service import MAX_VALUE_LENGTH, SecretService
from kluis.domain.views import SecretChanges
from tests.domain.secrets.conftest import SecretWorld

DAY = 86400


def test_set_makes_a_new_version_each_time(sworld: SecretWorld) -> None:
    s = sworld.secrets
    v1 = s.set_secret(sworld.vault, "Conn-String", "one", SecretChanges(content_type="text/plain"))
    v2 = s.set_secret(sworld.vault, "conn-string", "two")
    assert v1.view.name == v2.view.name == "Conn-String" and v1.view.version != v2.view.version
    assert v1.value == "one" and v1.view.props == {"contentType": "text/plain"}
    latest = s.get_secret(sworld.vault, "CONN-STRING")
    assert latest.value == "two" and latest.view.version == v2.view.version and latest.view.props == {}
    assert s.get_secret(sworld.vault, "conn-string", v1.view.version).value == "one"
    versions = s.lifecycle.list_versions(sworld.vault, "conn-string", maxresults=None, token=None)
    assert [v.version for v in versions.items] == [v1.view.version, v2.view.version]


def test_empty_unicode_and_longest_values(sworld: SecretWorld) -> None:
    s = sworld.secrets
    assert s.set_secret(sworld.vault, "empty", "").value == ""
    assert s.get_secret(sworld.vault, "empty").value == ""
    text = "wachtwoord: ĳs ☃ 日本語 🙂\n\ttab"
    s.set_secret(sworld.vault, "unicode", text)
    s._values.forget(sworld.vault.vault_id, "unicode")  # read back through unsealing, not the cache
    assert s.get_secret(sworld.vault, "unicode").value == text
    longest = "x" * MAX_VALUE_LENGTH
    assert s.set_secret(sworld.vault, "longest", longest).value == longest


def test_value_beyond_25600_characters_is_refused(sworld: SecretWorld) -> None:
    with pytest.raises(BadParameter) as err:
        sworld.secrets.set_secret(sworld.vault, "big", "x" * (MAX_VALUE_LENGTH + 1))
    assert err.value.message == "Secret is beyond the maximum permitted length of 25600 characters."
    assert err.value.inner_code == "SecretTooLarge"
    with pytest.raises(NotFound):
        sworld.secrets.get_secret(sworld.vault, "big")


@pytest.mark.parametrize("name", ["bad_name", "", "a" * 128, "sp ace", "dot.ted"])
def test_invalid_names(sworld: SecretWorld, name: str) -> None:
    with pytest.raises(BadParameter, match="invalid name"):
        sworld.secrets.set_secret(sworld.vault, name, "v")


def test_name_of_127_characters_is_fine(sworld: SecretWorld) -> None:
    assert sworld.secrets.set_secret(sworld.vault, "a-1" * 42 + "b", "v").view.name == "a-1" * 42 + "b"


def test_disabled_secret_refuses_its_value_but_not_its_attributes(sworld: SecretWorld) -> None:
    s = sworld.secrets
    made = s.set_secret(sworld.vault, "off", "hidden", SecretChanges(enabled=False))
    with pytest.raises(Forbidden) as err:
        s.get_secret(sworld.vault, "off")
    assert err.value.message == "Operation get is not allowed on a disabled secret."
    assert err.value.inner_code == "SecretDisabled"
    assert s.lifecycle.get(sworld.vault, "off").enabled is False  # lists and attributes still answer
    s.update_secret(sworld.vault, "off", made.view.version, SecretChanges(enabled=True))
    assert s.get_secret(sworld.vault, "off").value == "hidden"
    s.update_secret(sworld.vault, "off", None, SecretChanges(enabled=False))
    with pytest.raises(Forbidden):  # the value is cached now; the state is still read every time
        s.get_secret(sworld.vault, "off")


def test_get_answers_outside_nbf_and_exp(sworld: SecretWorld) -> None:
    now = sworld.clock.now()
    s = sworld.secrets
    s.set_secret(sworld.vault, "later", "soon", SecretChanges(nbf=now + DAY))
    s.set_secret(sworld.vault, "gone", "old", SecretChanges(exp=now - DAY))
    assert s.get_secret(sworld.vault, "later").value == "soon"
    assert s.get_secret(sworld.vault, "gone").value == "old"


def test_update_is_a_patch(sworld: SecretWorld) -> None:
    s = sworld.secrets
    now = sworld.clock.now()
    made = s.set_secret(
        sworld.vault, "p", "v", SecretChanges(content_type="a/b", tags={"t": "1"}, exp=now + DAY, nbf=now)
    )
    sworld.clock.t += 5
    upd = s.update_secret(sworld.vault, "p", None, SecretChanges(tags={"u": "2"}))
    assert upd.tags == {"u": "2"} and upd.props["contentType"] == "a/b"
    assert upd.exp == now + DAY and upd.nbf == now and upd.enabled is True
    assert upd.updated == made.view.created + 5 and upd.created == made.view.created
    upd = s.update_secret(sworld.vault, "p", made.view.version, SecretChanges(content_type="c/d", exp=None))
    assert upd.props["contentType"] == "c/d" and upd.exp is None and upd.tags == {"u": "2"}
    assert s.get_secret(sworld.vault, "p").value == "v"  # the value never changes
    with pytest.raises(NotFound):
        s.update_secret(sworld.vault, "p", "0" * 32, SecretChanges(enabled=False))
    with pytest.raises(NotFound):
        s.update_secret(sworld.vault, "nope", None, SecretChanges(enabled=False))


def test_content_type_and_tag_limits(sworld: SecretWorld) -> None:
    s = sworld.secrets
    s.set_secret(sworld.vault, "ct", "v", SecretChanges(content_type="c" * 255))
    with pytest.raises(BadParameter):
        s.set_secret(sworld.vault, "ct", "v", SecretChanges(content_type="c" * 256))
    with pytest.raises(BadParameter):
        s.update_secret(sworld.vault, "ct", None, SecretChanges(content_type="c" * 256))


def test_soft_delete_recover_purge(sworld: SecretWorld) -> None:
    s = sworld.secrets
    s.set_secret(sworld.vault, "d", "v1")
    deleted = s.lifecycle.delete(sworld.vault, "d")
    info = deleted.deleted
    assert info is not None and info.scheduled_purge_date == info.deleted_date + 90 * DAY
    with pytest.raises(NotFound) as nf:
        s.get_secret(sworld.vault, "d")
    assert nf.value.code == "SecretNotFound"
    with pytest.raises(Conflict) as err:
        s.set_secret(sworld.vault, "d", "v2")
    assert err.value.inner_code == "ObjectIsDeletedButRecoverable"
    assert err.value.message.startswith("Secret d is currently in a deleted but recoverable state")
    assert [v.name for v in s.lifecycle.list(sworld.vault, deleted=True, maxresults=None, token=None).items] == ["d"]
    assert s.lifecycle.list_versions(sworld.vault, "d", maxresults=None, token=None).items == []
    s.lifecycle.recover(sworld.vault, "d")
    assert s.get_secret(sworld.vault, "d").value == "v1"
    s.lifecycle.delete(sworld.vault, "d")
    s.lifecycle.purge(sworld.vault, "d")  # right after the delete: kluis's delete is complete when it answers
    with pytest.raises(NotFound) as gone:
        s.lifecycle.get_deleted(sworld.vault, "d")
    assert gone.value.message == "Deleted Secret not found: d"
    assert s.set_secret(sworld.vault, "d", "fresh").value == "fresh"


def test_retention_end_purges_secrets(sworld: SecretWorld) -> None:
    sworld.secrets.set_secret(sworld.vault, "r", "v")
    sworld.secrets.lifecycle.delete(sworld.vault, "r")
    sworld.clock.t += 90 * DAY - 1
    assert sworld.tick() == (0, 0)
    sworld.clock.t += 1
    assert sworld.tick() == (1, 0)
    with pytest.raises(NotFound):
        sworld.secrets.lifecycle.get_deleted(sworld.vault, "r")


def test_versions_of_a_name_that_never_existed_is_an_empty_page(sworld: SecretWorld) -> None:
    page = sworld.secrets.lifecycle.list_versions(sworld.vault, "never", maxresults=5, token=None)
    assert page.items == [] and page.next_token is None


def test_list_pages_carry_no_values(sworld: SecretWorld) -> None:
    for i in range(5):
        sworld.secrets.set_secret(sworld.vault, f"s{i}", f"value-{i}")
    first = sworld.secrets.lifecycle.list(sworld.vault, deleted=False, maxresults=2, token=None)
    assert [v.name for v in first.items] == ["s0", "s1"] and first.next_token
    rest = sworld.secrets.lifecycle.list(sworld.vault, deleted=False, maxresults=25, token=first.next_token)
    assert [v.name for v in rest.items] == ["s2", "s3", "s4"]
    with pytest.raises(BadParameter):
        sworld.secrets.lifecycle.list(sworld.vault, deleted=False, maxresults=26, token=None)


def test_backup_restore_is_sealed_and_tenant_bound(sworld: SecretWorld) -> None:
    s = sworld.secrets
    v1 = s.set_secret(sworld.vault, "b", "first", SecretChanges(tags={"a": "b"}))
    v2 = s.set_secret(sworld.vault, "b", "second", SecretChanges(content_type="text/plain"))
    blob = sworld.secret_backup.backup(sworld.vault, "b")
    assert blob.startswith(b"kluis-secret-backup-v2.") and b"first" not in blob and b"second" not in blob
    with pytest.raises(Conflict):
        sworld.secret_backup.restore(sworld.vault, blob)
    s.lifecycle.delete(sworld.vault, "b")
    with pytest.raises(Conflict):  # deleted but not purged: the name is still in use
        sworld.secret_backup.restore(sworld.vault, blob)
    s.lifecycle.purge(sworld.vault, "b")
    restored = sworld.secret_backup.restore(sworld.vault, blob)
    assert restored.version == v2.view.version and restored.props == {"contentType": "text/plain"}
    assert s.get_secret(sworld.vault, "b").value == "second"
    assert s.get_secret(sworld.vault, "b", v1.view.version).value == "first"
    other_tenant = ObjectBackup(
        s.lifecycle, sworld.store, BackupEnvelope(Sealer(sworld.sealer.derive(b"backup")), "other-tenant")
    )
    s.lifecycle.delete(sworld.vault, "b")
    s.lifecycle.purge(sworld.vault, "b")
    with pytest.raises(BadParameter):
        other_tenant.restore(sworld.vault, blob)
    key_backup = ObjectBackup(sworld.keys.lifecycle, sworld.store, sworld.envelope)
    with pytest.raises(BadParameter):  # a secret blob is not a key blob
        key_backup.restore(sworld.vault, blob)
    tampered = blob[:-5] + (b"A" if blob[-5:-4] != b"A" else b"B") + blob[-4:]
    with pytest.raises(BadParameter):
        sworld.secret_backup.restore(sworld.vault, tampered)


def test_values_are_sealed_at_rest(sworld: SecretWorld) -> None:
    marker = "kluis-plaintext-marker-7f3a9c"
    sworld.secrets.set_secret(sworld.vault, "sealed", marker)
    with sworld.store.read() as tx:
        obj = tx.get_object(sworld.vault.vault_id, "secret", "sealed")
        assert obj is not None
        v = tx.get_version(sworld.vault.vault_id, "secret", "sealed", obj.latest_version)
    assert v is not None and marker.encode() not in v.sealed
    other = SecretService(sworld.store, Sealer(new_kek()), sworld.clock)  # another KEK cannot open it
    with pytest.raises(Exception, match="sealed"):
        other.get_secret(sworld.vault, "sealed")

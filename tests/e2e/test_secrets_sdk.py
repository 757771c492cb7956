"""Every secrets operation through the official ``azure-keyvault-secrets`` clients (sync through the
CONNECT proxy with challenge verification on, async in direct mode), Azure's rules with their
statuses, codes and messages, access policies set with the CLI, and values sealed at rest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity.aio import ClientSecretCredential as AsyncCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets.aio import SecretClient as AsyncSecretClient

from tests.e2e.conftest import Principal, proxied_credential, proxied_transport, unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow


def _client(kluis: KluisServer, who: Principal, vault: str) -> SecretClient:
    return SecretClient(f"https://{vault}.vault.azure.net", proxied_credential(kluis, who),
                        transport=proxied_transport(kluis))  # fmt: skip


@pytest.fixture(scope="module")
def secrets(kluis: KluisServer, admin: Principal, vault: str) -> Iterator[SecretClient]:
    with _client(kluis, admin, vault) as c:
        yield c


def _error(err: pytest.ExceptionInfo[HttpResponseError]) -> tuple[int | None, str | None, str | None, Any]:
    e = err.value
    inner = getattr(e.error, "innererror", None) or {}
    return e.status_code, getattr(e.error, "code", None), getattr(e.error, "message", None), inner.get("code")


def test_every_operation_sync(secrets: SecretClient, vault: str) -> None:
    base = f"https://{vault}.vault.azure.net"
    name = unique("s")
    exp = datetime(2100, 1, 1, tzinfo=UTC)
    v1 = secrets.set_secret(name, "first", content_type="text/plain", tags={"env": "dev"}, expires_on=exp)
    v2 = secrets.set_secret(name, "second", not_before=datetime(2020, 1, 1, tzinfo=UTC))
    assert v1.id.startswith(f"{base}/secrets/{name}/") and v1.properties.version != v2.properties.version
    assert v1.properties.content_type == "text/plain" and v1.properties.tags == {"env": "dev"}
    assert v1.properties.expires_on == exp and v1.properties.recovery_level == "Recoverable+Purgeable"
    assert v1.properties.recoverable_days == 90 and v1.properties.enabled is True
    assert v1.properties.managed is None and v1.properties.key_id is None
    assert secrets.get_secret(name).value == "second"
    assert secrets.get_secret(name, v1.properties.version).value == "first"
    # lists: no values, paging with maxresults 1..25
    listed = [p for p in secrets.list_properties_of_secrets(max_page_size=1) if p.name == name]
    assert len(listed) == 1 and not hasattr(listed[0], "value")
    pages = list(secrets.list_properties_of_secret_versions(name, max_page_size=1).by_page())
    assert len(pages) == 2 and sorted(p.version for page in pages for p in page) == sorted(
        [v1.properties.version, v2.properties.version]
    )
    assert list(secrets.list_properties_of_secret_versions(unique("never"))) == []
    with pytest.raises(HttpResponseError) as bad_page:
        next(iter(secrets.list_properties_of_secrets(max_page_size=26)))
    assert bad_page.value.status_code == 400
    # update: PATCH semantics
    upd = secrets.update_secret_properties(name, v1.properties.version, enabled=False)
    assert upd.enabled is False and upd.content_type == "text/plain" and upd.tags == {"env": "dev"}
    assert upd.expires_on == exp
    upd = secrets.update_secret_properties(name, content_type="application/json", tags={"t": "2"})
    assert upd.version == v2.properties.version and upd.content_type == "application/json" and upd.enabled
    # backup, delete, get/list deleted, recover, purge, restore
    blob = secrets.backup_secret(name)
    assert blob.startswith(b"kluis-secret-backup-v2.") and b"first" not in blob
    deleted = secrets.begin_delete_secret(name).result()
    assert deleted.recovery_id == f"{base}/deletedsecrets/{name}" and deleted.deleted_date is not None
    assert deleted.scheduled_purge_date is not None
    assert (deleted.scheduled_purge_date - deleted.deleted_date).days == 90
    assert secrets.get_deleted_secret(name).properties.version == v2.properties.version
    assert name in [d.name for d in secrets.list_deleted_secrets()]
    with pytest.raises(ResourceNotFoundError) as nf:
        secrets.get_secret(name)
    assert _error(nf)[1] == "SecretNotFound"
    recovered = secrets.begin_recover_deleted_secret(name).result()
    assert recovered.version == v2.properties.version
    assert secrets.get_secret(name).value == "second"
    with pytest.raises(ResourceExistsError):
        secrets.restore_secret_backup(blob)
    secrets.begin_delete_secret(name).result()
    secrets.purge_deleted_secret(name)
    with pytest.raises(ResourceNotFoundError) as gone:
        secrets.get_deleted_secret(name)
    assert _error(gone)[:3] == (404, "SecretNotFound", f"Deleted Secret not found: {name}")
    restored = secrets.restore_secret_backup(blob)
    assert restored.version == v2.properties.version and restored.content_type == "application/json"
    assert secrets.get_secret(name).value == "second"
    states = {p.version: p.enabled for p in secrets.list_properties_of_secret_versions(name)}
    assert states == {v1.properties.version: False, v2.properties.version: True}  # attributes restored too


def test_rules(secrets: SecretClient) -> None:
    # a disabled secret's value is refused (Azure/azure-sdk-for-js#24756, ansible-collections/azure#1989)
    off = unique("off")
    secrets.set_secret(off, "hidden", enabled=False)
    with pytest.raises(HttpResponseError) as disabled:
        secrets.get_secret(off)
    assert _error(disabled) == (
        403,
        "Forbidden",
        "Operation get is not allowed on a disabled secret.",
        "SecretDisabled",
    )
    # get works outside nbf/exp (azure-docs secrets/about-secrets.md, "Date-time controlled operations")
    future, past = unique("nbf"), unique("exp")
    now = datetime.now(UTC)
    secrets.set_secret(future, "later", not_before=now + timedelta(days=30))
    secrets.set_secret(past, "earlier", expires_on=now - timedelta(days=30))
    assert secrets.get_secret(future).value == "later" and secrets.get_secret(past).value == "earlier"
    # values: empty allowed, Unicode round-trips, at most 25,600 characters
    assert secrets.set_secret(unique("empty"), "").value == ""
    text = 'Ĳsselmeer ☃ 日本語 🙂 \u200b\n"q"\\'
    uni = unique("uni")
    secrets.set_secret(uni, text)
    assert secrets.get_secret(uni).value == text
    assert secrets.set_secret(unique("max"), "x" * 25600).value == "x" * 25600
    with pytest.raises(HttpResponseError) as big:
        secrets.set_secret(unique("big"), "x" * 25601)
    assert _error(big) == (
        400, "BadParameter", "Secret is beyond the maximum permitted length of 25600 characters.", "SecretTooLarge"
    )  # fmt: skip
    # names and tags
    with pytest.raises(HttpResponseError) as bad:
        secrets.set_secret("bad_name", "v")
    assert _error(bad)[:3] == (400, "BadParameter", "The request URI contains an invalid name: bad_name")
    long_name = "n" + unique("") + "x" * 116
    assert len(long_name) == 127 and secrets.set_secret(long_name, "v").name == long_name
    with pytest.raises(HttpResponseError):
        secrets.set_secret(long_name + "y", "v")
    tagged = unique("tags")
    assert secrets.set_secret(tagged, "v", tags={f"t{i}": "v" * 512 for i in range(15)}).properties.tags
    with pytest.raises(HttpResponseError) as many:
        secrets.set_secret(tagged, "v", tags={f"t{i}": "v" for i in range(16)})
    assert many.value.status_code == 400
    with pytest.raises(HttpResponseError):
        secrets.set_secret(tagged, "v", tags={"t" * 513: "v"})
    # a deleted name answers Conflict until recovered or purged
    gone = unique("del")
    secrets.set_secret(gone, "v")
    secrets.begin_delete_secret(gone).result()
    with pytest.raises(ResourceExistsError) as conflict:
        secrets.set_secret(gone, "again")
    assert _error(conflict) == (
        409,
        "Conflict",
        f"Secret {gone} is currently in a deleted but recoverable state, and its name cannot be reused; in this "
        "state, the secret can only be recovered or purged.",
        "ObjectIsDeletedButRecoverable",
    )
    # Azure's delete finishes in the background ("Secret is currently being deleted." on an early purge,
    # Azure/azure-cli#12722); kluis's delete is complete when it answers, so purging at once succeeds.
    secrets.purge_deleted_secret(gone)
    assert secrets.set_secret(gone, "reborn").value == "reborn"


def test_set_policy_secret_permissions_take_effect(
    kluis: KluisServer, make_vault: Callable[..., str], make_principal: Callable[..., Principal]
) -> None:
    vault = make_vault()
    sp = make_principal()
    kluis.cli("keyvault", "set-policy", "-n", vault, "--spn", sp.app_id, "--secret-permissions", "get", "list")
    admin_client = _client(kluis, Principal(**_admin(kluis)), vault)
    admin_client.set_secret("shared", "v")
    client = _client(kluis, sp, vault)
    assert client.get_secret("shared").value == "v"
    with pytest.raises(HttpResponseError) as denied:
        client.set_secret("shared", "w")
    status, code, message, inner = _error(denied)
    assert (status, code, inner) == (403, "Forbidden", "AccessDenied")
    assert message is not None and f"does not have secrets set permission on key vault '{vault};" in message
    kluis.cli("keyvault", "set-policy", "-n", vault, "--spn", sp.app_id, "--secret-permissions", "all")
    assert client.set_secret("shared", "w").value == "w"
    for call in (lambda: client.backup_secret("shared"), lambda: client.begin_delete_secret("shared").result(),
                 lambda: client.purge_deleted_secret("shared")):  # fmt: skip
        call()
    kluis.cli("keyvault", "set-policy", "-n", vault, "--spn", sp.app_id, "--secret-permissions", "list",
              "--key-permissions", "all")  # fmt: skip
    with pytest.raises(HttpResponseError) as no_get:
        client.get_secret("anything")
    assert no_get.value.status_code == 403 and "secrets get permission" in str(no_get.value)


def _admin(kluis: KluisServer) -> dict[str, str]:
    a = kluis.admin()
    return {"app_id": a["appId"], "password": a["password"], "tenant": a["tenant"]}


def test_every_operation_async_direct(kluis: KluisServer, admin: Principal) -> None:
    async def flow() -> None:
        cred = AsyncCredential("adfs", admin.app_id, admin.password, authority=kluis.url, connection_verify=kluis.ca)
        async with cred, AsyncSecretClient(kluis.url, cred, verify_challenge_resource=False,
                                           connection_verify=kluis.ca) as client:  # fmt: skip
            name = unique("a")
            v1 = await client.set_secret(name, "one", content_type="text/plain")
            v2 = await client.set_secret(name, "two", tags={"k": "v"})
            assert (await client.get_secret(name)).value == "two"
            assert (await client.get_secret(name, v1.properties.version)).value == "one"
            assert name in [p.name async for p in client.list_properties_of_secrets(max_page_size=2)]
            versions = [p.version async for p in client.list_properties_of_secret_versions(name)]
            assert sorted(versions) == sorted([v1.properties.version, v2.properties.version])
            assert [p async for p in client.list_properties_of_secret_versions(unique("never"))] == []
            upd = await client.update_secret_properties(name, enabled=False)
            assert upd.enabled is False and upd.tags == {"k": "v"}
            with pytest.raises(HttpResponseError) as disabled:
                await client.get_secret(name)
            assert disabled.value.status_code == 403 and "disabled secret" in str(disabled.value)
            await client.update_secret_properties(name, enabled=True)
            blob = await client.backup_secret(name)
            deleted = await client.delete_secret(name)
            assert deleted.recovery_id == f"{kluis.url}/deletedsecrets/{name}"
            assert (await client.get_deleted_secret(name)).name == name
            assert name in [d.name async for d in client.list_deleted_secrets()]
            with pytest.raises(ResourceExistsError):
                await client.set_secret(name, "three")
            assert (await client.recover_deleted_secret(name)).version == v2.properties.version
            await client.delete_secret(name)
            await client.purge_deleted_secret(name)
            with pytest.raises(ResourceNotFoundError):
                await client.get_deleted_secret(name)
            assert (await client.restore_secret_backup(blob)).version == v2.properties.version
            assert (await client.get_secret(name)).value == "two"
            with pytest.raises(ResourceExistsError):
                await client.restore_secret_backup(blob)

    asyncio.run(flow())


def test_values_are_sealed_in_the_database_files(kluis: KluisServer, secrets: SecretClient) -> None:
    """Set a secret whose value is a unique marker, then scan every database file (db, WAL, shm): the
    marker (in UTF-8 or UTF-16) is nowhere, while the secret's name (stored in the clear) is found."""
    marker = f"plaintext-marker-{unique('')}-ĳ"
    name = unique("sealed")
    secrets.set_secret(name, marker, tags={"visible": "tag"})
    assert secrets.get_secret(name).value == marker
    time.sleep(0.2)
    files = [p for p in kluis.data_dir.iterdir() if p.name.startswith("kluis.db")]
    assert any(p.name == "kluis.db" for p in files)
    data = b"".join(p.read_bytes() for p in files)
    assert name.encode() in data  # the scan does see what is stored in the clear
    for encoded in (marker.encode("utf-8"), marker.encode("utf-16-le"), marker[:20].encode()):
        assert encoded not in data

"""Secrets printed as az prints them: camelCase JSON (the value only where az shows it) and flat rows."""

from __future__ import annotations

from datetime import UTC, datetime

from azure.keyvault.secrets import DeletedSecret, KeyVaultSecret, SecretProperties
from azure.keyvault.secrets._generated.models import SecretAttributes

from kluis.cli.secret_output import secret_bundle, secret_item, table_rows

SID = "https://v.vault.azure.net/secrets/s/0123"
WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
ATTRIBUTE_KEYS = {"created", "enabled", "expires", "notBefore", "recoverableDays", "recoveryLevel", "updated"}


def _props() -> SecretProperties:
    return SecretProperties(
        SecretAttributes(enabled=True, expires=WHEN), SID, content_type="text/plain", tags={"a": "b"}
    )


def test_bundle_like_az() -> None:
    out = secret_bundle(KeyVaultSecret(_props(), "hunter2"))
    assert set(out) == {"attributes", "contentType", "id", "kid", "managed", "name", "tags", "value"}
    assert set(out["attributes"]) == ATTRIBUTE_KEYS and out["attributes"]["expires"] == "2030-01-02T03:04:05+00:00"
    assert out["value"] == "hunter2" and out["name"] == "s" and out["id"] == SID and out["contentType"] == "text/plain"


def test_deleted_secret_has_no_value_and_its_deletion() -> None:
    deleted = DeletedSecret(_props(), deleted_date=WHEN, recovery_id="https://v.vault.azure.net/deletedsecrets/s")
    out = secret_bundle(deleted, with_value=False)
    assert "value" not in out and out["recoveryId"].endswith("/deletedsecrets/s")
    assert out["deletedDate"] == "2030-01-02T03:04:05+00:00" and out["scheduledPurgeDate"] is None
    item = secret_item(deleted)
    assert item["name"] == "s" and "value" not in item and "kid" not in item and item["recoveryId"] == out["recoveryId"]
    assert "recoveryId" not in secret_item(_props())


def test_table_rows() -> None:
    row = table_rows(secret_bundle(KeyVaultSecret(_props(), "v")))
    assert row == {"Name": "s", "Id": SID, "ContentType": "text/plain", "Enabled": True,
                   "Expires": "2030-01-02T03:04:05+00:00", "Updated": None, "Value": "v"}  # fmt: skip
    deleted = DeletedSecret(_props(), deleted_date=WHEN, recovery_id="r")
    [listed] = table_rows([secret_item(deleted)])
    assert "Value" not in listed and listed["DeletedDate"] == "2030-01-02T03:04:05+00:00"

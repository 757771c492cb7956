from __future__ import annotations

import re
import uuid

from kluis.identity.secrets import (
    check_secret,
    hash_secret,
    new_app_id,
    new_client_secret,
    new_object_id,
)


def test_client_secret_shape_and_uniqueness() -> None:
    secrets = {new_client_secret() for _ in range(200)}
    assert len(secrets) == 200
    for s in secrets:
        assert len(s) == 40
        assert re.fullmatch(r"[A-Za-z0-9_-]{40}", s)
        assert not s.startswith("-")


def test_hash_and_check() -> None:
    secret = new_client_secret()
    stored = hash_secret(secret)
    assert secret not in stored
    scheme, salt, digest = stored.split("$")
    assert scheme == "sha256" and len(salt) == 32 and len(digest) == 64
    assert check_secret(secret, stored)
    assert not check_secret(secret + "x", stored)
    assert not check_secret("", stored)


def test_salted() -> None:
    assert hash_secret("same") != hash_secret("same")


def test_malformed_stored_values() -> None:
    for stored in ("", "sha256", "sha256$zz$00", "md5$00$00", "sha256$00$00$00", "plain-secret"):
        assert not check_secret("plain-secret", stored)


def test_ids_are_uuid4() -> None:
    for make in (new_object_id, new_app_id):
        value = make()
        assert uuid.UUID(value).version == 4
        assert str(uuid.UUID(value)) == value
    assert new_app_id() != new_app_id()

"""The keys handlers through the in-process app: wire in, domain call, wire out, for every family row."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from kluis.api.runtime import Runtime
from kluis.store import SqliteStore
from tests.api.conftest import auth

Q = "?api-version=7.6"
BASE = "https://localhost:8443"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Api:
    def __init__(self, client: TestClient, runtime: Runtime) -> None:
        self.client = client
        self.headers = auth(runtime)

    def __call__(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = self.client.request(method, path + Q, json=body, headers=self.headers)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        return r.json() if r.content else None


@pytest.fixture
def api(client: TestClient, runtime: Runtime) -> Api:
    return Api(client, runtime)


def test_create_get_update(api: Api) -> None:
    created = api("POST", "/keys/k1/create", {"kty": "EC", "crv": "P-384", "tags": {"a": "1"}})
    kid = created["key"]["kid"]
    assert kid.startswith(f"{BASE}/keys/k1/") and created["key"]["crv"] == "P-384"
    assert created["tags"] == {"a": "1"} and created["attributes"]["enabled"] is True
    version = kid.rsplit("/", 1)[1]
    assert api("GET", f"/keys/k1/{version}")["key"]["kid"] == kid
    updated = api("PATCH", "/keys/k1/", {"attributes": {"enabled": False, "exp": 4_000_000_000}})
    assert updated["attributes"]["enabled"] is False and updated["attributes"]["exp"] == 4_000_000_000
    assert updated["tags"] == {"a": "1"}  # absent from the PATCH: unchanged
    assert api("GET", "/keys/k1//attestation")["key"]["kid"] == kid


def test_import_a_jwk(api: Api) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    n = key.private_numbers()
    jwk = {
        "kty": "EC", "crv": "P-256", "d": _b64(n.private_value.to_bytes(32, "big")),
        "x": _b64(n.public_numbers.x.to_bytes(32, "big")), "y": _b64(n.public_numbers.y.to_bytes(32, "big")),
    }  # fmt: skip
    out = api("PUT", "/keys/imported", {"key": jwk, "Hsm": True})
    assert out["key"]["kty"] == "EC-HSM" and out["key"]["x"] == jwk["x"] and "d" not in out["key"]
    api("PUT", "/keys/imported", {"key": jwk, "Hsm": "yes"}, status=400)
    api("PUT", "/keys/imported", {"kty": "EC"}, status=400)


def test_lists_page_with_next_links(api: Api, client: TestClient) -> None:
    for name in ("a", "b", "c"):
        api("POST", f"/keys/{name}/create", {"kty": "EC"})
    first = client.get("/keys?api-version=7.6&maxresults=2", headers=api.headers).json()
    assert [i["kid"] for i in first["value"]] == [f"{BASE}/keys/a", f"{BASE}/keys/b"]
    rest = client.get(first["nextLink"], headers=api.headers).json()
    assert [i["kid"] for i in rest["value"]] == [f"{BASE}/keys/c"] and rest["nextLink"] is None
    api("POST", "/keys/a/create", {"kty": "EC"})
    versions = api("GET", "/keys/a/versions")["value"]
    assert len(versions) == 2 and all(v["kid"].startswith(f"{BASE}/keys/a/") for v in versions)
    assert api("GET", "/keys/never-made/versions") == {"value": [], "nextLink": None}
    api("GET", "/keys?maxresults=x", status=400)


def test_delete_recover_purge(api: Api) -> None:
    api("POST", "/keys/gone/create", {"kty": "EC"})
    deleted = api("DELETE", "/keys/gone")
    assert (
        deleted["recoveryId"] == f"{BASE}/deletedkeys/gone" and deleted["scheduledPurgeDate"] > deleted["deletedDate"]
    )
    api("GET", "/keys/gone", status=404)
    assert [i["kid"] for i in api("GET", "/deletedkeys")["value"]] == [f"{BASE}/keys/gone"]
    assert api("GET", "/deletedkeys/gone")["recoveryId"] == f"{BASE}/deletedkeys/gone"
    assert "recoveryId" not in api("POST", "/deletedkeys/gone/recover")
    api("DELETE", "/keys/gone")
    assert api("DELETE", "/deletedkeys/gone", status=204) is None
    api("GET", "/deletedkeys/gone", status=404)


def test_backup_and_restore(api: Api) -> None:
    made = api("POST", "/keys/bk/create", {"kty": "EC"})
    blob = api("POST", "/keys/bk/backup")["value"]
    api("POST", "/keys/restore", {"value": blob}, status=409)  # the name is in use
    api("DELETE", "/keys/bk")
    api("DELETE", "/deletedkeys/bk", status=204)
    assert api("POST", "/keys/restore", {"value": blob})["key"]["kid"] == made["key"]["kid"]
    api("POST", "/keys/restore", {"value": blob[:-4] + "AAAA"}, status=400)
    api("POST", "/keys/restore", {}, status=400)


def test_encrypt_decrypt_and_wrap(api: Api) -> None:
    api("POST", "/keys/aes/create", {"kty": "oct-HSM", "key_size": 256})
    enc = api("POST", "/keys/aes//encrypt", {"alg": "A256GCM", "value": _b64(b"secret"), "aad": _b64(b"ctx")})
    assert enc["kid"].startswith(f"{BASE}/keys/aes/") and {"iv", "tag", "aad"} <= set(enc)
    dec = api("POST", "/keys/aes//decrypt", {k: enc[k] for k in ("value", "iv", "tag", "aad")} | {"alg": "A256GCM"})
    assert _unb64(dec["value"]) == b"secret" and set(dec) == {"kid", "value"}
    wrapped = api("POST", "/keys/aes//wrapkey", {"alg": "A256KW", "value": _b64(bytes(32))})
    assert set(wrapped) == {"kid", "value"}  # no iv/tag for key wrap
    unwrapped = api("POST", "/keys/aes//unwrapkey", {"alg": "A256KW", "value": wrapped["value"]})
    assert _unb64(unwrapped["value"]) == bytes(32)
    api("POST", "/keys/aes//encrypt", {"value": _b64(b"x")}, status=400)  # alg is required


def test_sign_and_verify(api: Api) -> None:
    api("POST", "/keys/signer/create", {"kty": "EC", "crv": "P-256"})
    digest = hashlib.sha256(b"message").digest()
    sig = api("POST", "/keys/signer//sign", {"alg": "ES256", "value": _b64(digest)})
    assert len(_unb64(sig["value"])) == 64
    ok = api("POST", "/keys/signer//verify", {"alg": "ES256", "digest": _b64(digest), "value": sig["value"]})
    assert ok == {"value": True}
    other = _b64(hashlib.sha256(b"other").digest())
    assert api("POST", "/keys/signer//verify", {"alg": "ES256", "digest": other, "value": sig["value"]}) == {
        "value": False
    }


def test_rotation_and_policy(api: Api) -> None:
    first = api("POST", "/keys/rot/create", {"kty": "EC"})
    policy = api("GET", "/keys/rot/rotationpolicy")
    assert "id" not in policy and policy["lifetimeActions"]  # never set: the default, not dressed as stored
    new = {
        "lifetimeActions": [{"trigger": {"timeAfterCreate": "P30D"}, "action": {"type": "Rotate"}}],
        "attributes": {"expiryTime": "P90D"},
    }
    stored = api("PUT", "/keys/rot/rotationpolicy", new)
    assert stored["attributes"]["expiryTime"] == "P90D" and stored["id"].endswith("/keys/rot/rotationpolicy")
    rotated = api("POST", "/keys/rot/rotate")
    assert rotated["key"]["kid"] != first["key"]["kid"]
    assert rotated["attributes"]["exp"] - rotated["attributes"]["created"] == 90 * 86400


def test_random_bytes(api: Api) -> None:
    assert len(_unb64(api("POST", "/rng", {"count": 33})["value"])) == 33
    api("POST", "/rng", {"count": 0}, status=400)


def test_get_key_answers_change_with_the_key_and_with_another_process_writes(
    api: Api, runtime: Runtime, client: TestClient
) -> None:
    """Get key's encoded answer is remembered per unchanged key: an update here, or a write through
    another connection to the same database (another worker), is in the very next answer."""
    created = api("POST", "/keys/k1/create", {"kty": "EC", "crv": "P-256", "tags": {"a": "1"}})
    assert api("GET", "/keys/k1")["tags"] == {"a": "1"} and api("GET", "/keys/k1")["tags"] == {"a": "1"}
    api("PATCH", "/keys/k1/", {"tags": {"a": "2"}})
    assert api("GET", "/keys/k1")["tags"] == {"a": "2"}
    other = SqliteStore(runtime.store.path)  # type: ignore[attr-defined]  # SQLite runtime: its file
    try:
        with other.write() as tx:
            vault = tx.get_vault("default")
            assert vault is not None
            v = tx.get_version(vault.vault_id, "key", "k1", created["key"]["kid"].rsplit("/", 1)[1])
            assert v is not None
            v.tags = {"a": "3"}
            tx.update_version(v)
    finally:
        other.close()
    assert api("GET", "/keys/k1")["tags"] == {"a": "3"}
    other_host = client.get("/keys/k1" + Q, headers={**api.headers, "host": "127.0.0.1:8443"})
    assert other_host.json()["key"]["kid"].startswith("https://127.0.0.1:8443/keys/k1/")  # the base is in the key

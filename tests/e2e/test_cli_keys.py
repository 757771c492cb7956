"""`kluis keyvault key ...`: az's data-plane verbs through the real CLI, against the session server.

Every command runs as a subprocess (`python -m kluis ...`), exactly as a user types it; under the hood
the CLI uses the official azure-keyvault-keys SDK through kluis's CONNECT proxy.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.e2e.conftest import unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow

BUNDLE_KEYS = {"attributes", "key", "managed", "releasePolicy", "tags"}
ATTRIBUTE_KEYS = {
    "created", "enabled", "expires", "exportable", "hsmPlatform", "notBefore", "recoverableDays", "recoveryLevel",
    "updated",
}  # fmt: skip


@dataclass
class Keys:
    vault: str
    rsa: dict[str, Any]
    ec: dict[str, Any]
    oct: dict[str, Any]


def kv(kluis: KluisServer, *args: str) -> Any:
    """`kluis keyvault key ARGS -o json`, parsed."""
    return kluis.cli_json("keyvault", "key", *args)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def keys(kluis: KluisServer, make_vault: Callable[..., str]) -> Keys:
    vault = make_vault()
    rsa_key = kv(
        kluis, "create", "--vault-name", vault, "-n", "rsa1", "--kty", "RSA", "--size", "2048",
        "--ops", "encrypt", "decrypt", "sign", "verify", "--tags", "team=core", "flag",
    )  # fmt: skip
    ec_key = kv(kluis, "create", "--vault-name", vault, "-n", "ec1", "--kty", "EC", "--curve", "P-256")
    oct_key = kv(kluis, "create", "--vault-name", vault, "--name", "oct1", "--kty", "oct-HSM", "--size", "256")
    return Keys(vault, rsa_key, ec_key, oct_key)


def test_create_shapes_like_az(keys: Keys) -> None:
    r = keys.rsa
    assert set(r) == BUNDLE_KEYS and set(r["attributes"]) == ATTRIBUTE_KEYS
    assert r["key"]["kid"].startswith(f"https://{keys.vault}.vault.azure.net/keys/rsa1/")
    assert r["key"]["kty"] == "RSA" and r["key"]["keyOps"] == ["encrypt", "decrypt", "sign", "verify"]
    assert len(base64.b64decode(r["key"]["n"])) == 256 and r["key"]["e"] == "AQAB" and r["key"]["d"] is None
    assert r["tags"] == {"team": "core", "flag": ""} and r["managed"] is None and r["releasePolicy"] is None
    assert r["attributes"]["enabled"] is True and r["attributes"]["recoveryLevel"] == "Recoverable+Purgeable"
    assert r["attributes"]["created"].endswith("+00:00")
    e = keys.ec["key"]
    assert e["kty"] == "EC" and e["crv"] == "P-256" and len(base64.b64decode(e["x"])) == 32 and e["n"] is None
    assert keys.oct["key"]["kty"] == "oct-HSM" and keys.oct["key"]["k"] is None  # symmetric keys never leave kluis


def test_show_list_set_attributes_and_id(kluis: KluisServer, keys: Keys) -> None:
    kid = keys.rsa["key"]["kid"]
    version = kid.rsplit("/", 1)[1]
    shown = kv(kluis, "show", "--vault-name", keys.vault, "-n", "rsa1", "--version", version)
    assert shown["key"] == keys.rsa["key"]
    assert kv(kluis, "show", "--id", kid)["key"]["kid"] == kid  # --id with a version

    listed = kv(kluis, "list", "--vault-name", keys.vault)
    assert {k["name"] for k in listed} == {"rsa1", "ec1", "oct1"}
    item = next(k for k in listed if k["name"] == "rsa1")
    assert item["kid"] == f"https://{keys.vault}.vault.azure.net/keys/rsa1"  # versionless, like az
    assert set(item) == {"attributes", "kid", "managed", "name", "releasePolicy", "tags"}
    assert len(kv(kluis, "list", "--vault-name", keys.vault, "--maxresults", "2")) == 2

    updated = kv(
        kluis, "set-attributes", "--id", f"https://{keys.vault}.vault.azure.net/keys/ec1",
        "--enabled", "false", "--tags", "env=prod", "owner=me", "--expires", "2031-01-02T03:04:05Z",
    )  # fmt: skip
    assert updated["attributes"]["enabled"] is False
    assert updated["attributes"]["expires"] == "2031-01-02T03:04:05+00:00"
    assert updated["tags"] == {"env": "prod", "owner": "me"}
    again = kv(kluis, "set-attributes", "--vault-name", keys.vault, "-n", "ec1", "--enabled", "--tags", "")
    assert again["attributes"]["enabled"] is True and not again["tags"]


def test_table_and_tsv_output(kluis: KluisServer, keys: Keys) -> None:
    table = kluis.cli("keyvault", "key", "list", "--vault-name", keys.vault, "-o", "table").stdout
    header = table.splitlines()[1]
    assert "Name" in header and "Kid" in header and "Enabled" in header
    assert all(name in table for name in ("rsa1", "ec1", "oct1"))
    tsv = kluis.cli("keyvault", "key", "show", "--vault-name", keys.vault, "-n", "rsa1", "-o", "tsv").stdout
    fields = tsv.rstrip("\n").split("\t")
    assert fields[:3] == ["rsa1", keys.rsa["key"]["kid"], "RSA"] and fields[-1] == "flag= team=core"


def test_encrypt_decrypt_round_trip(kluis: KluisServer, keys: Keys) -> None:
    where = ("--vault-name", keys.vault, "-n", "rsa1")
    enc = kv(kluis, "encrypt", *where, "-a", "RSA-OAEP-256", "--value", "attack at dawn", "--data-type", "plaintext")
    assert set(enc) == {"kid", "result", "algorithm", "iv", "tag", "aad"}
    assert enc["algorithm"] == "RSA-OAEP-256" and enc["kid"] == keys.rsa["key"]["kid"]
    assert len(base64.b64decode(enc["result"])) == 256
    dec = kv(kluis, "decrypt", *where, "-a", "RSA-OAEP-256", "--value", enc["result"], "--data-type", "plaintext")
    assert dec == {"kid": keys.rsa["key"]["kid"], "result": "attack at dawn", "algorithm": "RSA-OAEP-256"}
    dec64 = kv(kluis, "decrypt", "--id", keys.rsa["key"]["kid"], "-a", "RSA-OAEP-256", "--value", enc["result"])
    assert base64.b64decode(dec64["result"]) == b"attack at dawn"  # default --data-type base64

    # AES-GCM on the symmetric key: iv, tag and aad are hex, like az
    gcm = ("--vault-name", keys.vault, "-n", "oct1", "-a", "A256GCM")
    sealed = kv(kluis, "encrypt", *gcm, "--value", b64(b"\x00\x01secret"), "--aad", "cafe")
    assert (
        sealed["aad"] == "cafe" and len(bytes.fromhex(sealed["iv"])) == 12 and len(bytes.fromhex(sealed["tag"])) == 16
    )
    opened = kv(
        kluis, "decrypt", *gcm, "--value", sealed["result"], "--iv", sealed["iv"], "--tag", sealed["tag"],
        "--aad", "cafe",
    )  # fmt: skip
    assert base64.b64decode(opened["result"]) == b"\x00\x01secret"


def test_sign_verify_es256(kluis: KluisServer, keys: Keys) -> None:
    digest = hashlib.sha256(b"kluis signs this").digest()
    where = ("--vault-name", keys.vault, "-n", "ec1", "-a", "ES256")
    signed = kv(kluis, "sign", *where, "--digest", b64(digest))
    assert signed["algorithm"] == "ES256" and signed["keyId"] == keys.ec["key"]["kid"]
    sig = base64.b64decode(signed["signature"])
    assert len(sig) == 64
    # independent check with the public key the CLI printed at create time
    x, y = (int.from_bytes(base64.b64decode(keys.ec["key"][c]), "big") for c in ("x", "y"))
    public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    public.verify(der, b"kluis signs this", ec.ECDSA(hashes.SHA256()))

    ok = kv(kluis, "verify", *where, "--digest", b64(digest), "--signature", signed["signature"])
    assert ok["isValid"] is True
    other = b64(hashlib.sha256(b"something else").digest())
    assert kv(kluis, "verify", *where, "--digest", other, "--signature", signed["signature"])["isValid"] is False


def test_rotate_and_rotation_policy(kluis: KluisServer, keys: Keys, tmp_path: Path) -> None:
    where = ("--vault-name", keys.vault, "-n", "rot1")
    first = kv(kluis, "create", *where, "--kty", "EC")
    rotated = kv(kluis, "rotate", *where)
    assert rotated["key"]["kid"] != first["key"]["kid"] and rotated["key"]["kty"] == "EC"
    versions = kv(kluis, "list-versions", *where)
    assert {v["kid"] for v in versions} == {first["key"]["kid"], rotated["key"]["kid"]}

    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "lifetimeActions": [
                    {"trigger": {"timeAfterCreate": "P18M", "timeBeforeExpiry": None}, "action": {"type": "Rotate"}},
                    {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}},
                ],
                "attributes": {"expiryTime": "P2Y"},
            }
        )
    )
    updated = kv(kluis, "rotation-policy", "update", *where, "--value", str(policy))
    assert updated["id"] == f"https://{keys.vault}.vault.azure.net/keys/rot1/rotationpolicy"
    assert updated["expiresIn"] == "P2Y"
    assert updated["lifetimeActions"] == [
        {"action": "Rotate", "timeAfterCreate": "P18M", "timeBeforeExpiry": None},
        {"action": "Notify", "timeAfterCreate": None, "timeBeforeExpiry": "P30D"},
    ]
    shown = kv(kluis, "rotation-policy", "show", "--id", f"https://{keys.vault}.vault.azure.net/keys/rot1")
    assert shown["lifetimeActions"] == updated["lifetimeActions"] and shown["createdOn"] is not None


def test_random(kluis: KluisServer, keys: Keys) -> None:
    assert len(base64.b64decode(kv(kluis, "random", "--vault-name", keys.vault, "--count", "32")["value"])) == 32


def test_delete_list_deleted_recover_purge(kluis: KluisServer, keys: Keys) -> None:
    where = ("--vault-name", keys.vault, "-n", "gone1")
    kv(kluis, "create", *where, "--kty", "EC")
    deleted = kv(kluis, "delete", *where)
    assert deleted["recoveryId"] == f"https://{keys.vault}.vault.azure.net/deletedkeys/gone1"
    assert deleted["deletedDate"] and deleted["scheduledPurgeDate"] and set(deleted) > BUNDLE_KEYS
    listed = kv(kluis, "list-deleted", "--vault-name", keys.vault)
    assert [d["name"] for d in listed] == ["gone1"] and listed[0]["recoveryId"] == deleted["recoveryId"]
    shown = kv(kluis, "show-deleted", "--id", deleted["recoveryId"])
    assert shown["key"]["kid"] == deleted["key"]["kid"]
    recovered = kv(kluis, "recover", *where)
    assert recovered["key"]["kid"] == deleted["key"]["kid"] and "recoveryId" not in recovered

    kv(kluis, "delete", *where)
    assert kluis.cli("keyvault", "key", "purge", *where).stdout == ""
    res = kluis.cli("keyvault", "key", "show-deleted", *where, check=False)
    assert res.returncode == 1 and "(KeyNotFound)" in res.stderr


def test_backup_delete_purge_restore(kluis: KluisServer, keys: Keys, tmp_path: Path) -> None:
    where = ("--vault-name", keys.vault, "-n", "bak1")
    created = kv(kluis, "create", *where, "--kty", "RSA", "--tags", "keep=yes")
    blob = tmp_path / "bak1.blob"
    assert kluis.cli("keyvault", "key", "backup", *where, "--file", str(blob)).stdout == ""
    assert blob.stat().st_size > 0
    kv(kluis, "delete", *where)
    kluis.cli("keyvault", "key", "purge", *where)
    restored = kv(kluis, "restore", "--vault-name", keys.vault, "--file", str(blob))
    assert restored["key"]["kid"] == created["key"]["kid"] and restored["key"]["n"] == created["key"]["n"]
    assert restored["tags"] == {"keep": "yes"}


def test_import_pem(kluis: KluisServer, keys: Keys, tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "rsa.pem"
    pem.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    imported = kv(kluis, "import", "--vault-name", keys.vault, "-n", "imp-rsa", "--pem-file", str(pem))
    assert imported["key"]["kty"] == "RSA" and imported["key"]["d"] is None
    assert int.from_bytes(base64.b64decode(imported["key"]["n"]), "big") == private.public_key().public_numbers().n

    ec_private = ec.generate_private_key(ec.SECP384R1())
    sec1 = ec_private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    ec_imported = kv(kluis, "import", "--vault-name", keys.vault, "-n", "imp-ec", "--pem-string", sec1)
    assert ec_imported["key"]["crv"] == "P-384"
    assert (
        int.from_bytes(base64.b64decode(ec_imported["key"]["x"]), "big") == ec_private.public_key().public_numbers().x
    )


def test_errors_are_one_readable_line(kluis: KluisServer, keys: Keys) -> None:
    res = kluis.cli("keyvault", "key", "show", "--vault-name", keys.vault, "-n", "nosuchkey", check=False)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("ERROR: (KeyNotFound) A key with (name/id) nosuchkey was not found")
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    mixed = kluis.cli(
        "keyvault", "key", "show", "--vault-name", keys.vault, "--id", keys.rsa["key"]["kid"], check=False
    )
    assert mixed.returncode == 1 and "--id cannot be combined" in mixed.stderr


def test_default_vault_by_localhost_id(kluis: KluisServer) -> None:
    name = unique("dk")
    created = kv(kluis, "create", "--vault-name", "default", "-n", name, "--kty", "EC")
    assert created["key"]["kid"].startswith(f"https://default.vault.azure.net/keys/{name}/")
    version = created["key"]["kid"].rsplit("/", 1)[1]
    direct = kv(kluis, "show", "--id", f"{kluis.url}/keys/{name}/{version}")  # https://localhost:PORT: no proxy
    assert direct["key"]["kid"] == f"{kluis.url}/keys/{name}/{version}"
    assert direct["key"]["x"] == created["key"]["x"]

"""Pure helpers behind `kluis keyvault key`: argument parsing, --id parsing, PEM import, output shaping."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.keys import (
    DeletedKey,
    KeyProperties,
    KeyReleasePolicy,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyVaultKey,
)
from azure.keyvault.keys._generated.models import KeyAttributes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from kluis.cli.client import CliError
from kluis.cli.common import describe_error
from kluis.cli.key_args import expand_args, parse_datetime, parse_ops, parse_rotation_policy, parse_tags, pem_to_jwk
from kluis.cli.key_client import KeyRef, connect, parse_key_id, resolve_ref
from kluis.cli.key_output import key_bundle, key_item, rotation_policy_dict, table_rows
from kluis.cli.keys import key_app
from kluis.config import DataDir, ServerSettings

KID = "https://myvault.vault.azure.net/keys/k1/0123456789abcdef"
WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


# -- argument parsing ------------------------------------------------------------------------------
def test_expand_args_spreads_space_separated_lists() -> None:
    args = ["-n", "k", "--ops", "encrypt", "decrypt", "--tags", "a=1", "b", "--kty", "RSA"]
    assert expand_args(args) == [
        "-n", "k", "--ops", "encrypt", "--ops", "decrypt", "--tags", "a=1", "--tags", "b", "--kty", "RSA",
    ]  # fmt: skip
    assert expand_args(["--tags", "", "-n", "k"]) == ["--tags", "", "-n", "k"]  # "" clears tags
    assert expand_args(["--ops"]) == ["--ops"]  # click reports the missing value


def test_expand_args_three_state_flags() -> None:
    assert expand_args(["--disabled"]) == ["--disabled", "true"]
    assert expand_args(["--disabled", "--kty", "EC"]) == ["--disabled", "true", "--kty", "EC"]
    assert expand_args(["--enabled", "false", "-n", "k"]) == ["--enabled", "false", "-n", "k"]
    assert expand_args(["--exportable", "True"]) == ["--exportable", "True"]
    assert expand_args(["--", "--disabled"]) == ["--", "--disabled"]


def test_tags_ops_and_dates() -> None:
    assert parse_tags(None) is None
    assert parse_tags(["a=1", "b", "c=x=y"]) == {"a": "1", "b": "", "c": "x=y"}
    assert parse_tags([""]) == {}
    assert parse_ops(["encrypt", "decrypt,sign"]) == ["encrypt", "decrypt", "sign"]
    assert parse_ops(None) is None
    assert parse_datetime("2030-01-02T03:04:05Z") == WHEN
    assert parse_datetime("2030-01-02T03:04:05") == WHEN  # naive means UTC
    assert parse_datetime("2030-01-02T05:04:05+02:00") == WHEN
    assert parse_datetime(None) is None
    with pytest.raises(CliError, match="Invalid date/time"):
        parse_datetime("next tuesday")


# -- addressing ------------------------------------------------------------------------------------
def test_parse_key_id_vault_hosts() -> None:
    assert parse_key_id(KID) == KeyRef("myvault", "k1", "0123456789abcdef")
    assert parse_key_id("https://MyVault.vault.azure.net/keys/k1/") == KeyRef("myvault", "k1", None)
    assert parse_key_id("https://myvault.vault.azure.net/deletedkeys/k1") == KeyRef("myvault", "k1")
    assert parse_key_id("https://myvault.vault.azure.net") == KeyRef("myvault")
    assert parse_key_id("https://v2.localhost:8443/keys/k") == KeyRef("v2", "k")
    assert parse_key_id("https://v3.kv.example.com/keys/k", ["kv.example.com"]) == KeyRef("v3", "k")


def test_parse_key_id_default_vault_is_direct() -> None:
    assert parse_key_id("https://localhost:8443/keys/k/v") == KeyRef("default", "k", "v", direct=True)
    assert parse_key_id("https://127.0.0.1:8443/keys/k") == KeyRef("default", "k", None, direct=True)
    assert parse_key_id("https://a.b.vault.azure.net/keys/k").direct  # two labels: not a vault host


@pytest.mark.parametrize(
    "bad",
    [
        "http://myvault.vault.azure.net/keys/k",
        "myvault/keys/k",
        "https://myvault.vault.azure.net/secrets/s",
        "https://myvault.vault.azure.net/keys/a/b/c",
        "https://myvault.vault.azure.net/deletedkeys/a/b",
    ],
)
def test_parse_key_id_rejects(bad: str) -> None:
    with pytest.raises(CliError):
        parse_key_id(bad)


def test_resolve_ref() -> None:
    assert resolve_ref("v", "k", None, "ver") == KeyRef("v", "k", "ver")
    assert resolve_ref(None, None, KID, None) == KeyRef("myvault", "k1", "0123456789abcdef")
    assert resolve_ref(None, None, KID, "other").version == "other"
    assert resolve_ref("v", None, None, need_name=False) == KeyRef("v")
    with pytest.raises(CliError, match="cannot be combined"):
        resolve_ref("v", None, KID)
    with pytest.raises(CliError, match="--name"):
        resolve_ref("v", None, None)
    with pytest.raises(CliError, match="--vault-name"):
        resolve_ref(None, "k", None)
    with pytest.raises(CliError, match="must name a key"):
        resolve_ref(None, None, "https://myvault.vault.azure.net")


def _data_dir(tmp_path: Path, proxy_port: int) -> DataDir:
    d = DataDir(tmp_path).ensure()
    d.write_server(ServerSettings(port=9443, proxy_port=proxy_port))
    d.admin.write_text(json.dumps({"tenant": "t", "appId": "a", "password": "p"}))
    (d.tls).mkdir()
    return d


def test_connect_picks_proxy_or_direct(tmp_path: Path) -> None:
    proxied = connect(_data_dir(tmp_path / "p", 9080), KeyRef("named"))
    assert proxied.vault_url == "https://named.vault.azure.net"
    direct = _data_dir(tmp_path / "d", 0)
    assert connect(direct, KeyRef("default")).vault_url == "https://localhost:9443"
    with pytest.raises(CliError, match="proxy, which is off"):
        connect(direct, KeyRef("named"))


# -- rotation policy input -------------------------------------------------------------------------
def test_rotation_policy_rest_shape(tmp_path: Path) -> None:
    doc = {
        "lifetimeActions": [
            {"trigger": {"timeAfterCreate": "P30D", "timeBeforeExpiry": None}, "action": {"type": "rotate"}},
            {"trigger": {"timeBeforeExpiry": "P7D"}, "action": {"type": "Notify"}},
        ],
        "attributes": {"expiryTime": "P90D"},
    }
    actions, expires = parse_rotation_policy(json.dumps(doc))
    assert [(a.action, a.time_after_create, a.time_before_expiry) for a in actions] == [
        ("Rotate", "P30D", None),
        ("Notify", None, "P7D"),
    ]
    assert expires == "P90D"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    assert parse_rotation_policy(str(path)) == (actions, expires)


def test_rotation_policy_flat_snake_shape() -> None:
    actions, expires = parse_rotation_policy(
        '{"lifetime_actions": [{"action": "Rotate", "time_before_expiry": "P10D"}], "expires_in": "P60D"}'
    )
    assert (actions[0].action, actions[0].time_before_expiry, expires) == ("Rotate", "P10D", "P60D")


@pytest.mark.parametrize("bad", ["{}", "not json", '{"lifetimeActions": [{"action": {"type": "Explode"}}]}'])
def test_rotation_policy_rejects(bad: str) -> None:
    with pytest.raises(CliError):
        parse_rotation_policy(bad)


# -- PEM import ------------------------------------------------------------------------------------
def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, fmt: serialization.PrivateFormat) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_pem_rsa(fmt: serialization.PrivateFormat) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = pem_to_jwk("leading text\n" + _pem(key, fmt))
    nums = key.private_numbers()
    assert jwk["kty"] == "RSA" and _int(jwk["n"]) == nums.public_numbers.n and jwk["e"] == b"\x01\x00\x01"
    assert (_int(jwk["d"]), _int(jwk["p"]), _int(jwk["q"])) == (nums.d, nums.p, nums.q)
    assert (_int(jwk["dp"]), _int(jwk["dq"]), _int(jwk["qi"])) == (nums.dmp1, nums.dmq1, nums.iqmp)


@pytest.mark.parametrize(
    ("curve", "name", "size"),
    [(ec.SECP256R1(), "P-256", 32), (ec.SECP384R1(), "P-384", 48), (ec.SECP521R1(), "P-521", 66)],
)
@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_pem_ec(curve: ec.EllipticCurve, name: str, size: int, fmt: serialization.PrivateFormat) -> None:
    key = ec.generate_private_key(curve)
    jwk = pem_to_jwk(_pem(key, fmt))
    nums = key.private_numbers()
    assert jwk["kty"] == "EC" and jwk["crv"] == name
    assert all(len(jwk[c]) == size for c in ("d", "x", "y"))
    assert (_int(jwk["d"]), _int(jwk["x"]), _int(jwk["y"])) == (
        nums.private_value,
        nums.public_numbers.x,
        nums.public_numbers.y,
    )


def test_pem_encrypted_and_errors() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    ).decode()
    assert _int(pem_to_jwk(encrypted, "pw")["d"]) == key.private_numbers().private_value
    with pytest.raises(CliError, match="Import failed"):
        pem_to_jwk(encrypted)  # password missing
    with pytest.raises(CliError, match="Import failed"):
        pem_to_jwk(encrypted, "wrong")
    with pytest.raises(CliError, match="Import failed"):
        pem_to_jwk(_pem(key, serialization.PrivateFormat.PKCS8), "pw")  # not encrypted
    with pytest.raises(CliError, match="Import failed"):
        pem_to_jwk("hello")
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(CliError, match="Import failed"):
        pem_to_jwk(public.decode())


# -- output shaping --------------------------------------------------------------------------------
def _attrs() -> KeyAttributes:
    return KeyAttributes(enabled=True, expires=WHEN, created=WHEN, updated=WHEN, exportable=False)


def test_key_bundle_like_az() -> None:
    props = KeyProperties(KID, _attrs(), tags={"a": "b"})
    key = KeyVaultKey(KID, jwk={"kid": KID, "kty": "EC", "key_ops": ["sign"], "crv": "P-256", "x": b"\x01\xff"},
                      properties=props)  # fmt: skip
    out = key_bundle(key)
    assert set(out) == {"attributes", "key", "managed", "releasePolicy", "tags"}
    assert out["attributes"]["expires"] == "2030-01-02T03:04:05+00:00" and out["attributes"]["notBefore"] is None
    assert out["key"]["keyOps"] == ["sign"] and out["key"]["x"] == "Af8=" and out["key"]["n"] is None
    assert out["key"]["kid"] == KID and out["tags"] == {"a": "b"} and out["releasePolicy"] is None


def test_release_policy_and_deleted_shapes() -> None:
    policy = KeyReleasePolicy(b'{"version":"1.0.0"}', content_type="application/json", immutable=True)
    props = KeyProperties(KID, _attrs(), release_policy=policy)
    deleted = DeletedKey(
        props,
        deleted_date=WHEN,
        recovery_id="https://myvault.vault.azure.net/deletedkeys/k1",
        scheduled_purge_date=WHEN,
        key_id=KID,
        jwk={"kid": KID, "kty": "RSA"},
    )
    out = key_bundle(deleted)
    assert out["releasePolicy"] == {
        "contentType": "application/json",
        "encodedPolicy": '{"version":"1.0.0"}',
        "immutable": True,
    }
    assert out["recoveryId"].endswith("/deletedkeys/k1") and out["deletedDate"] == "2030-01-02T03:04:05+00:00"
    item = key_item(deleted)
    assert item["name"] == "k1" and item["kid"] == KID and item["scheduledPurgeDate"] == out["scheduledPurgeDate"]
    assert key_item(props)["name"] == "k1" and "recoveryId" not in key_item(props)


def test_rotation_policy_shape() -> None:
    policy = KeyRotationPolicy(
        policy_id="https://v.vault.azure.net/keys/k/rotationpolicy",
        lifetime_actions=[KeyRotationLifetimeAction("Rotate", time_after_create="P30D")],
        expires_in="P90D",
        created_on=WHEN,
    )
    assert rotation_policy_dict(policy) == {
        "createdOn": "2030-01-02T03:04:05+00:00",
        "expiresIn": "P90D",
        "id": "https://v.vault.azure.net/keys/k/rotationpolicy",
        "lifetimeActions": [{"action": "Rotate", "timeAfterCreate": "P30D", "timeBeforeExpiry": None}],
        "updatedOn": None,
    }


def test_table_rows() -> None:
    key = KeyVaultKey(KID, jwk={"kid": KID, "kty": "RSA"}, properties=KeyProperties(KID, _attrs(), tags={"b": "2"}))
    row = table_rows(key_bundle(key))
    assert row["Name"] == "k1" and row["Kid"] == KID and row["Kty"] == "RSA" and row["Tags"] == "b=2"
    assert table_rows([{"isValid": True, "keyId": KID}]) == [{"IsValid": True, "KeyId": KID}]
    policy = {"id": "x", "lifetimeActions": [{"action": "Notify", "timeBeforeExpiry": "P30D"}], "expiresIn": None}
    assert table_rows(policy)["LifetimeActions"] == "Notify before expiry P30D"


def test_describe_error() -> None:
    class Resp:
        status_code = 404
        reason = "Not Found"
        headers: dict[str, str] = {}  # noqa: RUF012

        def text(self) -> str:
            return json.dumps({"error": {"code": "KeyNotFound", "message": "A key with (name/id) x was not found."}})

    err = HttpResponseError(response=Resp())  # type: ignore[arg-type]
    assert describe_error(err) == "(KeyNotFound) A key with (name/id) x was not found."
    assert describe_error(ValueError("first line\nsecond")) == "first line"


# -- the CLI surface without a server --------------------------------------------------------------
def test_cli_without_server_is_one_error_line(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        key_app,
        ["create", "--vault-name", "v", "-n", "k", "--ops", "sign", "verify", "--disabled",
         "--tags", "a=1", "b", "--data-dir", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code == 1, res.output  # parsed fine (not a usage error), then no server
    assert "ERROR: No kluis server configured" in res.output


def test_b64_and_hex_inputs_are_checked(tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--vault-name", "v", "-n", "k", "-a", "A256GCM", "--data-dir", str(tmp_path)]
    res = runner.invoke(key_app, ["encrypt", *common, "--value", "!!!"])
    assert res.exit_code == 1 and "--value is not valid base64" in res.output
    res = runner.invoke(key_app, ["encrypt", *common, "--value", base64.b64encode(b"x").decode(), "--iv", "xyz"])
    assert res.exit_code == 1 and "--iv must be hexadecimal" in res.output

"""az-style argument parsing for `kluis keyvault key`: lists, three-state flags, tags, dates, policies, PEM."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kluis.cli.client import CliError
from kluis.cli.key_args import expand_args, parse_datetime, parse_ops, parse_rotation_policy, parse_tags, pem_to_jwk

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

"""``kluis seed`` / ``kluis export``: the seed format checked before anything is written, and a real round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kluis.cli.client import CliError
from kluis.cli.seed import ExportFormat, dump_seed, load_seed, seed_vault
from kluis.config import DataDir
from kluis.testing import KluisServer, Vault

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


def test_load_seed_reads_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("keys:\n  k: {kty: EC}\nsecrets:\n  s: {value: v}\n")
    (tmp_path / "s.json").write_text('{"secrets": {"s": {"value": "v"}}}')
    (tmp_path / "empty.yaml").write_text("")
    assert load_seed(tmp_path / "s.yaml") == {"keys": {"k": {"kty": "EC"}}, "secrets": {"s": {"value": "v"}}}
    assert load_seed(tmp_path / "s.json") == {"secrets": {"s": {"value": "v"}}}
    assert load_seed(tmp_path / "empty.yaml") == {}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "keys: [unclosed", "is not valid YAML"),
        ("bad.json", "{", "is not valid JSON"),
        ("list.yaml", "- a\n- b\n", "must be a mapping"),
        ("missing.yaml", None, "cannot read the seed file"),
    ],
)
def test_load_seed_errors_are_one_line(tmp_path: Path, name: str, text: str | None, message: str) -> None:
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(CliError, match=message) as e:
        load_seed(tmp_path / name)
    assert "\n" not in str(e.value)


BAD_SPECS: list[tuple[dict[str, Any], str]] = [
    ({"vaults": {}}, r"seed file: unknown field\(s\) vaults"),
    ({"keys": ["k"]}, "`keys` must map names"),
    ({"keys": {"k": {"colour": "red"}}}, r"keys\.k: unknown field\(s\) colour"),
    ({"keys": {"k": {"jwk": {"kty": "EC"}, "pem": "x"}}}, "give one of jwk, pem or pem_file"),
    ({"keys": {"k": {"pem": "x", "kty": "RSA"}}}, "kty comes from the imported key"),
    ({"keys": {"k": {"kty": "EC", "hsm": True}}}, "hsm is for imported keys"),
    ({"keys": {"k": {"ops": "sign"}}}, "ops must be a list"),
    ({"keys": {"k": {"size": "big"}}}, "size must be a number"),
    ({"keys": {"bad_name": {"kty": "EC"}}}, "keys.bad_name: The request URI contains an invalid name"),
    ({"secrets": {"": {"value": "v"}}}, "secrets.: The request URI contains an invalid name"),
    ({"secrets": {"s": {"value": "x" * 25_601}}}, "secrets.s.value is 25601 characters; a secret holds at most 25600"),
    ({"secrets": {"s": {"value": "v", "tags": {f"t{i}": "v" for i in range(16)}}}}, "at most 15 tags"),
    ({"keys": {"k": {"tags": {"t": "x" * 257}}}}, "at most 256 characters"),
    ({"keys": {"k": {"kty": "RSA-HSMX"}}}, "kty must be RSA, RSA-HSM, EC, EC-HSM or oct-HSM"),
    ({"keys": {"k": {"kty": "RSA", "size": 1024}}}, r"size 1024 is not a RSA key size \(2048, 3072, 4096\)"),
    ({"keys": {"k": {"kty": "oct-HSM", "size": 512}}}, r"size 512 is not a oct-HSM key size \(128, 192, 256\)"),
    ({"keys": {"k": {"kty": "EC", "size": 256}}}, r"size 256 is not a EC key size\."),
    ({"keys": {"k": {"kty": "EC", "curve": "P-999"}}}, "curve must be one of P-256, P-256K, P-384, P-521"),
    ({"keys": {"k": {"kty": "RSA", "curve": "P-256"}}}, "curve must be one of .*for EC keys"),
    ({"keys": {"k": {"tags": {"n": 1}}}}, "tags must map strings to strings"),
    ({"keys": {"k": {"expires": "soon"}}}, "expires must be an ISO 8601 time"),
    ({"keys": {"k": {"enabled": "yes"}}}, "enabled must be true or false"),
    ({"keys": {"k": {"jwk": {"kty": "EC", "x": 5}}}}, r"jwk\.x must be a base64url string"),
    ({"keys": {"k": {"pem": "not a pem"}}}, "Import failed"),
    ({"keys": {"k": {"pem_file": "nowhere.pem"}}}, "cannot read"),
    ({"secrets": {"s": {}}}, "has no value"),
    ({"secrets": {"s": {"value": 5}}}, "value must be a string"),
    ({"secrets": {"s": {"value": "v", "content_type": 1}}}, "content_type must be a string"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_a_bad_spec_is_refused_before_anything_connects(tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    # No server is configured in tmp_path: reaching the connect step would raise "No kluis server" instead.
    with pytest.raises(CliError, match=message):
        seed_vault(DataDir(tmp_path), "v", spec, base_dir=tmp_path)


def test_dump_seed_yaml_and_json_read_back() -> None:
    data = {"version": 1, "keys": {"k": {"kty": "EC", "expires": "2030-01-01T00:00:00+00:00"}}, "secrets": {}}
    assert yaml.safe_load(dump_seed(data)) == data  # a time-like string stays a string
    assert json.loads(dump_seed(data, ExportFormat.json)) == data


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _b64url(n: int, size: int) -> str:
    import base64

    return base64.urlsafe_b64encode(n.to_bytes(size, "big")).rstrip(b"=").decode()


@pytest.mark.slow
def test_seed_file_then_export_through_the_cli(kluis_server: KluisServer, kluis_vault: Vault, tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    numbers = ec_key.private_numbers()
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "rsa.pem").write_text(_pem(rsa_key))
    seed = {
        "keys": {
            "signing": {"kty": "EC", "curve": "P-384", "ops": ["sign", "verify"], "tags": {"team": "payments"}},
            "wrapping": {"kty": "RSA-HSM", "size": 3072, "enabled": False, "expires": "2030-01-01T00:00:00Z"},
            "from-pem": {"pem_file": "keys/rsa.pem", "ops": ["sign", "verify"]},
            "from-jwk": {
                "jwk": {
                    "kty": "EC", "crv": "P-256", "x": _b64url(numbers.public_numbers.x, 32),
                    "y": _b64url(numbers.public_numbers.y, 32), "d": _b64url(numbers.private_value, 32),
                },
                "hsm": True,
            },
        },
        "secrets": {"db-password": {"value": "hunter2", "content_type": "text/plain", "tags": {"env": "test"}}},
    }  # fmt: skip
    (tmp_path / "seed.yaml").write_text(yaml.safe_dump(seed, sort_keys=False))
    env = {**os.environ, "KLUIS_DATA_DIR": str(kluis_server.data_dir)}

    def kluis(*args: str) -> str:
        res = subprocess.run(
            [sys.executable, "-m", "kluis", *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    made = json.loads(kluis("seed", str(tmp_path / "seed.yaml"), "--vault-name", kluis_vault.name))
    assert made == {"keys": ["signing", "wrapping", "from-pem", "from-jwk"], "secrets": ["db-password"]}

    exported = yaml.safe_load(kluis("export", "--vault-name", kluis_vault.name))
    keys = exported["keys"]
    assert keys["signing"]["kty"] == "EC" and keys["signing"]["curve"] == "P-384"
    assert keys["signing"]["ops"] == ["sign", "verify"] and keys["signing"]["tags"] == {"team": "payments"}
    assert keys["wrapping"]["kty"] == "RSA-HSM" and keys["wrapping"]["size"] == 3072
    assert keys["wrapping"]["enabled"] is False and keys["wrapping"]["expires"].startswith("2030-01-01T00:00:00")
    public_n = rsa_key.public_key().public_numbers().n
    assert keys["from-pem"]["public_jwk"]["n"] == _b64url(public_n, 256) and keys["from-pem"]["size"] == 2048
    assert (
        keys["from-jwk"]["kty"] == "EC-HSM"
        and keys["from-jwk"]["public_jwk"]["x"] == seed["keys"]["from-jwk"]["jwk"]["x"]
    )
    for entry in keys.values():
        assert not set(entry.get("public_jwk", {})) & set(PRIVATE_MEMBERS)  # never private material
    assert exported["secrets"]["db-password"] == {
        "content_type": "text/plain",
        "enabled": True,
        "tags": {"env": "test"},
    }

    out = tmp_path / "with-values.json"
    kluis("export", "--vault-name", kluis_vault.name, "--include-secret-values", "-f", "json", "--file", str(out))
    assert json.loads(out.read_text())["secrets"]["db-password"]["value"] == "hunter2"
    assert out.stat().st_mode & 0o777 == 0o600

    # An export seeds another vault: same kinds of keys (new material), same secrets.
    other = kluis_server.create_vault()
    try:
        assert other.seed(out) == {"keys": sorted(keys), "secrets": ["db-password"]}
        again = other.export(include_secret_values=True)
        for name, entry in keys.items():
            assert {k: v for k, v in again["keys"][name].items() if k != "public_jwk"} == {
                k: v for k, v in entry.items() if k != "public_jwk"
            }
        assert again["keys"]["signing"]["public_jwk"] != keys["signing"]["public_jwk"]
        assert again["secrets"] == json.loads(out.read_text())["secrets"]
    finally:
        kluis_server.delete_vault(other)


@pytest.mark.slow
def test_seed_errors_are_one_line(kluis_server: KluisServer, tmp_path: Path) -> None:
    (tmp_path / "seed.yaml").write_text("keys:\n  k: {kty: EC}\n")
    res = subprocess.run(
        [sys.executable, "-m", "kluis", "seed", str(tmp_path / "seed.yaml"), "--vault-name", "nosuchvault"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "KLUIS_DATA_DIR": str(kluis_server.data_dir)},
    )  # fmt: skip
    assert res.returncode == 1 and len(res.stderr.splitlines()) == 1 and res.stderr.startswith("ERROR: ")


def test_hsm_keys_for_a_standard_vault_are_refused_before_anything_is_written(kluis_server: KluisServer) -> None:
    """A new-user tester's find: k2 (EC) was created, then k (RSA-HSM) refused by the standard vault,
    while README says the whole file is checked before anything is written."""
    vault = kluis_server.create_vault(sku="standard")
    spec = {"keys": {"k2": {"kty": "EC"}, "k": {"kty": "RSA-HSM"}}, "secrets": {"s": {"value": "v"}}}
    with pytest.raises(CliError, match=r"keys\.k: HSM-protected keys need a premium vault .*nothing was written"):
        seed_vault(DataDir(kluis_server.data_dir), vault.name, spec)
    assert not any(vault.export().get(kind) for kind in ("keys", "secrets"))  # nothing at all
    premium = kluis_server.create_vault()
    assert seed_vault(DataDir(kluis_server.data_dir), premium.name, spec) == {"keys": ["k2", "k"], "secrets": ["s"]}


def test_names_held_by_deleted_objects_are_refused_before_anything_is_written(kluis_server: KluisServer) -> None:
    """An attacker's find: a deleted (not purged) secret's name made the seed fail after ka and sa were
    written. Refusals the checks cannot foresee name what was written before them."""
    vault = kluis_server.create_vault()
    data = DataDir(kluis_server.data_dir)
    seed_vault(data, vault.name, {"secrets": {"gone": {"value": "old"}}})
    vault.secret_client().begin_delete_secret("gone").result()
    spec = {"keys": {"ka": {"kty": "EC"}}, "secrets": {"sa": {"value": "a"}, "gone": {"value": "b"}}}
    with pytest.raises(CliError, match=r"secrets\.gone: a deleted secret holds this name .*nothing was written"):
        seed_vault(data, vault.name, spec)
    assert not any(vault.export().get(kind) for kind in ("keys", "secrets"))
    late = {"keys": {"kb": {"kty": "EC"}, "kc": {"kty": "EC", "ops": ["encrypt"]}}}  # EC keys cannot encrypt
    with pytest.raises(CliError, match=r"keys\.kc: .*\(written before it: keys kb\)"):
        seed_vault(data, vault.name, late)

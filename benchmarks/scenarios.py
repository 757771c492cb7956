"""Key setup over the API, and the request shape of every measured kluis operation.

Setup uses the data plane like any client: create an RSA-2048, an EC P-256 and an AES-256 (oct)
key, encrypt and wrap once to have a ciphertext to decrypt and a wrapped key to unwrap, and
create 25 more keys so that a list page is full. Crypto requests name the key version (as the
SDK's CryptographyClient does with a full ``kid``).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass

from benchmarks.load import Scenario
from benchmarks.server import KluisProcess

__all__ = ["API", "OPERATIONS", "BenchKeys", "kluis_scenarios", "prepare_keys", "scaling_scenarios"]

API = "api-version=7.6"

# name -> (label in the table, HTTP method of the bare ceiling)
OPERATIONS: dict[str, tuple[str, str]] = {
    "get_key": ("get key (RSA-2048)", "GET"),
    "sign_ps256": ("RSA-2048 sign PS256", "POST"),
    "decrypt_rsa_oaep256": ("RSA-2048 decrypt RSA-OAEP-256", "POST"),
    "unwrap_rsa_oaep256": ("RSA-2048 unwrap RSA-OAEP-256", "POST"),
    "sign_es256": ("EC P-256 sign ES256", "POST"),
    "encrypt_a256gcm": ("AES-256-GCM encrypt (oct)", "POST"),
    "list_keys": ("list keys (page of 25)", "GET"),
    "create_ec": ("create EC P-256 key", "POST"),
    "create_rsa": ("create RSA-2048 key (pool)", "POST"),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class BenchKeys:
    rsa_version: str
    ec_version: str
    oct_version: str
    ciphertext: str
    wrapped: str


def _version(kid: str) -> str:
    return kid.rstrip("/").rsplit("/", 1)[-1]


def prepare_keys(server: KluisProcess, *, list_fill: int = 25) -> BenchKeys:
    with server.client() as c:

        def post(path: str, body: dict[str, object]) -> dict[str, object]:
            r = c.post(path, json=body)
            if r.status_code != 200:
                raise RuntimeError(f"setup {path}: {r.status_code} {r.text}")
            return dict(r.json())

        rsa = post("/keys/bench-rsa/create", {"kty": "RSA", "key_size": 2048})
        ec = post("/keys/bench-ec/create", {"kty": "EC", "crv": "P-256"})
        oct_ = post("/keys/bench-oct/create", {"kty": "oct", "key_size": 256})
        rsa_v = _version(str(rsa["key"]["kid"]))  # type: ignore[index]
        secret = b64url(os.urandom(32))
        ct = post(f"/keys/bench-rsa/{rsa_v}/encrypt", {"alg": "RSA-OAEP-256", "value": secret})
        wrapped = post(f"/keys/bench-rsa/{rsa_v}/wrapkey", {"alg": "RSA-OAEP-256", "value": secret})
        for i in range(list_fill):
            post(f"/keys/bench-list-{i:02d}/create", {"kty": "EC", "crv": "P-256"})
        return BenchKeys(
            rsa_version=rsa_v,
            ec_version=_version(str(ec["key"]["kid"])),  # type: ignore[index]
            oct_version=_version(str(oct_["key"]["kid"])),  # type: ignore[index]
            ciphertext=str(ct["value"]),
            wrapped=str(wrapped["value"]),
        )


def _body(**fields: object) -> str:
    return json.dumps(fields, separators=(",", ":"))


def kluis_scenarios(keys: BenchKeys, token: str, *, create_rsa_rate: float, salt: str = "") -> dict[str, Scenario]:
    """Every measured operation; ``salt`` keeps created key names unique across repeated runs."""
    auth = (("Authorization", f"Bearer {token}"),)
    digest = b64url(os.urandom(32))
    rsa, ec, oct_ = (
        f"/keys/bench-rsa/{keys.rsa_version}",
        f"/keys/bench-ec/{keys.ec_version}",
        (f"/keys/bench-oct/{keys.oct_version}"),
    )
    return {
        "get_key": Scenario("get_key", "GET", f"/keys/bench-rsa/?{API}", headers=auth),
        "sign_ps256": Scenario(
            "sign_ps256", "POST", f"{rsa}/sign?{API}", _body(alg="PS256", value=digest), headers=auth
        ),
        "decrypt_rsa_oaep256": Scenario(
            "decrypt_rsa_oaep256",
            "POST",
            f"{rsa}/decrypt?{API}",
            _body(alg="RSA-OAEP-256", value=keys.ciphertext),
            headers=auth,
        ),
        "unwrap_rsa_oaep256": Scenario(
            "unwrap_rsa_oaep256",
            "POST",
            f"{rsa}/unwrapkey?{API}",
            _body(alg="RSA-OAEP-256", value=keys.wrapped),
            headers=auth,
        ),
        "sign_es256": Scenario(
            "sign_es256", "POST", f"{ec}/sign?{API}", _body(alg="ES256", value=digest), headers=auth
        ),
        "encrypt_a256gcm": Scenario(
            "encrypt_a256gcm", "POST", f"{oct_}/encrypt?{API}", _body(alg="A256GCM", value=digest), headers=auth
        ),
        "list_keys": Scenario("list_keys", "GET", f"/keys?{API}&maxresults=25", headers=auth),
        "create_ec": Scenario(
            "create_ec",
            "POST",
            f"/keys/new-ec{salt}-{{}}/create?{API}",
            _body(kty="EC", crv="P-256"),
            headers=auth,
            vary="seq",
        ),
        # Paced, on one connection: the pool is for bursts at a sane rate, not for an endless flood
        # (a flood measures RSA key generation, which the raw ceiling already shows).
        "create_rsa": Scenario(
            "create_rsa",
            "POST",
            f"/keys/new-rsa{salt}-{{}}/create?{API}",
            _body(kty="RSA", key_size=2048),
            headers=auth,
            vary="seq",
            connections=1,
            delay_ms=1000.0 / create_rsa_rate,
        ),
    }


SCALING_HOT_KEYS = 10


def scaling_scenarios(token: str, *, stored: int, ec_version: str) -> dict[str, Scenario]:
    """The same load at every size (gets over the same 10 keys, signs with one fixed EC key), plus a
    ``get_key_cold`` load spread over *all* stored keys, reported for information: its working set
    grows with the number of keys, so it measures lookups that miss every cache, not cost per key."""
    auth = (("Authorization", f"Bearer {token}"),)
    digest = b64url(os.urandom(32))
    return {
        "get_key": Scenario(
            "get_key",
            "GET",
            f"/keys/bulk-{{}}/?{API}",
            headers=auth,
            vary="rand",
            rand_range=min(stored, SCALING_HOT_KEYS),
            rand_width=7,
        ),
        "get_key_cold": Scenario(
            "get_key_cold", "GET", f"/keys/bulk-{{}}/?{API}", headers=auth, vary="rand", rand_range=stored, rand_width=7
        ),
        "sign_es256": Scenario(
            "sign_es256",
            "POST",
            f"/keys/bench-ec/{ec_version}/sign?{API}",
            _body(alg="ES256", value=digest),
            headers=auth,
        ),
    }

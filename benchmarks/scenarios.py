"""Every measured kluis operation, in one registry: its setup over the API and its request shape.

An operation is declared once, with :func:`operation`, and that declaration is all a new one
needs (the runner, the ceilings, the baseline comparison and the report pick it up)::

    def _secret(api: Api) -> dict[str, str]:          # runs once per server, before any load
        api.call("PUT", "/secrets/bench-secret", value="x" * 32)
        return {}

    @operation("get_secret", "get secret", setup=_secret)
    def _get_secret(f: Fixture) -> Scenario:
        return f.get("/secrets/bench-secret/")

A *setup* creates what requests need, like any client would, and returns names for the fixture
(e.g. ``{"rsa": "/keys/bench-rsa/<version>"}``); setups shared by several operations run once.
The request's HTTP method also picks the bare ceiling (GET or POST); ``raw`` names the
``cryptography`` primitive of the raw ceiling (:mod:`benchmarks.raw`); a paced scenario
(``delay_ms``) is not compared with any ceiling. Crypto requests name the key version (as the
SDK's CryptographyClient does with a full ``kid``).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from benchmarks.load import Scenario
from benchmarks.server import KluisProcess

__all__ = [
    "API",
    "BASELINE_OPS",
    "OPERATIONS",
    "Api",
    "Fixture",
    "Operation",
    "operation",
    "prepare",
    "scaling_scenarios",
]

API = "api-version=7.6"
BASELINE_OPS = ("get_key", "sign_ps256")  # compared with a --baseline checkout unless --baseline-ops says otherwise


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Api:
    """Setup calls on a server's data plane (a keep-alive client with the admin's token)."""

    client: httpx.Client

    def call(self, method: str, path: str, **body: object) -> dict[str, Any]:
        """``method path`` with a JSON ``body``; the answer's JSON. RuntimeError unless 200."""
        r = self.client.request(method, path, json=body)
        if r.status_code != 200:
            raise RuntimeError(f"setup {method} {path}: {r.status_code} {r.text}")
        return dict(r.json())


@dataclass(frozen=True)
class Fixture:
    """What requests are built from: the bearer token and the names the setups returned."""

    token: str
    values: dict[str, str] = field(default_factory=dict)
    paced_rate: float = 10.0  # requests per second of paced operations (--create-rsa-rate)
    digest: str = field(default_factory=lambda: b64url(os.urandom(32)))

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def _scenario(self, method: str, path: str, body: str | None, **kw: Any) -> Scenario:
        sep = "&" if "?" in path else "?"
        auth = (("Authorization", f"Bearer {self.token}"),)
        return Scenario("", method, f"{path}{sep}{API}", body, headers=auth, **kw)

    def get(self, path: str, **kw: Any) -> Scenario:
        """A GET of ``path`` (``?api-version`` is added); ``kw`` as :class:`Scenario`'s fields."""
        return self._scenario("GET", path, None, **kw)

    def post(self, path: str, body: dict[str, object], **kw: Any) -> Scenario:
        """A POST of ``body`` as compact JSON to ``path``; ``kw`` as :class:`Scenario`'s fields."""
        return self._scenario("POST", path, json.dumps(body, separators=(",", ":")), **kw)


Setup = Callable[[Api], dict[str, str]]


@dataclass(frozen=True)
class Operation:
    name: str
    label: str  # in the table and chart
    build: Callable[[Fixture], Scenario]
    setup: tuple[Setup, ...] = ()
    raw: str | None = None  # raw-cryptography primitive of the ceiling

    def scenario(self, fixture: Fixture) -> Scenario:
        return replace(self.build(fixture), name=self.name)


OPERATIONS: dict[str, Operation] = {}


def operation(
    name: str, label: str, *, setup: Setup | tuple[Setup, ...] = (), raw: str | None = None
) -> Callable[[Callable[[Fixture], Scenario]], Callable[[Fixture], Scenario]]:
    """Register the decorated request builder as operation ``name`` (in declaration order)."""

    def register(build: Callable[[Fixture], Scenario]) -> Callable[[Fixture], Scenario]:
        if name in OPERATIONS:
            raise ValueError(f"operation {name!r} declared twice")
        OPERATIONS[name] = Operation(name, label, build, setup if isinstance(setup, tuple) else (setup,), raw)
        return build

    return register


def prepare(server: KluisProcess, ops: list[str], *, paced_rate: float = 10.0) -> Fixture:
    """Run the setups of ``ops`` on ``server`` (each distinct setup once); the fixture for their requests.

    RuntimeError when a setup call is refused."""
    setups = list(dict.fromkeys(s for op in ops for s in OPERATIONS[op].setup))
    values: dict[str, str] = {}
    with server.client() as c:
        api = Api(c)
        for setup in setups:
            values.update(setup(api))
    return Fixture(server.token(), values, paced_rate)


# -- setups ---------------------------------------------------------------------------------------
def _version(kid: str) -> str:
    return kid.rstrip("/").rsplit("/", 1)[-1]


def _key(api: Api, name: str, **body: object) -> str:
    """Create key ``name``; its versioned path ``/keys/<name>/<version>``."""
    created = api.call("POST", f"/keys/{name}/create", **body)
    return f"/keys/{name}/{_version(str(created['key']['kid']))}"


def _rsa_key(api: Api) -> dict[str, str]:
    rsa = _key(api, "bench-rsa", kty="RSA", key_size=2048)
    secret = b64url(os.urandom(32))
    ct = api.call("POST", f"{rsa}/encrypt", alg="RSA-OAEP-256", value=secret)
    wrapped = api.call("POST", f"{rsa}/wrapkey", alg="RSA-OAEP-256", value=secret)
    return {"rsa": rsa, "ciphertext": str(ct["value"]), "wrapped": str(wrapped["value"])}


def _ec_key(api: Api) -> dict[str, str]:
    return {"ec": _key(api, "bench-ec", kty="EC", crv="P-256")}


def _oct_key(api: Api) -> dict[str, str]:
    """An AES key as a vault holds one: oct-HSM, on the (premium) default vault; vaults refuse software oct."""
    return {"oct": _key(api, "bench-oct", kty="oct-HSM", key_size=256)}


def _secret(api: Api) -> dict[str, str]:
    """A secret the size of a typical connection string."""
    api.call("PUT", "/secrets/bench-secret", value="Server=db.example;User=app;Password=" + b64url(os.urandom(24)))
    return {}


def _list_page(api: Api, fill: int = 25) -> dict[str, str]:
    for i in range(fill):
        _key(api, f"bench-list-{i:02d}", kty="EC", crv="P-256")
    return {}


# -- operations (table order) ---------------------------------------------------------------------
# Creates use vary="seq": the load generator fills ``{}`` with a name unique to the run.


@operation("get_key", "get key (RSA-2048)", setup=_rsa_key)
def _get_key(f: Fixture) -> Scenario:
    return f.get("/keys/bench-rsa/")


@operation("get_secret", "get secret (value)", setup=_secret)
def _get_secret(f: Fixture) -> Scenario:
    return f.get("/secrets/bench-secret/")


@operation("sign_ps256", "RSA-2048 sign PS256", setup=_rsa_key, raw="rsa_pss_sign")
def _sign_ps256(f: Fixture) -> Scenario:
    return f.post(f"{f['rsa']}/sign", {"alg": "PS256", "value": f.digest})


@operation("decrypt_rsa_oaep256", "RSA-2048 decrypt RSA-OAEP-256", setup=_rsa_key, raw="rsa_oaep_decrypt")
def _decrypt(f: Fixture) -> Scenario:
    return f.post(f"{f['rsa']}/decrypt", {"alg": "RSA-OAEP-256", "value": f["ciphertext"]})


@operation("unwrap_rsa_oaep256", "RSA-2048 unwrap RSA-OAEP-256", setup=_rsa_key, raw="rsa_oaep_decrypt")
def _unwrap(f: Fixture) -> Scenario:
    return f.post(f"{f['rsa']}/unwrapkey", {"alg": "RSA-OAEP-256", "value": f["wrapped"]})


@operation("sign_es256", "EC P-256 sign ES256", setup=_ec_key, raw="ecdsa_p256_sign")
def _sign_es256(f: Fixture) -> Scenario:
    return f.post(f"{f['ec']}/sign", {"alg": "ES256", "value": f.digest})


@operation("encrypt_a256gcm", "AES-256-GCM encrypt (oct-HSM)", setup=_oct_key, raw="aes256_gcm_encrypt")
def _encrypt_gcm(f: Fixture) -> Scenario:
    return f.post(f"{f['oct']}/encrypt", {"alg": "A256GCM", "value": f.digest})


@operation("list_keys", "list keys (page of 25)", setup=_list_page)
def _list_keys(f: Fixture) -> Scenario:
    return f.get("/keys?maxresults=25")


@operation("create_ec", "create EC P-256 key", raw="ec_p256_generate")
def _create_ec(f: Fixture) -> Scenario:
    return f.post("/keys/new-ec-{}/create", {"kty": "EC", "crv": "P-256"}, vary="seq")


@operation("create_rsa", "create RSA-2048 key (pool)")
def _create_rsa(f: Fixture) -> Scenario:
    # Paced, on one connection: the pool is for bursts at a sane rate, not for an endless flood
    # (a flood measures RSA key generation, which the raw ceiling already shows).
    body = {"kty": "RSA", "key_size": 2048}
    return f.post("/keys/new-rsa-{}/create", body, vary="seq", connections=1, delay_ms=1000.0 / f.paced_rate)


# -- scaling run ----------------------------------------------------------------------------------
SCALING_HOT_KEYS = 10


def scaling_scenarios(f: Fixture, *, stored: int) -> dict[str, Scenario]:
    """The same load at every size (gets over the same 10 keys, signs with ``f['ec']``), plus a
    ``get_key_cold`` load spread over *all* stored keys, reported for information: its working set
    grows with the number of keys, so it measures lookups that miss every cache, not cost per key."""
    bulk = "/keys/bulk-{}/"  # benchmarks.bulk's names: bulk-0000000 ...
    scenarios = {
        "get_key": f.get(bulk, vary="rand", rand_range=min(stored, SCALING_HOT_KEYS), rand_width=7),
        "get_key_cold": f.get(bulk, vary="rand", rand_range=stored, rand_width=7),
        "sign_es256": f.post(f"{f['ec']}/sign", {"alg": "ES256", "value": f.digest}),
    }
    return {name: replace(s, name=name) for name, s in scenarios.items()}

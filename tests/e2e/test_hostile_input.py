"""Hostile input against a running kluis: numbers out of range, huge durations, oversized and
abandoned bodies, and one bad object among many for the scheduler. None may produce a 5xx or stop
a shared loop."""

from __future__ import annotations

import json
import socket
import sqlite3
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from azure.keyvault.keys import KeyClient, KeyRotationLifetimeAction, KeyRotationPolicy, KeyRotationPolicyAction
from cryptography.hazmat.primitives import serialization

from kluis.api.runtime import Runtime
from kluis.config import DataDir, ServerSettings
from tests.e2e.conftest import Principal, credential, unique
from tests.e2e.server import KluisServer

pytestmark = pytest.mark.slow

API = "api-version=7.6"


@pytest.fixture(scope="module")
def raw(kluis: KluisServer, admin: Principal, vault: str) -> Iterator[Callable[..., httpx.Response]]:
    """Raw HTTPS to the module's vault as the administrator (no SDK in between)."""
    token = credential(kluis, admin).get_token("https://vault.azure.net/.default").token
    with httpx.Client(base_url=kluis.url, verify=ssl.create_default_context(cafile=kluis.ca), timeout=30) as http:

        def call(method: str, path: str, body: Any = None, *, content: bytes | None = None, **headers: str) -> Any:
            h = {"authorization": f"Bearer {token}", "host": f"{vault}.vault.azure.net", **headers}
            if body is not None:
                content = json.dumps(body, allow_nan=True).encode()
                h.setdefault("content-type", "application/json")
            sep = "&" if "?" in path else "?"
            return http.request(method, f"{path}{sep}{API}", content=content, headers=h)

        yield call


def _bad(r: httpx.Response, status: int = 400) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    if status < 500 and r.content:
        return str(r.json()["error"]["message"])
    return ""


@pytest.mark.parametrize(
    "attributes",
    [{"exp": 1e308}, {"exp": 10**30}, {"nbf": -(10**30)}, {"exp": -1}, {"nbf": 253402300800}, {"exp": "soon"}],
)
def test_key_times_out_of_range_are_400(raw: Callable[..., httpx.Response], attributes: dict[str, Any]) -> None:
    message = _bad(raw("POST", f"/keys/{unique()}/create", {"kty": "EC", "attributes": attributes}))
    assert "attributes." in message


@pytest.mark.parametrize(
    "body",
    [
        {"kty": "RSA", "key_size": 10**30},
        {"kty": "RSA", "key_size": 1e308},
        {"kty": "RSA", "key_size": -2048},
        {"kty": "RSA", "public_exponent": 10**40},
        {"kty": "RSA", "public_exponent": 2**64 + 1},
        {"kty": "oct", "key_size": 2**63},
    ],
)
def test_key_sizes_out_of_range_are_400(raw: Callable[..., httpx.Response], body: dict[str, Any]) -> None:
    _bad(raw("POST", f"/keys/{unique()}/create", body))


@pytest.mark.parametrize("count", [0, 129, 10**30, 1e308, -1, "8"])
def test_random_byte_counts_out_of_range_are_400(raw: Callable[..., httpx.Response], count: Any) -> None:
    _bad(raw("POST", "/rng", {"count": count}))


@pytest.mark.parametrize("maxresults", ["0", "26", "1" * 1000, "1e3", "-5", "9" * 5000])
def test_maxresults_out_of_range_are_400(raw: Callable[..., httpx.Response], maxresults: str) -> None:
    _bad(raw("GET", f"/keys?maxresults={maxresults}"))


@pytest.mark.parametrize(
    "policy",
    [
        {"attributes": {"expiryTime": "P999999999999999D"}},
        {"attributes": {"expiryTime": "P" + "9" * 1000 + "D"}},
        {"attributes": {"expiryTime": "P1001Y"}},
        {"lifetimeActions": [{"trigger": {"timeAfterCreate": "P" + "1" * 25 + "D"}, "action": {"type": "Rotate"}}]},
        {"lifetimeActions": [{"trigger": {"timeBeforeExpiry": 30}, "action": {"type": "Notify"}}]},
        {"lifetimeActions": [{"trigger": {"timeAfterCreate": "P30D"}, "action": ["Rotate"]}]},
        {"attributes": {"expiryTime": 1e308}},
    ],
)
def test_rotation_policy_durations_out_of_range_are_400(
    raw: Callable[..., httpx.Response], policy: dict[str, Any]
) -> None:
    name = unique()
    assert raw("POST", f"/keys/{name}/create", {"kty": "EC"}).status_code == 200
    _bad(raw("PUT", f"/keys/{name}/rotationpolicy", policy))


def test_token_with_out_of_range_times_is_401(kluis: KluisServer, raw: Callable[..., httpx.Response]) -> None:
    """Validly signed tokens (kluis's own signing key) whose exp/nbf are NaN, huge or negative."""
    runtime = Runtime(DataDir(kluis.data_dir), ServerSettings(key_pool=0))
    try:
        key = serialization.load_der_private_key(runtime.signing_key_der, None)
        good = jwt.decode(_admin_token(kluis), options={"verify_signature": False})  # a real token's claims
        for claims in ({"exp": float("nan")}, {"exp": 1e308}, {"exp": 10**30}, {"nbf": -(10**30)}, {"iat": "x"}):
            token = jwt.encode({**good, **claims}, key, algorithm="ES256", headers={"kid": runtime.key_id})
            r = raw("GET", "/keys", authorization=f"Bearer {token}")
            assert r.status_code == 401, (claims, r.status_code, r.text)
            assert "www-authenticate" in r.headers
    finally:
        runtime.close()


def _admin_token(kluis: KluisServer) -> str:
    a = kluis.admin()
    return (
        credential(kluis, Principal(a["appId"], a["password"], a["tenant"]))
        .get_token("https://vault.azure.net/.default")
        .token
    )


def test_oversized_bodies_are_413_before_reading(kluis: KluisServer, raw: Callable[..., httpx.Response]) -> None:
    r = raw("POST", f"/keys/{unique()}/create", content=b"{" + b" " * (256 * 1024) + b"}")
    assert r.status_code == 413
    # chunked (no Content-Length): refused when the stream passes the limit, not after reading it all
    start = time.monotonic()
    r = raw("POST", f"/keys/{unique()}/create", content=iter([b"x" * 65536] * 64))
    assert r.status_code == 413 and time.monotonic() - start < 10
    # the token endpoint: 16 KiB, before any authentication
    with httpx.Client(verify=ssl.create_default_context(cafile=kluis.ca), timeout=30) as http:
        r = http.post(f"{kluis.url}/adfs/oauth2/token", content=iter([b"a" * 8192] * 8))
        assert r.status_code == 413
        # the largest valid data-plane body is admitted: a 25,600-character value fully \\u-escaped
        r = raw("POST", "/rng", content=json.dumps({"count": 8, "pad": "\u20ac" * 25600}, ensure_ascii=True).encode())
        assert r.status_code == 200


def _tls(kluis: KluisServer) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=kluis.ca)
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", kluis.port), timeout=10), server_hostname="localhost")


def test_clients_leaving_mid_body_are_not_errors(kluis: KluisServer) -> None:
    log = kluis.data_dir.parent / f"kluis-{kluis.port}.log"
    before = log.read_text()
    for _ in range(20):
        s = _tls(kluis)
        s.sendall(b"POST /adfs/oauth2/token HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n\r\ngrant")
        s.close()
    time.sleep(1)
    added = log.read_text()[len(before) :]
    assert "Traceback" not in added and "ERROR" not in added, added
    health = httpx.get(f"{kluis.url}/_kluis/health", verify=ssl.create_default_context(cafile=kluis.ca))
    assert health.status_code == 200


def _store_policy(kluis: KluisServer, vault: str, name: str, policy: str) -> None:
    """Write a policy straight into the database, as a kluis from before the range checks could have."""
    db = sqlite3.connect(kluis.data_dir / "kluis.db", timeout=30)
    try:
        with db:
            vault_id = db.execute("SELECT vault_id FROM vaults WHERE name = ?", (vault,)).fetchone()[0]
            n = db.execute(
                "UPDATE objects SET policy = ? WHERE vault_id = ? AND kind = 'key' AND name_ci = ?",
                (policy, vault_id, name.lower()),
            ).rowcount
            assert n == 1
    finally:
        db.close()


def test_one_bad_object_never_stops_the_scheduler(
    kluis: KluisServer,
    admin: Principal,
    make_vault: Callable[..., str],
    key_client_for: Callable[..., KeyClient],
) -> None:
    bad_vault, good_vault = make_vault(), make_vault()
    rotate_after_30 = KeyRotationPolicy(
        lifetime_actions=[KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P30D")],
        expires_in="P90D",
    )
    bad = key_client_for(admin, bad_vault)
    huge, corrupt = unique(), unique()
    for name in (huge, corrupt):
        bad.create_ec_key(name)
        bad.update_key_rotation_policy(name, rotate_after_30)
    good = key_client_for(admin, good_vault)
    due = unique()
    first = good.create_ec_key(due)
    good.update_key_rotation_policy(due, rotate_after_30)
    _store_policy(
        kluis,
        bad_vault,
        huge,
        '{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P30D"},"action":{"type":"Rotate"}}],'
        '"attributes":{"expiryTime":"P999999999999999D"}}',
    )
    _store_policy(kluis, bad_vault, corrupt, '{"lifetimeActions": [')
    kluis.cli("time", "set", "--offset", str(31 * 86400))
    try:
        res = kluis.cli("housekeeping", "-o", "json", check=False)
        assert res.returncode == 0, res.stderr
        later = key_client_for(admin, good_vault)
        assert later.get_key(due).properties.version != first.properties.version  # the due key rotated
        for name in (huge, corrupt):
            assert len(list(key_client_for(admin, bad_vault).list_properties_of_key_versions(name))) == 1
        again = kluis.cli("housekeeping", "-o", "json", check=False)  # still answering, nothing stuck
        assert again.returncode == 0, again.stderr
    finally:
        kluis.cli("time", "set", "--offset", "0")
    log = (kluis.data_dir.parent / f"kluis-{kluis.port}.log").read_text()
    assert corrupt in log  # the failure names the object

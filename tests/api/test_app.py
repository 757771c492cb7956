"""The ASGI app without a server process: routing, challenge, api-version, error shapes."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from kluis.api.runtime import Runtime
from tests.api.conftest import MANAGEMENT_AUDIENCE, auth, token


def test_unauthenticated_empty_post_gets_challenge_before_body_checks(client: TestClient, runtime: Runtime) -> None:
    r = client.post("/keys/k/create?api-version=7.6", content=b"", headers={"host": "myvault.vault.azure.net"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        f'Bearer authorization="https://login.microsoftonline.com/{runtime.tenant_id}", resource="https://vault.azure.net"'
    )
    assert r.json()["error"]["code"] == "Unauthorized"


def test_percent_encoded_api_version_name_is_decoded(client: TestClient, runtime: Runtime) -> None:
    r = client.get("/keys?api%2Dversion=7.6", headers=auth(runtime))
    assert r.status_code == 200 and r.json() == {"value": [], "nextLink": None}


def test_missing_api_version_is_400(client: TestClient, runtime: Runtime) -> None:
    r = client.get("/keys", headers=auth(runtime))
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadParameter"


def test_bad_bodies_are_400_never_500(client: TestClient, runtime: Runtime) -> None:
    h = auth(runtime)
    for body in (
        b"",
        b"{not json",
        b"[1,2]",
        b'{"kty": 5}',
        b'{"kty": "EC", "attributes": "x"}',
        b'{"kty":"EC","key_ops":["fly"]}',
    ):
        r = client.post("/keys/k/create?api-version=7.6", content=body, headers=h)
        assert r.status_code == 400, body
        assert set(r.json()["error"]) >= {"code", "message"}
    r = client.post("/keys/k/create?api-version=7.6", content=b"x" * (1024 * 1024 + 1), headers=h)
    assert r.status_code == 413


def test_unknown_vault_route_and_method(client: TestClient, runtime: Runtime) -> None:
    h = auth(runtime)
    assert (
        client.get("/keys?api-version=7.6", headers={**h, "host": "nosuch.vault.azure.net"}).json()["error"]["code"]
        == "VaultNotFound"
    )
    assert client.get("/keys/k/v/a/b?api-version=7.6", headers=h).status_code == 404
    assert client.put("/keys?api-version=7.6", headers=h).status_code == 405
    assert client.get("/nothing").status_code == 404
    assert client.get("/certificates?api-version=7.6", headers=h).status_code == 501


def test_create_then_get_latest_with_trailing_slash(client: TestClient, runtime: Runtime) -> None:
    h = auth(runtime)
    r = client.post("/keys/k1/create?api-version=7.6", json={"kty": "EC", "crv": "P-256"}, headers=h)
    assert r.status_code == 200
    kid = r.json()["key"]["kid"]
    assert kid.startswith("https://localhost:8443/keys/k1/")
    got = client.get("/keys/k1/?api-version=2025-07-01", headers=h).json()
    assert got["key"]["kid"] == kid and got["attributes"]["recoveryLevel"] == "Recoverable+Purgeable"
    assert "d" not in got["key"]


def test_management_api_requires_admin_audience(client: TestClient, runtime: Runtime) -> None:
    assert client.get("/_kluis/v1/groups").status_code == 401
    vault_token = {"authorization": f"Bearer {token(runtime)}"}
    assert client.get("/_kluis/v1/groups", headers=vault_token).status_code == 401
    mgmt = {"authorization": f"Bearer {token(runtime, MANAGEMENT_AUDIENCE)}"}
    assert [g["name"] for g in client.get("/_kluis/v1/groups", headers=mgmt).json()["value"]] == ["kluis"]


BAD_BODIES = [
    b"", b"null", b"[]", b'"x"', b"{", b"{}", b'{"alg": 5}', b'{"alg": "ES256", "value": 5}',
    b'{"alg": "ES256", "value": "!!not base64!!"}', b'{"alg": "NOPE", "value": "AAAA"}',
    b'{"alg": "RSA-OAEP", "value": "AAAA", "iv": 7}', b'{"key": "x"}', b'{"key": {"kty": "RSA", "n": 5}}',
    b'{"kty": "EC", "crv": 256}', b'{"kty": "RSA", "key_size": "big"}', b'{"attributes": {"exp": "soon"}}',
    b'{"tags": {"a": 1}}', b'{"tags": []}', b'{"key_ops": "sign"}', b'{"count": "x"}', b'{"count": 1e9}',
    b'{"value": 123}', b'{"lifetimeActions": [{"trigger": 5}]}', b'{"release_policy": 5}',
    b'{"target": 5}', b'\xff\xfe', b'{"alg": "ES256", "digest": "AA", "value": null}',
]  # fmt: skip


def test_bad_input_is_never_a_server_error(client: TestClient, runtime: Runtime) -> None:
    h = auth(runtime)
    r = client.post("/keys/ec/create?api-version=7.6", json={"kty": "EC"}, headers=h)
    version = r.json()["key"]["kid"].rsplit("/", 1)[1]
    client.post("/keys/aes/create?api-version=7.6", json={"kty": "oct-HSM"}, headers=h)
    routes = [
        ("POST", "/keys/n1/create"), ("PUT", "/keys/n2"), ("PATCH", "/keys/ec/"), ("PATCH", f"/keys/ec/{version}"),
        ("POST", f"/keys/ec/{version}/sign"), ("POST", "/keys/ec//verify"), ("POST", "/keys/aes//encrypt"),
        ("POST", "/keys/aes//decrypt"), ("POST", "/keys/aes//wrapkey"), ("POST", "/keys/aes//unwrapkey"),
        ("POST", "/keys/restore"), ("PUT", "/keys/ec/rotationpolicy"), ("POST", "/rng"), ("POST", "/keys/ec//release"),
    ]  # fmt: skip
    for method, path in routes:
        for body in BAD_BODIES:
            r = client.request(method, f"{path}?api-version=7.6", content=body, headers=h)
            assert r.status_code < 500, (method, path, body, r.status_code, r.text)
            if r.status_code >= 400:
                err = r.json()["error"]
                assert err["code"] and err["message"], (method, path, body)
            else:  # only documents whose members are all optional (PATCH, rotation policy) may succeed
                assert method == "PATCH" or path.endswith("/rotationpolicy"), (method, path, body, r.text)


_OCT_JWK = {"kty": "oct-HSM", "k": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "key_ops": ["encrypt", "decrypt"]}


def test_every_routed_request_passes_the_event_hook(client: TestClient, runtime: Runtime) -> None:
    from kluis.domain.events import OperationEvent

    events: list[OperationEvent] = []
    runtime.events.subscribe(events.append)
    h = auth(runtime)
    created = client.post("/keys/Hooked/create?api-version=7.6", json={"kty": "EC"}, headers=h)
    version = created.json()["key"]["kid"].rsplit("/", 1)[1]
    client.get(f"/keys/hooked/{version}?api-version=7.6", headers=h)
    client.get("/keys/missing?api-version=7.6", headers=h)
    client.get("/keys?api-version=7.6")  # unauthenticated: the challenge is an outcome too
    client.get("/nothing")  # no route: nothing to report
    rotated = client.post("/keys/hooked/rotate?api-version=7.6", headers=h).json()["key"]["kid"].rsplit("/", 1)[1]
    imported = client.put("/keys/imp?api-version=7.6", json={"key": _OCT_JWK, "Hsm": True}, headers=h)
    set_secret = client.put("/secrets/s?api-version=7.6", json={"value": "v"}, headers=h)
    # the version a write made is recorded (its audit record named none, as the route has none; tester)
    assert [(e.operation, e.status, e.object_name, e.version) for e in events] == [
        ("CreateKey", 200, "Hooked", version),
        ("GetKey", 200, "hooked", version),
        ("GetKey", 404, "missing", ""),
        ("GetKeys", 401, "", ""),
        ("RotateKey", 200, "hooked", rotated),
        ("ImportKey", 200, "imp", imported.json()["key"]["kid"].rsplit("/", 1)[1]),
        ("SetSecret", 200, "s", set_secret.json()["id"].rsplit("/", 1)[1]),
    ]
    first = events[0]
    assert first.vault == "default" and first.kind == "key" and first.caller_object_id == runtime.admin_object_id()
    assert first.request_id == created.headers["x-ms-request-id"] and first.duration > 0
    assert events[3].caller_object_id == ""
    # a restore (its route names no object) and an update or recover of the latest record the object's
    # name and the version they answer with (both were "" in the audit records; tester)
    del events[:]
    secret_version = set_secret.json()["id"].rsplit("/", 1)[1]
    for collection, name in (("keys", "hooked"), ("secrets", "s")):
        blob = client.post(f"/{collection}/{name}/backup?api-version=7.6", headers=h).json()["value"]
        client.delete(f"/{collection}/{name}?api-version=7.6", headers=h)
        client.delete(f"/deleted{collection}/{name}?api-version=7.6", headers=h)
        assert client.post(f"/{collection}/restore?api-version=7.6", json={"value": blob}, headers=h).status_code == 200
        client.patch(f"/{collection}/{name}?api-version=7.6", json={"tags": {"t": "1"}}, headers=h)
        client.delete(f"/{collection}/{name}?api-version=7.6", headers=h)
        client.post(f"/deleted{collection}/{name}/recover?api-version=7.6", headers=h)
    expected: list[tuple[str, int, str, str]] = []
    for title, stored, latest in (("Key", "Hooked", rotated), ("Secret", "s", secret_version)):
        name = stored.lower()
        expected += [
            (f"Backup{title}", 200, name, ""),
            (f"Delete{title}", 200, name, ""),
            (f"PurgeDeleted{title}", 204, name, ""),
            (f"Restore{title}", 200, stored, latest),
            (f"Update{title}", 200, name, latest),
            (f"Delete{title}", 200, name, ""),
            (f"RecoverDeleted{title}", 200, name, latest),
        ]
    assert [(e.operation, e.status, e.object_name, e.version) for e in events] == expected


@pytest.mark.parametrize(
    ("client", "peer", "info"),
    [
        ("127.0.0.1:50123", "127.0.0.1", "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;"),
        ("[::1]:50123", "::1", "conn_type=Ipv6;addr=::1;act_addr_fam=InterNetworkV6;"),
        (("10.0.0.7", 443), "10.0.0.7", "conn_type=Ipv4;addr=10.0.0.7;act_addr_fam=InterNetwork;"),
        (None, "", "conn_type=Ipv4;addr=;act_addr_fam=InterNetwork;"),
    ],
)
def test_network_info_names_the_client(client: object, peer: str, info: str) -> None:
    from kluis.api.app import SERVICE_VERSION, _network_info, _peer

    assert _peer(client) == peer and _network_info(peer) == info
    assert len(SERVICE_VERSION.split(".")) == 4


def _spied(rt: Runtime, *names: str) -> list[tuple[str, str]]:
    """Record (method, thread name) of every call of the key service's ``names``."""
    import threading

    seen: list[tuple[str, str]] = []
    for name in names:
        original = getattr(rt.keys, name)

        def spy(*args: object, _name: str = name, _original: object = original, **kwargs: object) -> object:
            seen.append((_name, threading.current_thread().name))
            return _original(*args, **kwargs)  # type: ignore[operator]

        setattr(rt.keys, name, spy)
    return seen


def test_with_an_executor_requests_run_off_the_loop_in_the_same_order(tmp_path: object) -> None:
    """``db_threads`` > 0 (PostgreSQL's default): the same answers, in the same order (401 before any
    body check, 413 after authorization), with the handlers of bodies on the executor's threads."""
    from pathlib import Path

    from kluis.api.app import KluisApp
    from kluis.config import DataDir, ServerSettings

    rt = Runtime(DataDir(Path(str(tmp_path)) / "d"), ServerSettings(key_pool=0, db_threads=2), bootstrap=True)
    try:
        assert rt.executor is not None
        seen = _spied(rt, "create_key", "get_key")
        client = TestClient(KluisApp(rt), base_url="https://localhost:8443")
        big = b"x" * (1024 * 1024 + 1)
        assert client.post("/keys/k/create?api-version=7.6", content=big).status_code == 401
        h = auth(rt)
        assert client.post("/keys/k/create?api-version=7.6", content=big, headers=h).status_code == 413
        made = client.post("/keys/k/create?api-version=7.6", json={"kty": "EC", "crv": "P-256"}, headers=h)
        assert made.status_code == 200
        got = client.get("/keys/k?api-version=7.6", headers=h)
        assert got.status_code == 200 and got.json()["key"]["kid"] == made.json()["key"]["kid"]
        assert client.get("/keys/nope?api-version=7.6", headers=h).status_code == 404
        assert client.get("/nothing").status_code == 404
        assert [n for n, _ in seen] == ["create_key", "get_key", "get_key"]
        assert seen[0][1].startswith("kluis-db")  # a body's handler: on the executor
        assert not seen[1][1].startswith("kluis-db")  # SQLite never misses in cache-only mode: on the loop
    finally:
        rt.close()


def test_reads_the_cache_cannot_answer_run_again_on_the_executor(tmp_path: object, postgres_url: str) -> None:
    """PostgreSQL: a GET is tried on the loop in cache-only mode; a miss runs it on an executor thread."""
    from pathlib import Path

    from kluis.api.app import KluisApp
    from kluis.config import DataDir, ServerSettings

    rt = Runtime(DataDir(Path(str(tmp_path)) / "d"), ServerSettings(key_pool=0, database=postgres_url), bootstrap=True)
    try:
        seen = _spied(rt, "get_key")
        client = TestClient(KluisApp(rt), base_url="https://localhost:8443")
        h = auth(rt)
        assert client.post("/keys/k/create?api-version=7.6", json={"kty": "EC"}, headers=h).status_code == 200
        assert client.get("/keys/k?api-version=7.6", headers=h).status_code == 200  # the write emptied the cache
        assert seen[-1][1].startswith("kluis-db")  # answered on the executor (the miss may come before the handler)
        seen.clear()
        assert client.get("/keys/k?api-version=7.6", headers=h).status_code == 200  # now cached
        assert len(seen) == 1 and not seen[0][1].startswith("kluis-db")
    finally:
        rt.close()


def test_with_an_executor_a_writes_events_are_emitted_off_the_loop_before_the_answer(tmp_path: object) -> None:
    """A successful write's audit record is committed before its answer; with an executor (PostgreSQL:
    a round trip and a WAL flush) that happens on an executor thread, never on the loop, so the loop
    serves other requests meanwhile. Reads and failed writes (buffered records) stay on the loop."""
    import threading
    from pathlib import Path

    from kluis.api.app import KluisApp
    from kluis.config import DataDir, ServerSettings
    from kluis.domain.events import OperationEvent

    rt = Runtime(DataDir(Path(str(tmp_path)) / "d"), ServerSettings(key_pool=0, db_threads=2), bootstrap=True)
    try:
        seen: list[tuple[str, int, str]] = []

        def subscriber(event: OperationEvent) -> None:
            seen.append((event.operation, event.status, threading.current_thread().name))

        rt.events.subscribe(subscriber)
        client = TestClient(KluisApp(rt), base_url="https://localhost:8443")
        h = auth(rt)
        assert client.post("/keys/k/create?api-version=7.6", json={"kty": "EC"}, headers=h).status_code == 200
        assert client.get("/keys/k?api-version=7.6", headers=h).status_code == 200
        assert client.post("/keys/k/create?api-version=7.6", json={"kty": "nope"}, headers=h).status_code == 400
        assert [(op, status) for op, status, _ in seen] == [("CreateKey", 200), ("GetKey", 200), ("CreateKey", 400)]
        assert seen[0][2].startswith("kluis-db")  # the write's record: on the executor, before the answer
        assert not seen[1][2].startswith("kluis-db") and not seen[2][2].startswith("kluis-db")
    finally:
        rt.close()

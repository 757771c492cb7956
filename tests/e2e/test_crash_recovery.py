"""Crash safety, repeated, on both backends: SIGKILL of every kluis process in the middle of a write-heavy
load from the official Python SDK, then a restart on the same data dir / database, several rounds.

Each round: several threads create keys and key versions, set secrets and new secret versions,
update tags and delete objects, each on names it alone writes, and record every write the client
saw acknowledged (what it returned: version, public key or secret value digest, tags, the response's
``x-ms-request-id``). At a random moment the test SIGKILLs the process group it started (the
supervisor and its workers; nothing is signalled by name), restarts kluis, and checks that:

- the answering server is the new one (new pid, the old processes gone, the port held by the new group);
- every acknowledged write is there with its content: key versions sign with the private key whose
  public half the create answered (verified here, locally), secrets read back equal, tags and
  deletions are as acknowledged;
- nothing is half-written: every version a listing shows can be fetched whole, a name has at most the
  one extra version of the write that was in flight at the kill, and no request anywhere answered 5xx;
- every acknowledged write has its audit record (by request id, status 2xx) and ``kluis audit verify``
  passes;
- the restarted server's log shows no error or traceback (a clean recovery).

The one write per thread that was in flight at the kill may or may not have happened; after each
check the test adopts what the server shows for it, so later rounds hold that state too.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.pipeline import PipelineResponse
from azure.identity import ClientSecretCredential
from azure.keyvault.keys import KeyClient, KeyProperties, KeyVaultKey
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
from azure.keyvault.secrets import SecretClient, SecretProperties
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from tests.cli.procfs import alive, children, listeners
from tests.e2e.server import KluisServer

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")]

ROUNDS = int(os.environ.get("KLUIS_CRASH_ROUNDS", "3"))  # kill/restart cycles per backend (more for a longer hunt)
THREADS = 6  # client threads writing at once
KILL_AFTER = (0.6, 1.8)  # seconds of load before the SIGKILL, drawn at random each round
SERVER_ARGS = ["--workers", "2", "--key-pool", "0", "--scheduler-interval", "3600"]
DIGEST = hashlib.sha256(b"kluis crash recovery").digest()
# Lines a cleanly recovering server never logs (its own one-line errors start with "ERROR:").
LOG_ALARMS = ("Traceback", "ERROR", "CRITICAL", "unhandled error", "corrupt", "malformed", "recover")


@dataclass
class Item:
    """What the client knows of one key or secret name: the acknowledged state, and the write in doubt."""

    kind: str  # "key" or "secret"
    name: str
    versions: dict[str, str] = field(default_factory=dict)  # version -> digest of its content as answered
    public: dict[str, tuple[int, int]] = field(default_factory=dict)  # key version -> (x, y) as answered
    order: list[str] = field(default_factory=list)  # versions in the order they were acknowledged
    tags: dict[str, str] = field(default_factory=dict)  # version -> the acknowledged tag value ("" none)
    deleted: bool = False
    doubt: tuple[str, ...] | None = None  # the write in flight at the kill: ("create",), ("update", v, t), ("delete",)
    unsigned: list[str] = field(default_factory=list)  # key versions not yet signed with since they were made


@dataclass
class Ack:
    """One acknowledged write, for the audit check."""

    operation: str
    name: str
    request_id: str


@dataclass
class Ledger:
    items: list[Item] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # unexpected errors before the kill (5xx, 4xx)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _ec_public(key: KeyVaultKey) -> tuple[str, tuple[int, int]]:
    """(digest of the answered public key, its (x, y) numbers) of an EC key as the SDK returned it."""
    jwk: Any = key.key  # JsonWebKey's fields are not in its type stubs
    x, y = jwk.x, jwk.y
    assert isinstance(x, bytes) and isinstance(y, bytes), f"{key.id}: no EC public key in the answer"
    return hashlib.sha256(x + y).hexdigest(), (int.from_bytes(x, "big"), int.from_bytes(y, "big"))


def _value_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class _Responses:
    """A ``raw_response_hook``: the request ids of the 2xx answers to one call (the first is the write's)."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, response: PipelineResponse[Any, Any]) -> None:
        http = response.http_response
        if 200 <= http.status_code < 300:
            self.ids.append(str(http.headers.get("x-ms-request-id", "")))

    @property
    def first(self) -> str:
        return self.ids[0] if self.ids else ""


@dataclass
class Clients:
    keys: KeyClient
    secrets: SecretClient
    credential: ClientSecretCredential
    server: KluisServer

    def crypto(self, key_id: str) -> CryptographyClient:
        return CryptographyClient(
            key_id, self.credential, verify_challenge_resource=False, connection_verify=self.server.ca, retry_total=0
        )


def _clients(server: KluisServer, credential: ClientSecretCredential) -> Clients:
    """SDK clients without retries: a request the kill cuts off is in doubt, never resent to the next server."""
    common: dict[str, Any] = {"verify_challenge_resource": False, "connection_verify": server.ca, "retry_total": 0}
    return Clients(
        KeyClient(server.url, credential, **common), SecretClient(server.url, credential, **common), credential, server
    )


def _credential(server: KluisServer) -> ClientSecretCredential:
    a = server.admin()
    return ClientSecretCredential("adfs", a["appId"], a["password"], authority=server.url, connection_verify=server.ca)


# -- the load ---------------------------------------------------------------------------------------------


def _write_once(c: Clients, ledger: Ledger, mine: list[Item], rng: random.Random, tag: str) -> None:
    """One random write by this thread, recorded in ``ledger`` once acknowledged (``doubt`` while in flight)."""
    live = [i for i in mine if not i.deleted]
    roll = rng.random()
    hook = _Responses()
    if roll < 0.45 or not live:  # a new version (of a new or an existing name)
        kind = "key" if rng.random() < 0.5 else "secret"
        same_kind = [i for i in live if i.kind == kind]
        if same_kind and rng.random() < 0.5:
            item = rng.choice(same_kind)
        else:
            item = Item(kind, f"{kind[0]}{tag}n{len(mine)}")
            with ledger.lock:
                ledger.items.append(item)
            mine.append(item)
        item.doubt = ("create",)
        if kind == "key":
            key = c.keys.create_ec_key(item.name, curve="P-256", raw_response_hook=hook)
            assert key.properties.version is not None
            version = key.properties.version
            assert key.id == f"{c.server.url}/keys/{item.name}/{version}", key.id
            item.versions[version], item.public[version] = _ec_public(key)
            item.unsigned.append(version)
            operation = "CreateKey"
        else:
            value = secrets.token_urlsafe(rng.randint(8, 200))
            secret = c.secrets.set_secret(item.name, value, raw_response_hook=hook)
            assert secret.value == value and secret.properties.version is not None
            version = secret.properties.version
            assert secret.id == f"{c.server.url}/secrets/{item.name}/{version}", secret.id
            item.versions[version] = _value_digest(value)
            operation = "SetSecret"
        item.order.append(version)
        item.tags[version] = ""
    elif roll < 0.85:  # new tags on an acknowledged version
        item = rng.choice(live)
        version = rng.choice(item.order)
        value = secrets.token_hex(4)
        item.doubt = ("update", version, value)
        got: KeyProperties | SecretProperties
        if item.kind == "key":
            got = c.keys.update_key_properties(item.name, version, tags={"t": value}, raw_response_hook=hook).properties
            operation = "UpdateKey"
        else:
            got = c.secrets.update_secret_properties(item.name, version, tags={"t": value}, raw_response_hook=hook)
            operation = "UpdateSecret"
        assert got.tags == {"t": value} and got.version == version
        item.tags[version] = value
    else:  # delete a name (soft delete: it stays recoverable)
        item = rng.choice(live)
        item.doubt = ("delete",)
        if item.kind == "key":
            c.keys.begin_delete_key(item.name, raw_response_hook=hook)  # answered: acknowledged; no polling wait
            operation = "DeleteKey"
        else:
            c.secrets.begin_delete_secret(item.name, raw_response_hook=hook)
            operation = "DeleteSecret"
        item.deleted = True
    item.doubt = None
    with ledger.lock:
        ledger.acks.append(Ack(operation, item.name, hook.first))


def _drive(c: Clients, ledger: Ledger, mine: list[Item], seed: int, tag: str, killing: threading.Event) -> int:
    """Write until the server dies under this thread; returns the number of acknowledged writes."""
    rng = random.Random(seed)
    done = 0
    while True:
        try:
            _write_once(c, ledger, mine, rng, tag)
            done += 1
        except Exception as e:  # the kill ends every thread with a connection error (no answer at all)
            if killing.is_set() and not isinstance(e, HttpResponseError):
                return done  # the write in flight stays in doubt
            with ledger.lock:  # an answer that is an error (a 5xx, an unexpected 4xx), or any error before the kill
                ledger.failures.append(f"thread {tag}: {type(e).__name__}: {e}"[:500])
            killing.wait()  # stop writing; the round still kills and checks (the write stays in doubt)
            return done


# -- the checks -------------------------------------------------------------------------------------------


def _sign_verifies(c: Clients, item: Item, version: str) -> None:
    x, y = item.public[version]
    signed = c.crypto(f"{c.server.url}/keys/{item.name}/{version}").sign(SignatureAlgorithm.es256, DIGEST)
    sig = signed.signature
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    public.verify(der, DIGEST, ec.ECDSA(Prehashed(hashes.SHA256())))  # the private key behind the acked public one


def _fetch(c: Clients, item: Item, version: str) -> tuple[str, tuple[int, int] | None, str]:
    """(content digest, public numbers for keys, tag value) of one version as the server has it now."""
    if item.kind == "key":
        key = c.keys.get_key(item.name, version)
        assert key.properties.version == version
        digest, public = _ec_public(key)
        return digest, public, (key.properties.tags or {}).get("t", "")
    secret = c.secrets.get_secret(item.name, version)
    assert secret.properties.version == version and secret.value is not None
    return _value_digest(secret.value), None, (secret.properties.tags or {}).get("t", "")


def _listed(c: Clients, item: Item) -> list[str] | None:
    """The versions a listing shows, or None when the name is not live (absent or deleted)."""
    try:
        if item.kind == "key":
            c.keys.get_key(item.name)
            return [str(p.version) for p in c.keys.list_properties_of_key_versions(item.name)]
        c.secrets.get_secret(item.name)
        return [str(p.version) for p in c.secrets.list_properties_of_secret_versions(item.name)]
    except ResourceNotFoundError:
        return None


def _deleted_version(c: Clients, item: Item) -> str | None:
    """The version a deleted name's deleted object shows, or None when there is no deleted object."""
    try:
        if item.kind == "key":
            return c.keys.get_deleted_key(item.name).properties.version
        return c.secrets.get_deleted_secret(item.name).properties.version
    except ResourceNotFoundError:
        return None


def _check_item(c: Clients, item: Item) -> str:
    """Assert ``item``'s acknowledged state on the server; adopt the outcome of its write in doubt.

    Returns "" (no write in doubt), "applied" or "not applied" (what became of the write in doubt).
    """
    doubt, item.doubt = item.doubt, None
    listed = _listed(c, item)
    if listed is None:
        if not item.versions:  # a first create in doubt that did not happen (this round or an earlier one)
            assert doubt == ("create",) or item.deleted, f"{item.kind} {item.name}: acknowledged, then absent"
            assert _deleted_version(c, item) is None
            item.deleted = True  # nothing there: never written again
            return "not applied" if doubt else ""
        assert item.deleted or doubt == ("delete",), f"{item.kind} {item.name} lost (acknowledged, now absent)"
        shown = _deleted_version(c, item)
        assert shown in item.versions, f"deleted {item.kind} {item.name} shows version {shown}"
        item.deleted = True
        return "applied" if doubt == ("delete",) else "not applied" if doubt else ""
    assert not item.deleted, f"{item.kind} {item.name}: its acknowledged delete was undone (or it was never made)"
    missing = set(item.versions) - set(listed)
    assert not missing, f"{item.kind} {item.name}: acknowledged versions {missing} are gone"
    extra = [v for v in listed if v not in item.versions]
    assert len(listed) == len(set(listed)), f"{item.kind} {item.name}: a version listed twice: {listed}"
    assert not extra or (doubt == ("create",) and len(extra) == 1), (
        f"{item.kind} {item.name}: versions nobody was acknowledged {extra} (in doubt: {doubt})"
    )
    outcome = "applied" if extra else "not applied" if doubt else ""
    for version in listed:  # every listed version is whole
        digest, public, tag = _fetch(c, item, version)
        if version in extra:  # the create in doubt happened: adopt it
            item.versions[version], item.tags[version] = digest, tag
            item.order.append(version)
            if public is not None:
                item.public[version] = public
                item.unsigned.append(version)
            continue
        assert digest == item.versions[version], f"{item.kind} {item.name}/{version}: content differs from its ack"
        doubted = doubt[2] if doubt is not None and doubt[0] == "update" and doubt[1] == version else None
        allowed = {item.tags[version], doubted}
        assert tag in allowed, f"{item.kind} {item.name}/{version}: tag {tag!r}, acknowledged {allowed}"
        if doubted is not None and tag == doubted:
            outcome = "applied"
        item.tags[version] = tag
    latest = c.keys.get_key(item.name) if item.kind == "key" else c.secrets.get_secret(item.name)
    assert latest.properties.version == item.order[-1] or latest.properties.version in extra, (
        f"{item.kind} {item.name}: current version {latest.properties.version}, last acknowledged {item.order[-1]}"
    )
    if item.kind == "key":
        for version in item.unsigned:
            _sign_verifies(c, item, version)
        item.unsigned.clear()
    return outcome


def _check_audit(server: KluisServer, acks: list[Ack], since: float) -> None:
    out = server.cli("audit", "list", "--since", str(int(since) - 2), "-o", "json").stdout
    records = {r["requestId"]: r for r in map(json.loads, out.splitlines())}
    for ack in acks:
        assert ack.request_id, f"{ack.operation} {ack.name}: no request id answered"
        r = records.get(ack.request_id)
        assert r is not None, f"acknowledged {ack.operation} {ack.name} ({ack.request_id}) has no audit record"
        assert (r["operation"], r["name"].lower()) == (ack.operation, ack.name.lower()) and 200 <= r["status"] < 300
    verified = server.cli("audit", "verify", "-o", "json", check=False)
    assert verified.returncode == 0, f"audit verify failed after the restart: {verified.stdout} {verified.stderr}"


# -- the rounds -------------------------------------------------------------------------------------------


def _kill_group(server: KluisServer) -> tuple[int, set[int]]:
    """SIGKILL the process group this test started (supervisor and workers); returns (its id, the workers)."""
    assert server.process is not None
    group = server.process.pid  # start_new_session: the supervisor leads its own group
    workers = children(group)
    os.killpg(group, signal.SIGKILL)
    server.process.wait(10)
    deadline = time.monotonic() + 5
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(alive(w) for w in workers), f"workers {workers} survived the group's SIGKILL"
    server.process = None
    return group, workers


def _log_since(path: Path, offset: int) -> str:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> list[str]:
    """The ``kluis serve`` arguments of one backend (PostgreSQL: a fresh database on the session's server)."""
    if request.param == "sqlite":
        return []
    return ["--database", request.getfixturevalue("postgres_server").new_database()]


@pytest.fixture
def server(tmp_path: Path, backend: list[str]) -> Iterator[KluisServer]:
    s = KluisServer(tmp_path / "data", extra_args=[*SERVER_ARGS, *backend])
    try:
        yield s
    finally:
        s.stop()


def test_sigkill_under_write_load_loses_no_acknowledged_write(server: KluisServer, backend: list[str]) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    log = server.data_dir.parent / f"kluis-{server.port}.log"
    server.start()
    ledger = Ledger()
    credential = _credential(server)
    mine: list[list[Item]] = [[] for _ in range(THREADS)]
    started = time.monotonic()
    report: list[str] = []
    for round_no in range(ROUNDS):
        round_start = time.time()
        clients = [_clients(server, credential) for _ in range(THREADS)]
        for c in clients:  # the challenge and a token before the load: the kill then cuts only writes
            c.keys.get_random_bytes(4)
        ledger.acks.clear()
        killing = threading.Event()
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [
                pool.submit(_drive, clients[t], ledger, mine[t], rng.getrandbits(32), f"r{round_no}t{t}", killing)
                for t in range(THREADS)
            ]
            time.sleep(rng.uniform(*KILL_AFTER))
            killing.set()
            old_group, old_workers = _kill_group(server)
            writes = sum(f.result() for f in futures)
        assert not ledger.failures, f"errors before the kill: {ledger.failures[:5]}"
        in_doubt = sum(1 for i in ledger.items if i.doubt is not None)

        offset = log.stat().st_size
        server.start()
        assert server.process is not None and server.process.pid != old_group
        new_group = server.process.pid
        holders = listeners(server.port)
        assert holders and holders <= children(new_group) | {new_group}, "the answer must come from the new server"
        assert not holders & old_workers

        checker = _clients(server, credential)
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(_check_item, [checker] * len(ledger.items), list(ledger.items)))
        _check_audit(server, ledger.acks, round_start)
        restarted = _log_since(log, offset)
        assert "listening on" in restarted, "the restarted server's log is not where this test reads it"
        alarms = [line for line in restarted.splitlines() if any(a in line for a in LOG_ALARMS)]
        assert not alarms, f"the restarted server logged errors: {alarms[:5]}"
        applied = outcomes.count("applied")
        report.append(f"round {round_no}: {writes} acknowledged writes, {in_doubt} in doubt ({applied} applied)")
    backend_name = "postgresql" if backend else "sqlite"
    print(f"{backend_name}: {'; '.join(report)}; {len(ledger.items)} names, {time.monotonic() - started:.1f} s")

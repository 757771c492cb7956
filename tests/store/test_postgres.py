"""PostgresStore against the store contract, and what several nodes on one database need:
cross-node cache invalidation within the bound, one scheduler, ordered concurrent versions."""

from __future__ import annotations

import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kluis.store import AuditBatch, Store
from kluis.store.postgres import CACHE_TTL, PostgresStore, ReadCache
from tests.store.contract import *  # noqa: F403 - the contract's tests, run here against PostgreSQL
from tests.store.contract import add, seed, version

BOUND = 1.0  # seconds: a change on one node takes effect on every other node within this


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    s = PostgresStore(postgres_url, pool_size=4)
    # Listening before the test reads: the listener's first (connect-time) cache clear must not land
    # between a test's warming read and the read it expects from the cache.
    assert s.listening.wait(5)
    yield seed(s)
    s.close()


@pytest.fixture
def nodes(postgres_url: str) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database, as two kluis nodes have (each its own cache and listener)."""
    a = PostgresStore(postgres_url, pool_size=4)
    b = PostgresStore(postgres_url, pool_size=4)
    seed(a)
    assert a.listening.wait(5) and b.listening.wait(5)
    yield a, b
    a.close()
    b.close()


def _seen_after(reader: PostgresStore, writer: PostgresStore, version: str, enabled: bool) -> float:
    """Seconds until ``reader`` (its cache warm) sees a change of ``enabled`` committed by ``writer``."""
    with reader.read() as tx:
        before = tx.get_version("v1", "key", "k", version)
    assert before is not None and before.enabled is not enabled
    with writer.write() as tx:
        v = tx.get_version("v1", "key", "k", version)
        assert v is not None
        v.enabled = enabled
        tx.update_version(v)
    committed = time.monotonic()
    while True:
        with reader.read() as tx:
            got = tx.get_version("v1", "key", "k", version)
        assert got is not None
        if got.enabled is enabled:
            return time.monotonic() - committed
        assert time.monotonic() - committed < 5, "the change never arrived"
        time.sleep(0.002)


def test_a_change_on_one_node_reaches_the_other_at_once_by_notification(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    v = add(a, "k", "1" * 32)
    delays = [_seen_after(b, a, v.version, enabled) for enabled in (False, True, False, True)]
    assert max(delays) < BOUND
    assert max(delays) < CACHE_TTL / 2, f"notifications should beat the fallback bound: {delays}"


def test_without_notifications_the_fallback_still_meets_the_bound(postgres_url: str) -> None:
    """The listener down (here: never started), a cached entry is re-read after CACHE_TTL seconds."""
    a = PostgresStore(postgres_url, pool_size=2)
    deaf = PostgresStore(postgres_url, pool_size=2, listen=False)
    try:
        seed(a)
        v = add(a, "k", "1" * 32)
        delays = [_seen_after(deaf, a, v.version, enabled) for enabled in (False, True)]
        assert max(delays) < BOUND
        assert max(delays) <= CACHE_TTL + 0.1
    finally:
        a.close()
        deaf.close()


def test_a_setting_changed_on_one_node_is_read_on_the_other_within_the_bound(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    """The clock offset's path (``cached_setting``): another node's change arrives by notification."""
    a, b = nodes
    with a.write() as tx:
        tx.put_setting("clock_offset", b"0")
    assert b.cached_setting("clock_offset") == b"0"  # b's cache warm
    with a.write() as tx:
        tx.put_setting("clock_offset", b"3600")
    committed = time.monotonic()
    while b.cached_setting("clock_offset") != b"3600":
        assert time.monotonic() - committed < BOUND, "node b still reads the old offset"
        time.sleep(0.002)


def test_deletes_and_policy_changes_reach_the_other_node(nodes: tuple[PostgresStore, PostgresStore]) -> None:
    from kluis.store import PolicyRecord

    a, b = nodes
    add(a, "k", "1" * 32)
    with a.write() as tx:
        tx.put_policy(PolicyRecord("v1", "someone", ["get"], [], []))
    with b.read() as tx:  # warm b's cache
        assert tx.get_object("v1", "key", "k") is not None and tx.get_policy("v1", "someone") is not None
    with a.write() as tx:
        tx.delete_object("v1", "key", "k")
        tx.delete_policy("v1", "someone")
    deadline = time.monotonic() + BOUND
    while True:
        with b.read() as tx:
            if tx.get_object("v1", "key", "k") is None and tx.get_policy("v1", "someone") is None:
                break
        assert time.monotonic() < deadline, "node b still serves what node a deleted"
        time.sleep(0.005)


def test_only_one_node_holds_the_scheduler(nodes: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = nodes
    with a.exclusive("scheduler") as first, b.exclusive("scheduler") as second:
        assert (first, second) == (True, False)
    with b.exclusive("scheduler") as again:
        assert again is True


def test_concurrent_versions_from_two_nodes_are_distinct_and_ordered(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    errors: list[BaseException] = []

    def writer(node: PostgresStore, tag: int) -> None:
        try:
            for j in range(10):
                add(node, "raced", f"{tag:016x}{j:016x}")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(node, i)) for i, node in enumerate((a, b, a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for node in (a, b):
        with node.read() as tx:
            versions = tx.list_versions("v1", "key", "raced", after_seq=None, limit=100)
            current = tx.get_object("v1", "key", "raced")
        assert len({v.seq for v in versions}) == len({v.version for v in versions}) == 40
        assert current is not None and current.latest_version == versions[-1].version


def test_read_cache_drops_what_a_clear_overtook_and_expires_entries() -> None:
    cache = ReadCache(ttl=0.5)
    generation = cache.generation
    cache.clear()  # a commit lands while a read is in flight...
    cache.put(("k",), "stale", generation, 0.0)  # ...so what that read loaded is not kept
    assert ("k",) not in cache.entries and cache.get(("k",), 0.0) != "stale"
    cache.put(("k",), "fresh", cache.generation, 10.0)
    assert cache.get(("k",), 10.4) == "fresh"
    assert cache.get(("k",), 10.5) != "fresh"  # expired: a miss, so the caller reads the database again


def test_writes_to_other_names_pass_a_held_name_while_its_own_and_global_writes_wait(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    add(a, "x", "1" * 32)
    holding, release = threading.Event(), threading.Event()

    def hold_x() -> None:
        with a.write() as tx:
            assert tx.get_object("v1", "key", "x") is not None  # locks name x
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_x)
    holder.start()
    assert holding.wait(10)
    done: dict[str, float] = {}

    def timed(label: str, work: Callable[[], object]) -> threading.Thread:
        def run() -> None:
            work()
            done[label] = time.monotonic()

        t = threading.Thread(target=run)
        t.start()
        return t

    def setting() -> None:
        with b.write() as tx:
            tx.put_setting("s", b"1")

    others = [timed("y", lambda: add(b, "y", "2" * 32)), timed("x", lambda: add(b, "x", "3" * 32))]
    deadline = time.monotonic() + 5
    while "y" not in done:  # another name goes ahead...
        assert time.monotonic() < deadline, "a write to another name waited for the held one"
        time.sleep(0.01)
    others.append(timed("setting", setting))
    time.sleep(0.3)
    assert set(done) == {"y"}  # ...while name x and a vault-wide write wait
    released = time.monotonic()
    release.set()
    for t in [holder, *others]:
        t.join(10)
    assert set(done) == {"x", "y", "setting"} and done["x"] >= released and done["setting"] >= released


def test_a_listener_whose_connection_dies_reconnects_and_the_bound_holds_meanwhile(
    nodes: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    import psycopg

    a, b = nodes
    v = add(a, "k", "1" * 32)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN%%'"
        ).fetchall()
    assert len(killed) == 2  # both nodes' listeners
    assert _seen_after(b, a, v.version, False) < BOUND  # while reconnecting: the fallback
    deadline = time.monotonic() + 5
    while not (a.listening.is_set() and b.listening.is_set()):
        assert time.monotonic() < deadline, "a listener did not reconnect"
        time.sleep(0.05)
    time.sleep(0.1)
    assert _seen_after(b, a, v.version, True) < CACHE_TTL / 2  # notifications again


def test_cache_only_answers_from_the_cache_or_raises(store: Store) -> None:
    from kluis.store import CacheMiss

    assert isinstance(store, PostgresStore)
    v = add(store, "k", "1" * 32)
    with store.read() as tx:  # warm
        assert tx.get_version("v1", "key", "k", v.version) is not None
    with store.cache_only():
        with store.read() as tx:
            assert tx.get_version("v1", "key", "K", v.version) is not None
            with pytest.raises(CacheMiss):
                tx.get_object("v1", "key", "other")
            with pytest.raises(CacheMiss):
                tx.list_objects("v1", "key", deleted=False, after=None, limit=5)
        with pytest.raises(CacheMiss), store.write():
            pass
    with store.read() as tx:  # and back to normal
        assert tx.get_object("v1", "key", "other") is None


def test_a_write_to_one_name_drops_only_that_names_entries_on_every_node(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    from kluis.store import CacheMiss

    a, b = nodes
    x, y = add(a, "x", "1" * 32), add(a, "y", "2" * 32)
    time.sleep(0.1)  # let the notifications of these writes arrive before warming the caches
    for node in (a, b):
        with node.read() as tx:  # warm: the vault, both names
            assert tx.get_vault("myvault") is not None
            assert tx.get_version("v1", "key", "x", x.version) and tx.get_version("v1", "key", "y", y.version)
    x.enabled = False
    with a.write() as tx:
        tx.update_version(x)
    time.sleep(0.1)  # the notification arrives at b
    for node in (a, b):
        with node.cache_only(), node.read() as tx:
            assert tx.get_vault("MyVault") is not None  # still cached
            assert tx.get_version("v1", "key", "y", y.version) is not None  # still cached
            with pytest.raises(CacheMiss):  # dropped: read again from the database
                tx.get_version("v1", "key", "x", x.version)
        with node.read() as tx:
            got = tx.get_version("v1", "key", "x", x.version)
            assert got is not None and got.enabled is False


class _SlowLink:
    """A loopback relay to PostgreSQL that holds every answer from the server for ``delay`` seconds:
    a client that waits for the server N times in sequence takes N * ``delay`` longer, while
    statements it only queues (pipeline mode) cost nothing, as on a real network link."""

    def __init__(self, url: str, delay: float) -> None:
        self.delay = delay
        self._target = url.rsplit("@", 1)[1].split("/", 1)[0].rsplit(":", 1)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = url.replace(":".join(self._target), f"127.0.0.1:{self._listener.getsockname()[1]}")
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection((self._target[0], int(self._target[1])))
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            answers: queue.Queue[tuple[float, bytes] | None] = queue.Queue()
            threading.Thread(target=self._forward, args=(client, server, answers), daemon=True).start()
            threading.Thread(target=self._deliver, args=(client, answers), daemon=True).start()

    def _forward(self, client: socket.socket, server: socket.socket, answers: queue.Queue[Any]) -> None:
        while True:
            ready, _, _ = select.select([client, server], [], [], 0.5)
            for s in ready:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    answers.put(None)
                    server.close()
                    return
                if s is client:
                    server.sendall(data)
                else:
                    answers.put((time.monotonic() + self.delay, data))

    def _deliver(self, client: socket.socket, answers: queue.Queue[Any]) -> None:
        while (item := answers.get()) is not None:
            due, data = item
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                client.sendall(data)
            except OSError:
                return
        client.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()


def test_a_new_version_costs_two_round_trips_and_an_audit_batch_one(postgres_url: str) -> None:
    """BEGIN and COMMIT travel with the other statements: reading the object is the one answer a new
    version waits for before its commit (psycopg's ``conn.transaction()`` cost four more per write)."""
    delay = 0.1
    link = _SlowLink(postgres_url, delay)
    store = PostgresStore(link.url, pool_size=1, listen=False)
    try:
        seed(store)
        add(store, "warm", "0" * 32)  # the pool's one connection is open
        started = time.monotonic()
        v = add(store, "k", "a" * 32)
        took = time.monotonic() - started
        assert 2 * delay <= took < 3 * delay, f"a new version took {took / delay:.1f} round trips"
        assert v.seq > 0  # its seq arrived with the commit's answers
        started = time.monotonic()
        with store.write() as tx:
            tx.add_audit_batches([AuditBatch("c", 0, 1, 1, 1, "", 0, "h0", b"[]")])
        took = time.monotonic() - started
        assert delay <= took < 2 * delay, f"an audit batch took {took / delay:.1f} round trips"
        with store.read() as tx:
            assert [b.hash for b in tx.list_audit_batches(after_id=0, since_ms=None, until_ms=None, limit=5)] == ["h0"]
    finally:
        store.close()
        link.close()


def test_a_cached_setting_inside_a_write_costs_no_round_trip(postgres_url: str) -> None:
    """Reads inside a write go to the database, but the clock offset (read on every ``Clock.now()``,
    several times in some writes) comes from the cache while it holds it."""
    delay = 0.1
    link = _SlowLink(postgres_url, delay)
    store = PostgresStore(link.url, pool_size=2, listen=False)
    try:
        seed(store)
        with store.write() as tx:
            tx.put_setting("clock_offset", b"7")
        assert store.cached_setting("clock_offset") == b"7"  # loaded into the cache
        with store.write() as tx:
            started = time.monotonic()
            assert store.cached_setting("clock_offset") == b"7"
            assert time.monotonic() - started < delay / 2
            tx.put_setting("other", b"x")
    finally:
        store.close()
        link.close()


def test_failed_writes_leave_their_connection_ready_for_the_next(postgres_url: str) -> None:
    """A write that raises (queued ROLLBACK) or that the database refuses at commit (rolled back after)
    leaves nothing, and the pool's one connection serves the next write."""
    import psycopg

    store = PostgresStore(postgres_url, pool_size=1, listen=False)
    try:
        seed(store)
        kept = add(store, "k", "a" * 32)
        with pytest.raises(RuntimeError), store.write() as tx:
            tx.get_object("v1", "key", "k")
            tx.add_version(version("k", "b" * 32))
            raise RuntimeError("boom")
        with pytest.raises(psycopg.errors.UniqueViolation), store.write() as tx:
            tx.add_version(version("k", "c" * 32))
            tx.add_version(version("k", "a" * 32))  # a duplicate: refused when the pipeline syncs, at commit
        later = add(store, "k", "d" * 32)
        with store.read() as tx:
            listed = tx.list_versions("v1", "key", "k", after_seq=None, limit=10)
        assert [v.version for v in listed] == [kept.version, later.version] and later.seq > kept.seq
    finally:
        store.close()

"""``kluis serve`` as a process tree: workers die with a killed supervisor, a restart is really a new server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from azure.keyvault.keys import KeyClient

from tests.cli.procfs import alive, children, listeners
from tests.e2e.conftest import Principal, credential
from tests.e2e.server import KluisServer

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")]

WORKERS_DIE_WITHIN = 2.0  # seconds from the supervisor's SIGKILL; measured ~0.01 s (PR_SET_PDEATHSIG)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigkilled_supervisor_takes_its_workers_and_a_restart_answers_itself(tmp_path: Path) -> None:
    """The OOM killer's SIGKILL on the main process only: workers follow, ports free up, the restart serves."""
    server = KluisServer(tmp_path / "data", extra_args=["--workers", "2"]).start()
    assert server.process is not None
    first = server.process.pid  # also its process group (start_new_session): cleaned up below whatever happens
    try:
        a = server.admin()
        admin = Principal(a["appId"], a["password"], a["tenant"])
        client = KeyClient(
            server.url, credential(server, admin), verify_challenge_resource=False, connection_verify=server.ca
        )
        made = [client.create_ec_key(f"crash{i}").id for i in range(3)]
        workers = children(first)
        assert len(workers) == 2
        assert listeners(server.port) <= workers | {first} and listeners(server.port)

        os.kill(first, signal.SIGKILL)  # the supervisor alone, as the OOM killer does; no cleanup runs
        killed = time.monotonic()
        server.process.wait(10)
        while any(alive(w) for w in workers) and time.monotonic() - killed < WORKERS_DIE_WITHIN:
            time.sleep(0.01)
        took = time.monotonic() - killed
        assert not any(alive(w) for w in workers), f"workers {workers} outlived their supervisor by {took:.2f}s"
        assert _refused(server.port) and _refused(server.proxy_port)  # nothing answers, the proxy thread is gone too
        print(f"workers gone {took * 1000:.0f} ms after the supervisor's SIGKILL")

        server.process = None
        server.start()  # same ports: would fail (or share them with the old workers) if anything had survived
        second = server.process.pid
        assert second != first
        holders = listeners(server.port)
        assert holders and holders <= children(second) | {second}, "the answer must come from the new server"
        client = KeyClient(
            server.url, credential(server, admin), verify_challenge_resource=False, connection_verify=server.ca
        )
        assert [client.get_key(f"crash{i}").id for i in range(3)] == made  # acknowledged writes survived
    finally:
        server.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first, signal.SIGKILL)  # only this test's first server group, if anything of it is left


RESPAWN_WITHIN = 15.0  # seconds from a worker's SIGKILL to its replacement appearing; measured ~0.13 s


@pytest.mark.parametrize("workers", [1, 2])
def test_a_sigkilled_worker_is_replaced_and_the_server_keeps_answering(tmp_path: Path, workers: int) -> None:
    """The OOM killer's SIGKILL on one worker: the supervisor stays, a new worker takes the slot, every request
    is answered (with one worker, the SDK's retry of a refused connection covers the gap), and the new worker
    is tied to the supervisor like the first ones."""
    server = KluisServer(tmp_path / "data", extra_args=["--workers", str(workers)]).start()
    assert server.process is not None
    supervisor = server.process.pid  # also its process group (start_new_session)
    try:
        a = server.admin()
        admin = Principal(a["appId"], a["password"], a["tenant"])
        client = KeyClient(
            server.url, credential(server, admin), verify_challenge_resource=False, connection_verify=server.ca
        )
        made = client.create_ec_key("survivor").id
        first = children(supervisor)
        assert len(first) == workers
        victim = min(first)

        os.kill(victim, signal.SIGKILL)  # one worker only, as the OOM killer does
        killed = time.monotonic()
        replaced: set[int] = set()
        answered = 0
        while time.monotonic() - killed < RESPAWN_WITHIN:
            assert server.process.poll() is None, "the supervisor stopped after one worker died"
            assert client.get_key("survivor").id == made  # the other worker (or the new one) answers meanwhile
            answered += 1
            now = children(supervisor)
            if victim not in now and len(now) == workers and (replaced := now - first):
                break
            time.sleep(0.1)
        took = time.monotonic() - killed
        assert replaced, f"no new worker within {RESPAWN_WITHIN}s of worker {victim}'s SIGKILL"
        assert not alive(victim)
        holders = listeners(server.port)
        assert holders and holders <= children(supervisor) | {supervisor}
        print(f"worker {victim} replaced by {replaced} in {took * 1000:.0f} ms; {answered} reads answered meanwhile")
        for i in range(6):  # every worker (the kernel spreads connections over them) serves reads and writes
            fresh = KeyClient(
                server.url, credential(server, admin), verify_challenge_resource=False, connection_verify=server.ca
            )
            assert fresh.create_ec_key(f"after{i}").name == f"after{i}"
        assert server.process.poll() is None

        os.kill(supervisor, signal.SIGKILL)  # the replacement is tied to the supervisor too
        server.process.wait(10)
        gone = time.monotonic()
        while any(alive(w) for w in replaced) and time.monotonic() - gone < WORKERS_DIE_WITHIN:
            time.sleep(0.01)
        assert not any(alive(w) for w in replaced), "the respawned worker outlived its supervisor"
        server.process = None
    finally:
        server.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(supervisor, signal.SIGKILL)  # only this test's server group, if anything of it is left

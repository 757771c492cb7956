"""benchmarks.profile: samples to categories, and a thread's measured CPU split over them per request."""

from __future__ import annotations

import inspect

from benchmarks.profile import CATEGORIES, Samples, breakdown, classify, parse_raw, response_frame
from kluis.api.app import KluisApp

ROOT = "_run_module_as_main (<frozen runpy>:198);serve (kluis/cli/serve.py:216);run_forever (loop.c:33397)"
REQ = "KluisApp.__rsgi__ (kluis/api/app.py:323);KluisApp.respond (kluis/api/app.py:146)"


def _frames(*parts: str) -> list[str]:
    return ";".join(parts).split(";")


def test_a_request_sample_goes_to_the_first_matching_category() -> None:
    store = _frames(ROOT, REQ, "Management.get_vault (kluis/domain/management.py:135)",
                    "SqliteStore.read (kluis/store/sqlite.py:525)", "sqlite3_step (libsqlite3.so.0.8.6)")  # fmt: skip
    assert classify("MainThread", store) == "store"
    authz = _frames(ROOT, REQ, "Authorizer.authorize (kluis/domain/authorization.py:183)")
    assert classify("MainThread", authz) == "authorization"
    unseal = _frames(ROOT, REQ, "KeyService.material (kluis/domain/keys/service.py:200)",
                     "Sealer.unseal (kluis/crypto/seal.py:90)")  # fmt: skip
    assert classify("MainThread", unseal) == "unsealing"  # not "crypto", though seal.py is under kluis/crypto
    sign = _frames(ROOT, REQ, "sign (kluis/crypto/operations.py:250)", "0x7f (cryptography/bindings/_rust.abi3.so)")
    assert classify("MainThread", sign) == "crypto"
    assert classify("MainThread", _frames(ROOT, REQ, "_request_id (kluis/api/app.py:439)")) == "dispatcher (rest)"


def test_waiting_samples_are_off_cpu_and_threads_without_python_are_granian() -> None:
    gil = _frames(ROOT, REQ, "SqliteStore.read (kluis/store/sqlite.py:525)", "pthread_cond_timedwait (libc.so.6)",
                  "0x7f05a4048f16 (libc.so.6)")  # fmt: skip
    assert classify("MainThread", gil) is None
    assert classify("", ["0x7f05a016c5f5 (granian/_granian.so)", "syscall (libc.so.6)"]) is None
    assert classify("", ["0x7f05a016b96b (granian/_granian.so)", "sched_yield (libc.so.6)"]) == "TLS + HTTP (granian)"
    loop = _frames(ROOT, "uv_run (core.c:452)", "uv__io_poll (linux.c:1452)", "0x1 (granian/_granian.so)")
    assert classify("MainThread", loop) == "TLS + HTTP (granian)"
    audit = ["Thread.run (threading.py:982)", "AuditLog.flush (kluis/domain/audit.py:164)", "write (libc.so.6)"]
    assert classify("kluis-audit", audit) == "audit + events"


def test_the_response_write_frame_is_the_line_calling_granian() -> None:
    frame = response_frame()
    lines, first = inspect.getsourcelines(KluisApp.__rsgi__)
    line = int(frame.rsplit(":", 1)[1].rstrip(")"))
    assert "protocol.response_bytes(" in lines[line - first]
    sample = _frames(ROOT, frame, "write (libc.so.6)")
    assert classify("MainThread", sample, frame) == "response write (granian)"


def test_breakdown_splits_each_threads_cpu_over_its_busy_samples_per_request() -> None:
    raw = [
        f"thread (10): MainThread;{ROOT};{REQ};SqliteStore.read (kluis/store/sqlite.py:525) 3",
        f"thread (10): MainThread;{ROOT};{REQ};sign (kluis/crypto/operations.py:250) 1",
        f"thread (10): MainThread;{ROOT};uv_run (core.c:452);epoll_wait (libc.so.6) 50",  # idle: ignored
        "thread (11);0x7f05a016b96b (granian/_granian.so);write (libc.so.6) 2",
        "not a sample line",
    ]
    samples = parse_raw(raw)
    assert isinstance(samples, Samples) and samples.names[10] == "MainThread"
    # 0.4 s of CPU on the main thread, 0.1 s on granian's thread, 0.05 s on a thread never sampled
    per = breakdown(samples, {10: 0.4, 11: 0.1, 12: 0.05}, requests=1000)
    assert set(per) == set(CATEGORIES)
    assert per["store"] == 300.0 and per["crypto"] == 100.0  # µs per request: 0.4 s * 3/4 / 1000
    assert per["TLS + HTTP (granian)"] == 150.0  # its own 100 plus the unsampled thread's 50 (default: granian)
    assert sum(per.values()) == 550.0


def test_the_bare_endpoints_samples_are_its_response_write_or_its_own_python() -> None:
    from benchmarks.bare import BareApp
    from benchmarks.profile import _bare_response_frame

    frame = _bare_response_frame()
    lines, first = inspect.getsourcelines(BareApp.__rsgi__)
    assert "protocol.response_bytes(" in lines[int(frame.rsplit(":", 1)[1].rstrip(")")) - first]
    assert classify("MainThread", _frames(ROOT, frame, "write (libc.so.6)")) == "response write (granian)"
    parse = "BareApp.__rsgi__ (benchmarks/bare.py:33);loads (json/__init__.py:346)"
    assert classify("MainThread", _frames(ROOT, parse)) == "dispatcher (rest)"
    assert classify("MainThread", _frames(ROOT, "run_forever (loop.c:33397)")) != "dispatcher (rest)"


def test_the_bare_crypto_routes_call_is_crypto_and_the_rest_of_the_route_its_own_python() -> None:
    route = "BareApp.__rsgi__ (benchmarks/bare.py:160);_sign_ecdsa (benchmarks/bare.py:120)"
    sign = _frames(ROOT, route, "sign (cryptography/hazmat/primitives/asymmetric/ec.py:10)",
                   "0x7f (cryptography/hazmat/bindings/_rust.abi3.so)")  # fmt: skip
    assert classify("MainThread", sign) == "crypto"
    encode = _frames(ROOT, route, "b64url (benchmarks/bare.py:60)", "b64encode (base64.py:58)")
    assert classify("MainThread", encode) == "dispatcher (rest)"
    waiting = _frames(ROOT, route, "0x7f (cryptography/hazmat/bindings/_rust.abi3.so)", "take_gil (libpython3.11.so)")
    assert classify("MainThread", waiting) is None  # waiting, even inside the crypto call: off CPU

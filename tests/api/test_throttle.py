"""The shared token buckets, the sign-in guard and the shedder, without a server."""

from __future__ import annotations

from pathlib import Path

from kluis.api.throttle import FREE_FAILURES, MAX_DELAY, SharedBuckets, Shedder, SignInGuard, VaultThrottle


def test_buckets_are_shared_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.bin"
    a, b = SharedBuckets(path, capacity=3, rate=1.0), SharedBuckets(path, capacity=3, rate=1.0)
    assert [a.take("v", now=100.0), b.take("v", now=100.0), a.take("v", now=100.0)] == [0.0, 0.0, 0.0]
    assert b.take("v", now=100.0) == 1.0  # empty for both "workers": one token a second
    assert a.take("v", now=101.0) == 0.0 and a.take("other", now=101.0) == 0.0
    a.close()
    b.close()


def test_vault_throttle_retry_after(tmp_path: Path) -> None:
    t = VaultThrottle(tmp_path / "v.bin", 10)  # 10 per 10 s: a burst of 10, then 1 a second
    assert all(t.check("Vault") is None for _ in range(10))
    assert t.check("vault") == 1  # names are case-insensitive, like hosts
    assert VaultThrottle(tmp_path / "off.bin", 0).check("vault") is None


def test_sign_in_guard_doubles_per_pair(tmp_path: Path) -> None:
    g = SignInGuard(tmp_path / "s.bin")
    for _ in range(FREE_FAILURES):
        assert g.delay("app", "10.0.0.1") == 0.0
        g.failed("app", "10.0.0.1")
    first = g.delay("app", "10.0.0.1")
    g.failed("app", "10.0.0.1")
    assert 0.5 <= first < g.delay("app", "10.0.0.1")
    for _ in range(20):
        g.failed("app", "10.0.0.1")
    assert g.delay("app", "10.0.0.1") == MAX_DELAY
    assert g.delay("app", "10.0.0.2") == 0.0 and g.delay("other", "10.0.0.1") == 0.0


def test_shedder() -> None:
    s = Shedder(2)
    assert s.enter() and s.enter() and not s.enter()
    s.leave()
    assert s.enter() and s.shed == 1

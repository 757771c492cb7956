"""Ablation: kluis with some of its per-request guarantees replaced by constant stand-ins, to measure
what each costs. For measurement only: an ablated server skips checks a real one must make.

``python -m benchmarks.inproc --instructions --ablate token,authz`` counts the request path without
them in process; ``python -m benchmarks --only get_key --baseline . --baseline-ablate all`` serves an
ablated copy beside kluis in the same rounds (``kluis/baseline`` is then what the guarantees leave of
the ablated rate). A worker applies the steps named in ``KLUIS_BENCH_ABLATE`` at start-up through
``benchmarks/ablation/sitecustomize.py`` (that directory is on the ablated server's ``PYTHONPATH``
only). Each stand-in returns what the real step returned on its first call, so answers stay 200.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ENV", "SITE_DIR", "STEPS", "apply", "apply_from_env", "parse_steps"]

ENV = "KLUIS_BENCH_ABLATE"
SITE_DIR = Path(__file__).resolve().parent / "ablation"  # holds the sitecustomize.py that applies ENV

#: Each step and what replacing it removes from every request.
STEPS: dict[str, str] = {
    "token": "bearer token verification (the verified-token cache lookup and its expiry/audience checks)",
    "apiversion": "the api-version check",
    "vault": "the vault lookup by host (a cached store read)",
    "throttle": "the per-vault request throttle",
    "authz": "the access-policy check (a cached store read of the caller's policy)",
    "freshness": "the per-request PRAGMA data_version check of the SQLite read cache",
    "event": "the operation event (audit record, access log, metrics)",
    "requestid": "the random request id",
}


def parse_steps(text: str) -> list[str]:
    """``"all"`` or a comma list of :data:`STEPS` names; ValueError naming an unknown one."""
    steps = list(STEPS) if text.strip() == "all" else [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown ablation step(s) {', '.join(unknown)}; known: all, {', '.join(STEPS)}")
    return steps


def _first_answer(real: Callable[..., Any]) -> Callable[..., Any]:
    """A stand-in that calls ``real`` once and returns that answer ever after."""
    memo: list[Any] = []

    def stand_in(*args: Any) -> Any:
        if not memo:
            memo.append(real(*args))
        return memo[0]

    return stand_in


def apply(steps: Sequence[str]) -> Callable[[], None]:
    """Replace ``steps`` in the imported kluis modules; returns a function that puts them back."""
    import kluis.api.app as app
    from kluis.api.throttle import VaultThrottle
    from kluis.domain.authorization import AccessPolicyAuthorizer
    from kluis.domain.events import EventBus
    from kluis.store.sqlite import CachedReadTransaction

    targets: dict[str, list[tuple[Any, str, Any]]] = {
        "token": [(app, "authenticate", _first_answer(vars(app)["authenticate"]))],
        "apiversion": [(app, "check_api_version", _first_answer(vars(app)["check_api_version"]))],
        "vault": [(app.KluisApp, "_vault", _first_answer(app.KluisApp._vault))],
        "throttle": [(VaultThrottle, "check", lambda self, name: None)],
        "authz": [(AccessPolicyAuthorizer, "authorize", lambda self, vault, caller, permission: None)],
        "freshness": [(CachedReadTransaction, "data_version", lambda self: 0)],
        "event": [
            (app.KluisApp, "_event", staticmethod(lambda ctx, route, status, duration: None)),
            (EventBus, "emit", lambda self, event: None),
        ],
        "requestid": [(app, "_request_id", lambda: "00000000-0000-0000-0000-000000000000")],
    }
    undo: list[tuple[Any, str, Any]] = []
    for step in parse_steps(",".join(steps)):
        for owner, name, stand_in in targets[step]:
            undo.append((owner, name, owner.__dict__[name]))
            setattr(owner, name, stand_in)

    def restore() -> None:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)

    return restore


def apply_from_env() -> None:
    """Apply the steps ``KLUIS_BENCH_ABLATE`` names (nothing when it is unset or empty)."""
    text = os.environ.get(ENV, "")
    if text:
        apply(parse_steps(text))

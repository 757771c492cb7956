"""The route table's machinery: rows of (method, path pattern, handler, Azure operation, permission).

Every endpoint kluis serves is one ``Route`` row (the rows live beside their handlers, one module
per resource family, and ``kluis.api.table`` joins them). Dispatch, the 404 / 405 answers and
the permission check are all derived from the rows.

Patterns are paths whose segments are literals (matched case-insensitively, as Key Vault does)
or ``{param}``; a pattern ending in ``/`` matches the path with or without that slash. A
``{param?}`` may be empty: Key Vault paths carry empty segments with meaning
(``/keys/NAME/`` is the latest version, ``/keys/NAME//sign`` signs with it), and a trailing
optional segment may also be absent (``/keys/NAME``). When several rows match a path, the one
with more literal segments wins (``/keys/NAME/versions`` lists versions, it is not version
"versions"), so the table needs no ordering rules.

Matching is a dict lookup on (segment count, first segment) and a scan of the few rows there,
so it costs about the same as the if/else chains it replaced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

from kluis.domain.authorization import AdminPermission, Permission

if TYPE_CHECKING:
    from kluis.api.context import RequestContext
    from kluis.api.http import Response

__all__ = [
    "BODY_LIMITS",
    "RESTORE_BODY_LIMIT",
    "Auth",
    "Match",
    "Route",
    "Router",
    "describe",
]

Handler = Callable[["RequestContext"], Awaitable["Response"]]


class Auth(Enum):
    """Who may call a route: a vault token (data plane), the administrator with a management token,
    or anybody (identity endpoints, health)."""

    VAULT = "vault"
    MANAGEMENT = "management"
    NONE = "none"


# Request-body limits in bytes, by who may call a route (Azure documents none; each admits the
# largest valid request of its family and little more):
# - data plane 256 KiB: a 25,600-character secret fully \\uXXXX-escaped is 153,600 bytes, plus 15 tags
#   of 256-character names and values escaped the same way (46,080 bytes) and the envelope; also an
#   RSA-4096 JWK import (~4 KB) or a certificate import of a PFX up to ~190 KB;
# - management 64 KiB (vault/principal/policy/attestation documents of a few KB);
# - identity 16 KiB (a token request form: client id, secret, scope; client assertions are refused).
BODY_LIMITS: dict[Auth, int] = {Auth.VAULT: 256 * 1024, Auth.MANAGEMENT: 64 * 1024, Auth.NONE: 16 * 1024}
# Restores carry a whole backup: up to 500 versions (Azure's backup limit) of the largest object.
RESTORE_BODY_LIMIT = 8 * 1024 * 1024


@dataclass(frozen=True)
class Route:
    """One row of the table. ``operation`` is Azure's operation name (``GetKey``); ``kind`` the
    object kind for events and audit ("key", "secret", "vault", ...); ``permission`` what the
    authorization point must grant (None only for routes with ``Auth.NONE``); ``body_limit`` the
    largest request body in bytes (None: ``BODY_LIMITS[auth]``)."""

    method: str
    pattern: str
    handler: Handler
    operation: str
    permission: Permission | AdminPermission | None
    kind: str
    auth: Auth = Auth.VAULT
    body_limit: int | None = None

    @property
    def max_body(self) -> int:
        """The request-body limit in bytes that applies to this route."""
        return self.body_limit if self.body_limit is not None else BODY_LIMITS[self.auth]


@dataclass(frozen=True)
class _Compiled:
    route: Route
    segments: tuple[str | None, ...]  # literal (lower-case) or None for a parameter
    checks: tuple[tuple[int, str], ...]  # (position, literal) pairs to compare
    params: tuple[tuple[int, str, bool], ...]  # (position, name, may be empty)
    literals: int = field(default=0)
    absent: tuple[str, ...] = ()  # parameters of a trailing segment this variant leaves out (None)


class Match(NamedTuple):
    """The outcome of a lookup: a route and its parameters, or the methods the path does allow
    (empty: no row has this path: 404; else 405). ``auth`` is the auth of the path's family, even
    when nothing matched. (A NamedTuple: built on every request, it must be cheap.)"""

    route: Route | None
    params: dict[str, str | None]
    allowed: tuple[str, ...] = ()
    auth: Auth | None = None


_MEMO_SIZE = 8192  # entries
_MEMO_PATH = 300  # characters: a versioned key path with a 127-character name is ~200


class Router:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes: tuple[Route, ...] = tuple(routes)
        # Rows by (segment count, first literal, last literal): a lookup reads at most four small
        # buckets, most specific first; None stands for a parameter in that position.
        self._index: dict[tuple[int, str | None, str | None], list[_Compiled]] = {}
        self._family_auth: dict[str, Auth] = {}
        self._memo: dict[tuple[str, str], Match] = {}
        for route in self.routes:
            for compiled in _compile(route):
                segs = compiled.segments
                key = (len(segs), segs[0], segs[-1] if len(segs) > 1 else None)
                self._index.setdefault(key, []).append(compiled)
            parts = route.pattern.lower().split("/")[1:3]
            if not parts[0].startswith("{"):
                self._family_auth.setdefault(parts[0], route.auth)
                if len(parts) > 1 and parts[1] and not parts[1].startswith("{"):
                    self._family_auth.setdefault("/".join(parts), route.auth)
        for rows in self._index.values():
            rows.sort(key=lambda c: -c.literals)

    def match(self, method: str, path: str) -> Match:
        """The route for ``method path`` (results are memoized per (method, path): a hot client
        repeats its paths; the memo is bounded and its Match objects are never mutated)."""
        key = (method, path)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._match(method, path)
            if len(path) > _MEMO_PATH:  # bounded memory: only ordinary paths are remembered
                return hit
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def _match(self, method: str, path: str) -> Match:
        segs = path.split("/")[1:]
        n = len(segs)
        head = segs[0].lower() if segs else ""
        last = segs[-1].lower() if n > 1 else None
        allowed: list[str] = []
        for key in ((n, head, last), (n, head, None), (n, None, last), (n, None, None)):
            for c in self._index.get(key, ()):
                params = _bind(c, segs)
                if params is None:
                    continue
                if c.route.method == method:
                    return Match(c.route, params, auth=c.route.auth)
                allowed.append(c.route.method)
        family = self._family_auth.get(f"{head}/{segs[1].lower()}") if n > 1 else None
        return Match(None, {}, tuple(dict.fromkeys(allowed)), family or self._family_auth.get(head))


def _compile(route: Route) -> list[_Compiled]:
    parts = route.pattern.split("/")[1:]
    segments: list[str | None] = []
    names: list[tuple[int, str, bool]] = []
    optional_last = False
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "" and last:  # a trailing "/": the path may end with or without it
            segments.append("")
            optional_last = True
        elif part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            empty_ok = name.endswith("?")
            segments.append(None)
            names.append((i, name.rstrip("?"), empty_ok))
            optional_last = optional_last or (empty_ok and last)
        else:
            segments.append(part.lower())
    literals = sum(1 for s in segments if s)

    def make(segs: list[str | None], params: list[tuple[int, str, bool]], absent: tuple[str, ...]) -> _Compiled:
        checks = tuple((i, s) for i, s in enumerate(segs) if s is not None)
        return _Compiled(route, tuple(segs), checks, tuple(params), literals, absent)

    out = [make(segments, names, ())]
    if optional_last:  # a trailing optional segment may also be absent
        end = len(segments) - 1
        kept = [p for p in names if p[0] < end]
        out.append(make(segments[:-1], kept, tuple(p[1] for p in names if p[0] == end)))
    return out


def _bind(c: _Compiled, segs: Sequence[str]) -> dict[str, str | None] | None:
    for i, literal in c.checks:
        if segs[i].lower() != literal:
            return None
    params: dict[str, str | None] = dict.fromkeys(c.absent) if c.absent else {}
    for i, name, empty_ok in c.params:
        seg = segs[i]
        if not seg:
            if not empty_ok:
                return None
            params[name] = None
        else:
            params[name] = seg
    return params


def describe(routes: Iterable[Route]) -> list[dict[str, Any]]:
    """The table as data (for docs and tests): method, pattern, operation, permission, auth."""
    return [
        {
            "method": r.method,
            "pattern": r.pattern,
            "operation": r.operation,
            "permission": None if r.permission is None else str(r.permission),
            "auth": r.auth.value,
        }
        for r in routes
    ]

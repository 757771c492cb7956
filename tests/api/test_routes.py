"""The route table: every row reachable, most-literal wins, empty segments, 404 vs 405."""

from __future__ import annotations

import pytest

from kluis.api.routes import Auth, Route, Router
from kluis.api.table import ROUTER, ROUTES
from kluis.domain.authorization import KeyPermission


@pytest.mark.parametrize(
    ("method", "path", "operation", "params"),
    [
        ("GET", "/keys", "GetKeys", {}),
        ("GET", "/keys/", "GetKeys", {}),
        ("POST", "/keys/restore", "RestoreKey", {}),
        ("GET", "/keys/restore", "GetKey", {"name": "restore", "version": None}),  # a key named "restore"
        ("GET", "/keys/k1", "GetKey", {"name": "k1", "version": None}),
        ("GET", "/keys/k1/", "GetKey", {"name": "k1", "version": None}),
        ("GET", "/keys/k1/abc", "GetKey", {"name": "k1", "version": "abc"}),
        ("GET", "/keys/k1/versions", "GetKeyVersions", {"name": "k1"}),
        ("PATCH", "/keys/k1/versions", "UpdateKey", {"name": "k1", "version": "versions"}),
        ("PUT", "/keys/k1", "ImportKey", {"name": "k1"}),
        ("PUT", "/keys/k1/", "ImportKey", {"name": "k1"}),
        ("POST", "/keys/k1/CREATE", "CreateKey", {"name": "k1"}),  # literals are case-insensitive
        ("POST", "/keys/k1//sign", "Sign", {"name": "k1", "version": None}),
        ("POST", "/keys/k1/v1/wrapkey", "WrapKey", {"name": "k1", "version": "v1"}),
        ("POST", "/keys/k1/wrapkey", "WrapKey", {"name": "k1"}),  # the Go SDK's path for the latest version
        ("GET", "/keys/k1/sign", "GetKey", {"name": "k1", "version": "sign"}),
        ("GET", "/keys/k1//attestation", "GetKeyAttestation", {"name": "k1", "version": None}),
        ("PUT", "/keys/k1/rotationpolicy", "UpdateKeyRotationPolicy", {"name": "k1"}),
        ("DELETE", "/deletedkeys/k1", "PurgeDeletedKey", {"name": "k1"}),
        ("POST", "/deletedkeys/k1/recover", "RecoverDeletedKey", {"name": "k1"}),
        ("POST", "/rng", "GetRandomBytes", {}),
        ("GET", "/_kluis/health", "Health", {}),
        ("PUT", "/_kluis/v1/vaults/v1/policies/app", "SetAccessPolicy", {"name": "v1", "principal": "app"}),
        ("POST", "/TENANT/oauth2/v2.0/token", "Token", {"tenant": "TENANT"}),
        ("GET", "/adfs/.well-known/openid-configuration", "OpenIdConfiguration", {"tenant": "adfs"}),
        ("GET", "/msi/token", "ManagedIdentityToken", {}),
    ],
)
def test_dispatch(method: str, path: str, operation: str, params: dict[str, str | None]) -> None:
    match = ROUTER.match(method, path)
    assert match.route is not None and match.route.operation == operation
    assert match.params == params


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/keys", ("GET",)),
        ("POST", "/keys/k1", ("PUT", "GET", "PATCH", "DELETE")),
        ("GET", "/keys/k1//sign", ("POST",)),
        ("GET", "/TENANT/oauth2/v2.0/token", ("POST",)),
    ],
)
def test_wrong_method_is_405_with_what_is_allowed(method: str, path: str, allowed: tuple[str, ...]) -> None:
    match = ROUTER.match(method, path)
    assert match.route is None and set(match.allowed) == set(allowed)


@pytest.mark.parametrize("path", ["/keys/k1/v/a/b", "/keys//", "/nothing", "/keys/k1/v1/teleport"])
def test_unknown_paths_match_nothing(path: str) -> None:
    match = ROUTER.match("GET", path)
    assert match.route is None and match.allowed == ()


def test_family_auth_is_known_even_without_a_match() -> None:
    assert ROUTER.match("GET", "/keys/k1/v/a/b").auth is Auth.VAULT
    assert ROUTER.match("GET", "/_kluis/v1/nothing").auth is Auth.MANAGEMENT


def test_every_row_is_reachable_and_names_a_permission_unless_open() -> None:
    for route in ROUTES:
        path = route.pattern.replace("{name}", "n1").replace("{version?}", "v1").replace("{principal}", "p")
        path = path.replace("{tenant}", "t")
        match = ROUTER.match(route.method, path)
        assert match.route is route, (route.method, route.pattern, match)
        assert (route.permission is None) == (route.auth is Auth.NONE), route.pattern


def test_the_memo_is_bounded_and_skips_long_paths() -> None:
    async def handler(ctx: object) -> object:
        raise AssertionError

    router = Router([Route("GET", "/keys/{name}", handler, "GetKey", KeyPermission.GET, "key")])  # type: ignore[arg-type]
    for i in range(9000):
        assert router.match("GET", f"/keys/k{i}").params == {"name": f"k{i}"}
    assert len(router._memo) <= 8192
    long = "/keys/" + "a" * 400
    router.match("GET", long)
    assert ("GET", long) not in router._memo

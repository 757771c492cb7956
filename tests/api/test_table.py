"""The one route table: every resource family's rows, nothing else, no row twice, NOT_YET served by none."""

from __future__ import annotations

from kluis.api import admin, keys, oauth, secrets
from kluis.api.routes import Auth
from kluis.api.table import NOT_YET, ROUTER, ROUTES

FAMILIES = {"keys": keys.ROUTES, "secrets": secrets.ROUTES, "admin": admin.ROUTES, "oauth": oauth.ROUTES}


def test_every_family_is_in_the_table_and_nothing_else() -> None:
    for name, rows in FAMILIES.items():
        assert rows, f"{name} has no rows"
        missing = [r.operation for r in rows if r not in ROUTES]
        assert not missing, f"{name} rows missing from the table: {missing}"
    assert len(ROUTES) == sum(len(rows) for rows in FAMILIES.values())


def test_no_row_twice() -> None:
    seen: dict[tuple[str, str], str] = {}
    for r in ROUTES:
        key = (r.method, r.pattern.rstrip("/").lower())
        assert key not in seen, f"{key} is served by {seen[key]} and {r.operation}"
        seen[key] = r.operation


def test_the_router_serves_each_family() -> None:
    assert ROUTER.match("POST", "/keys/k/create").route in keys.ROUTES
    assert ROUTER.match("PUT", "/secrets/s").route in secrets.ROUTES
    assert ROUTER.match("GET", "/_kluis/v1/groups").route in admin.ROUTES
    assert ROUTER.match("GET", "/t/discovery/v2.0/keys").route in oauth.ROUTES


def test_not_yet_collections_are_vault_paths_no_row_serves() -> None:
    heads = {r.pattern.split("/")[1].lower() for r in ROUTES}
    assert not NOT_YET & heads
    for head in NOT_YET:
        match = ROUTER.match("GET", f"/{head}")
        assert match.route is None
    assert all(r.auth is Auth.VAULT for r in (*keys.ROUTES, *secrets.ROUTES))

"""Fixtures shared across test folders: a throw-away PostgreSQL server (see tests/pgserver.py).

Without PostgreSQL the tests that ask for it are skipped with a message saying how to get it;
under CI=true they fail instead, so CI never passes without having run them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgserver import IN_CI, PostgresServer, find_binaries


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session (started on first use, stopped at the end)."""
    bindir, why = find_binaries()
    if bindir is None:
        if IN_CI:
            pytest.fail(f"CI=true and {why}")
        pytest.skip(why)
    try:
        server = PostgresServer().start()
    except (RuntimeError, OSError) as e:
        if IN_CI:
            pytest.fail(f"CI=true and PostgreSQL could not start: {e}")
        pytest.skip(f"PostgreSQL could not start: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return postgres_server.new_database()

"""Fixtures shared across test folders: a throw-away PostgreSQL server (see tests/pgserver.py) and
a SoftHSM2 token (tests/softhsm.py).

Without PostgreSQL (SoftHSM2) the tests that ask for it are skipped with a message saying how to
get it; under CI=true they fail instead, so CI never passes without having run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pgserver import IN_CI, PostgresServer, find_binaries
from tests.softhsm import SoftHsm, find_softhsm

SOFTHSM_TOKEN = "kluis-test"


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


@pytest.fixture(scope="session")
def softhsm() -> Iterator[SoftHsm]:
    """SoftHSM2 with one initialised token (``SOFTHSM_TOKEN``, PIN in ``tests.softhsm.PIN_ENV``) for the
    session; its configuration and PIN variable are set in this process's environment (inherited by
    the servers tests start) until the end."""
    module, why = find_softhsm()
    if module is None:
        if IN_CI:
            pytest.fail(f"CI=true and {why}")
        pytest.skip(why)
    hsm = SoftHsm(module)
    hsm.init_token(SOFTHSM_TOKEN)
    saved = {name: os.environ.get(name) for name in hsm.env}
    os.environ.update(hsm.env)
    try:
        yield hsm
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        hsm.remove()

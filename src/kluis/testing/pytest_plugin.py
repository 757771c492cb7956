"""kluis's pytest plugin (entry point ``pytest11``): a real kluis per test session, a fresh vault per test.

Fixtures:

* ``kluis_server`` (session): a :class:`~kluis.testing.server.KluisServer` on free ports in a temporary
  data directory, started on first use and stopped at the end; its data directory and log are kept
  (and named in the summary) when a test failed.
* ``kluis_vault`` (function): a fresh :class:`~kluis.testing.vault.Vault` whose service principal holds
  the permissions ``@pytest.mark.kluis_vault(key_permissions=[...], secret_permissions=[...], seed=FILE)``
  asks for (no marker: every permission). ``seed`` is relative to the test file.
* ``kluis_vault_factory`` (function): ``make(**options)`` for more vaults in one test (same options).
* ``kluis_env`` (function): the ``kluis env`` variables of ``kluis_vault`` set in ``os.environ`` for the
  test, so application code building ``KeyClient(url, DefaultAzureCredential())`` itself runs unchanged.
* ``kluis_clock`` (function): ``advance(days=31)`` moves the server's clock and runs housekeeping;
  reset when the test ends.

Loaded in every project that installs kluis, so this module imports only pytest and the standard
library: the server, httpx and the Azure SDK are imported when a fixture is first used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kluis.testing.server import Clock, KluisServer
    from kluis.testing.vault import Vault

__all__ = [
    "kluis_clock",
    "kluis_env",
    "kluis_server",
    "kluis_vault",
    "kluis_vault_factory",
    "pytest_configure",
    "pytest_terminal_summary",
]

# Variables that would send the SDK elsewhere than the kluis env variables say (a lower-case proxy
# variable wins over HTTPS_PROXY in Python's urllib/requests; the others pick another credential).
_CONFLICTING = (
    "https_proxy", "AZURE_AUTHORITY_HOST", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "IDENTITY_HEADER",
    "MSI_ENDPOINT", "MSI_SECRET",
)  # fmt: skip
_KEPT = pytest.StashKey[list[Path]]()
_OPTIONS = ("key_permissions", "secret_permissions", "certificate_permissions", "sku", "retention_days",
            "purge_protection", "seed", "name")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``kluis_vault`` marker."""
    config.addinivalue_line(
        "markers",
        "kluis_vault(key_permissions=None, secret_permissions=None, certificate_permissions=None, sku='premium', "
        "retention_days=90, purge_protection=False, seed=None): how the kluis_vault fixture makes this test's vault",
    )
    config.stash[_KEPT] = []


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Name the kept server directories (a test failed) at the end of the run."""
    for path in config.stash.get(_KEPT, []):
        terminalreporter.write_line(f"kluis: server data and log kept in {path} (log: {path / 'kluis.log'})")


@pytest.fixture(scope="session")
def kluis_server(request: pytest.FixtureRequest) -> Iterator[KluisServer]:
    """One real ``kluis serve`` for the session (free ports, temporary data dir; removed unless a test failed)."""
    from kluis.testing.server import KluisServer, ServerError

    server = KluisServer()
    try:
        server.start()
    except ServerError:
        request.config.stash[_KEPT].append(server.data_dir)  # its log says why
        raise
    try:
        yield server
    finally:
        died = not server.running
        keep = died or request.session.testsfailed > 0
        server.stop(keep_files=keep)
        if keep:
            request.config.stash[_KEPT].append(server.data_dir)


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The vault options of the test: indirect parametrization wins over the closest ``kluis_vault`` marker."""
    options: dict[str, Any] = {}
    marker = request.node.get_closest_marker("kluis_vault")
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("@pytest.mark.kluis_vault takes keyword arguments only")
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if isinstance(param, dict):
        options.update(param)
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise pytest.UsageError(f"kluis_vault: unknown option(s) {', '.join(unknown)}; known: {', '.join(_OPTIONS)}")
    seed = options.get("seed")
    if isinstance(seed, str | Path) and not Path(seed).is_absolute():
        options["seed"] = Path(request.path).parent / seed
    return options


@pytest.fixture
def kluis_vault_factory(kluis_server: KluisServer) -> Iterator[Callable[..., Vault]]:
    """``make(key_permissions=..., secret_permissions=..., seed=...)``: fresh vaults, deleted after the test."""
    made: list[Vault] = []

    def make(**options: Any) -> Vault:
        vault = kluis_server.create_vault(**options)
        made.append(vault)
        return vault

    yield make
    for vault in made:
        vault.close()
        if kluis_server.running:
            kluis_server.delete_vault(vault)


@pytest.fixture
def kluis_vault(request: pytest.FixtureRequest) -> Vault:
    """A fresh vault and service principal; permissions and seed from ``@pytest.mark.kluis_vault(...)``."""
    options = _options(request)  # checked before the server starts: a typo fails fast
    seed = options.get("seed")
    if isinstance(seed, Path) and not seed.exists():
        raise pytest.UsageError(f"kluis_vault: seed file {seed} does not exist")
    make: Callable[..., Vault] = request.getfixturevalue("kluis_vault_factory")
    return make(**options)


@pytest.fixture
def kluis_env(kluis_vault: Vault, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``kluis env`` for ``kluis_vault`` in ``os.environ`` during the test; returns the variables set."""
    values = kluis_vault.env
    for name in _CONFLICTING:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def kluis_clock(kluis_server: KluisServer) -> Iterator[Clock]:
    """The server's clock: ``advance(days=..)`` then housekeeping; set back to where it was after the test."""
    clock = kluis_server.clock
    before = clock.offset
    yield clock
    if kluis_server.running:
        clock.set_offset(before)

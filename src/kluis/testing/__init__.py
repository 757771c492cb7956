"""kluis for tests and scripts: a real server per session, a fresh vault per test.

``with kluis.testing.KluisServer() as server: vault = server.create_vault(key_permissions=["get", "sign"])``;
the pytest plugin (``kluis.testing.pytest_plugin``, loaded automatically) wraps the same as fixtures.
Importing this package costs only the standard library: the rest loads when a server starts.
"""

from kluis.testing.server import Clock, KluisServer, ServerError, free_port
from kluis.testing.vault import Vault

__all__ = ["Clock", "KluisServer", "ServerError", "Vault", "free_port"]

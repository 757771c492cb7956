"""A stand-in for an Azure SDK client class, for CLI tests that need no server: it records the calls."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kluis.config import DataDir, ServerSettings


@dataclass
class Item:
    name: str
    managed: bool | None = None


class FakeClient:
    """Constructed like KeyClient/SecretClient (vault URL, credential, options); SDK calls for kind ``fake``."""

    made: ClassVar[list[FakeClient]] = []

    def __init__(self, vault_url: str, credential: Any, **options: Any) -> None:
        self.vault_url = vault_url
        self.calls: list[tuple[Any, ...]] = []
        FakeClient.made.append(self)

    def list_properties_of_fakes(self, max_page_size: int | None = None) -> list[Item]:
        self.calls.append(("list", max_page_size))
        return [Item("a"), Item("m", managed=True), Item("b"), Item("c")]

    def list_properties_of_fake_versions(self, name: str, max_page_size: int | None = None) -> list[Item]:
        self.calls.append(("versions", name, max_page_size))
        return [Item(f"{name}/1"), Item(f"{name}/2")]

    def list_deleted_fakes(self, max_page_size: int | None = None) -> list[Item]:
        self.calls.append(("deleted", max_page_size))
        return [Item("gone")]


def data_dir(tmp_path: Path, proxy_port: int = 9080) -> DataDir:
    """A data dir whose server.json/admin.json let an SDK client be built (nothing listens)."""
    d = DataDir(tmp_path).ensure()
    d.write_server(ServerSettings(port=9443, proxy_port=proxy_port))
    d.admin.write_text(json.dumps({"tenant": "t", "appId": "a", "password": "p"}))
    d.tls.mkdir(exist_ok=True)
    return d

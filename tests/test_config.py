"""The data directory and server settings: where state lives, how listeners are reached, server.json."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kluis.config import DataDir, ServerSettings, default_data_dir, write_private


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KLUIS_DATA_DIR", "~/state")
    assert default_data_dir() == tmp_path / "state"
    monkeypatch.delenv("KLUIS_DATA_DIR")
    assert default_data_dir().name == "kluis"


@pytest.mark.parametrize(
    ("host", "url", "proxy"),
    [
        ("127.0.0.1", "https://localhost:9443", "http://127.0.0.1:9080"),
        ("0.0.0.0", "https://localhost:9443", "http://127.0.0.1:9080"),
        ("::", "https://localhost:9443", "http://127.0.0.1:9080"),
        ("10.0.0.5", "https://10.0.0.5:9443", "http://10.0.0.5:9080"),
        # The IPv6 loopback alone is reached there, in brackets: localhost may name 127.0.0.1 only.
        ("::1", "https://[::1]:9443", "http://[::1]:9080"),
        ("fd00::5", "https://[fd00::5]:9443", "http://[fd00::5]:9080"),
        ("kluis.lan", "https://kluis.lan:9443", "http://kluis.lan:9080"),
    ],
)
def test_urls(host: str, url: str, proxy: str) -> None:
    settings = ServerSettings(host=host, port=9443, proxy_port=9080)
    assert (settings.url, settings.proxy_url) == (url, proxy)


def test_data_dir_layout_and_private_creation(tmp_path: Path) -> None:
    d = DataDir(tmp_path / "a" / "b").ensure()
    assert stat.S_IMODE(d.path.stat().st_mode) == 0o700
    assert (d.database.name, d.kek.name, d.tls.name, d.admin.name, d.server.name, d.ca_bundle.name) == (
        "kluis.db", "kek.key", "tls", "admin.json", "server.json", "ca-bundle.pem",
    )  # fmt: skip
    assert all(p.parent == d.path for p in (d.database, d.kek, d.tls, d.admin, d.server, d.ca_bundle))


def test_server_settings_round_trip_and_tolerate_unknown_fields(tmp_path: Path) -> None:
    d = DataDir(tmp_path).ensure()
    assert d.read_server() is None
    settings = ServerSettings(port=1, proxy_port=0, hostnames=["h"], domains=["d.example"], workers=3)
    d.write_server(settings)
    assert d.read_server() == settings and stat.S_IMODE(d.server.stat().st_mode) == 0o600
    data = json.loads(d.server.read_text())
    data["from_a_newer_release"] = True
    d.server.write_text(json.dumps(data))
    assert d.read_server() == settings


def test_write_private_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "secret.json"
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.json"]  # no temporary file left behind


def test_a_relative_data_dir_is_kept_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What kluis prints and records names the same directory from any working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert DataDir(Path("dd")).database == tmp_path / "dd" / "kluis.db"
    assert DataDir("~/kv").path == tmp_path / "home" / "kv"
    monkeypatch.chdir("/")
    assert DataDir(tmp_path / "dd").path == tmp_path / "dd"

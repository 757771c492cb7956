from __future__ import annotations

import pytest

from benchmarks.load import Scenario, run_load
from benchmarks.proxy import main


def test_only_the_python_client_speaks_connect() -> None:
    with pytest.raises(ValueError, match="CONNECT"):
        run_load("https://default.vault.azure.net:443", Scenario("x", "GET", "/"), duration=0.1, connections=1,
                 client="wrk", proxy=("127.0.0.1", 1))  # fmt: skip


def test_the_command_line_documents_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "CONNECT proxy costs per request" in capsys.readouterr().out

"""Flags, the operation registry, setups run once, and the command line for a baseline checkout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from benchmarks.load import Scenario, _wrk_script
from benchmarks.raw import PRIMITIVES
from benchmarks.runner import parse_args
from benchmarks.scenarios import OPERATIONS, Api, Fixture, operation, prepare
from benchmarks.server import SRC, serve_command


def test_repeat_defaults_to_three_and_never_fewer() -> None:
    args = parse_args([])
    assert args.repeat == 3 and args.duration == 4.0
    quick = parse_args(["--quick"])
    assert quick.repeat == 3 and quick.duration < args.duration and quick.raw_seconds < args.raw_seconds
    assert parse_args(["--repeat", "5"]).repeat == 5
    with pytest.raises(SystemExit):
        parse_args(["--repeat", "2"])


def test_only_and_baseline_flags(tmp_path: Path) -> None:
    args = parse_args(["--only", "get_key,list_keys", "--baseline", str(SRC.parent)])
    assert args.ops == ["get_key", "list_keys"]
    assert args.baseline_ops == ["get_key"]  # sign_ps256 is not run, so not compared
    assert args.baseline == SRC.parent.resolve()
    assert (args.audit, args.baseline_audit) == ("on", "on")  # kluis ships with the audit log on
    costed = parse_args(["--baseline", str(SRC.parent), "--baseline-audit", "off"])
    assert (costed.audit, costed.baseline_audit) == ("on", "off")
    argv, env, _ = serve_command({"--audit": "off"}, {"--audit"})
    assert argv[-2:] == ["--audit", "off"] and env == {"KLUIS_AUDIT": "off"}
    with pytest.raises(SystemExit):
        parse_args(["--baseline", str(tmp_path)])  # no src/kluis there
    with pytest.raises(SystemExit):
        parse_args(["--only", "get_secret_typo"])


def test_every_operation_is_declared_consistently() -> None:
    fixture = Fixture("token", {"rsa": "/keys/r/1", "ec": "/keys/e/1", "oct": "/keys/o/1", "ciphertext": "c",
                                "wrapped": "w"})  # fmt: skip
    for name, op in OPERATIONS.items():
        s = op.scenario(fixture)
        assert s.name == name and s.method in ("GET", "POST")
        assert "api-version=" in s.path and ("Authorization", "Bearer token") in s.headers
        assert op.raw is None or op.raw in PRIMITIVES
    assert OPERATIONS["create_rsa"].scenario(Fixture("t", paced_rate=4.0)).delay_ms == 250.0
    with pytest.raises(ValueError):
        operation("get_key", "again")(lambda f: f.get("/x"))


class _Server:
    """Stands in for a KluisProcess: answers setup calls like kluis would, and records them."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        name = request.url.path.split("/")[2]
        body = json.loads(request.content or b"{}")
        if request.url.path.endswith("/create"):
            return httpx.Response(200, json={"key": {"kid": f"https://x/keys/{name}/v1"}})
        return httpx.Response(200, json={"value": f"{body.get('alg')}-out"})

    def client(self) -> httpx.Client:
        return httpx.Client(base_url="https://x", transport=httpx.MockTransport(self._answer))

    def token(self) -> str:
        return "tok"


def test_prepare_runs_each_shared_setup_once() -> None:
    server = _Server()
    fixture = prepare(server, ["get_key", "sign_ps256", "decrypt_rsa_oaep256"])  # type: ignore[arg-type]
    calls = server.calls
    assert calls == [
        "POST /keys/bench-rsa/create",
        "POST /keys/bench-rsa/v1/encrypt",
        "POST /keys/bench-rsa/v1/wrapkey",
    ]
    assert fixture["rsa"] == "/keys/bench-rsa/v1" and fixture.token == "tok"
    assert OPERATIONS["sign_ps256"].scenario(fixture).path.startswith("/keys/bench-rsa/v1/sign?")


def test_serve_command_leaves_out_flags_an_older_cli_lacks() -> None:
    options = {"--data-dir": "/d", "--port": "1234", "--key-pool": "16", "--scheduler-interval": "3600"}
    argv, env, dropped = serve_command(options, {"--data-dir", "--port", "--help"})
    assert argv == [sys.executable, "-m", "kluis", "serve", "--data-dir", "/d", "--port", "1234"]
    assert dropped == ["--key-pool", "--scheduler-interval"]
    # a setting whose flag is missing still reaches kluis through its environment variable
    assert env == {"KLUIS_DATA_DIR": "/d", "KLUIS_PORT": "1234", "KLUIS_SCHEDULER_INTERVAL": "3600"}


def test_created_names_are_fresh_in_every_run() -> None:
    s = Scenario("create_ec", "POST", "/keys/new-ec-{}/create?api-version=7.6", "{}", vary="seq")
    assert '"run1%dx%d"' in _wrk_script(s, "run1") and '"run2%dx%d"' in _wrk_script(s, "run2")


def test_a_new_operation_is_declared_in_one_place() -> None:
    def _secret(api: Api) -> dict[str, str]:
        api.call("PUT", "/secrets/bench-secret", value="x" * 32)
        return {"secret": "/secrets/bench-secret"}

    @operation("get_secret_example", "get secret", setup=_secret)
    def _get_secret(f: Fixture) -> Scenario:
        return f.get(f"{f['secret']}/")

    try:
        assert parse_args(["--only", "get_secret_example"]).ops == ["get_secret_example"]
        server = _Server()
        fixture = prepare(server, ["get_secret_example"])  # type: ignore[arg-type]
        assert server.calls == ["PUT /secrets/bench-secret"]
        s = OPERATIONS["get_secret_example"].scenario(fixture)
        assert (s.name, s.method, s.path) == ("get_secret_example", "GET", "/secrets/bench-secret/?api-version=7.6")
    finally:
        del OPERATIONS["get_secret_example"]


def test_an_operation_paired_with_get_key_also_sets_get_key_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--only sign_es256`` runs get key in its rounds, so get key's fixture must exist (it answered
    404 on every request before, and the ratio came out empty)."""
    from types import SimpleNamespace

    import benchmarks.runner as runner

    prepared: list[list[str]] = []
    monkeypatch.setattr(runner, "prepare", lambda server, ops, **kw: prepared.append(list(ops)) or "fixture")
    monkeypatch.setattr(runner, "wait_idle", lambda pid: 0.0)
    bench = SimpleNamespace(args=parse_args([]), log=lambda *a: None)
    server = SimpleNamespace(process=SimpleNamespace(pid=1), url="https://x")
    for only, expected in ((["sign_es256"], ["sign_es256", "get_key"]), (["sign_ps256"], ["sign_ps256"]),
                           (["get_key", "get_secret"], ["get_key", "get_secret"])):  # fmt: skip
        runner._settle(bench, server, only)  # type: ignore[arg-type]
        assert prepared.pop() == expected


def test_baseline_ablate_needs_a_baseline_and_known_steps(capsys: pytest.CaptureFixture[str]) -> None:
    here = str(Path(__file__).resolve().parents[2])
    assert parse_args(["--baseline", here, "--baseline-ablate", "all"]).baseline_ablate == (
        "token,apiversion,vault,throttle,authz,freshness,event,requestid"
    )
    for argv, message in ((["--baseline-ablate", "token"], "needs --baseline"),
                          (["--baseline", here, "--baseline-ablate", "tokn"], "unknown ablation step")):  # fmt: skip
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert message in capsys.readouterr().err

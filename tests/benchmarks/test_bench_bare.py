"""benchmarks.bare: the bare endpoint's crypto routes answer what a Key Vault endpoint must, for the
keys every worker shares; checked with independently built ``cryptography`` calls, not the app's own."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from benchmarks.bare import CRYPTO, BareApp, BareKeys, BareServer, b64url, unb64url
from benchmarks.load import Scenario
from benchmarks.raw import PRIMITIVES
from benchmarks.runner import BARE, PAIRED_WITH_GET_KEY, Bench, _operation, parse_args
from benchmarks.scenarios import OPERATIONS, Fixture

SHA = hashes.SHA256()
KLUIS_CIPHERTEXT = b64url(os.urandom(256))  # what kluis's setup answers: an RSA-2048 OAEP ciphertext
FIXTURE = Fixture("token", {"rsa": "/keys/r/1", "ec": "/keys/e/1", "oct": "/keys/o/1", "ciphertext": KLUIS_CIPHERTEXT,
                            "wrapped": KLUIS_CIPHERTEXT})  # fmt: skip


@pytest.fixture(scope="module")
def keys() -> BareKeys:
    return BareKeys.generate()


@dataclass
class _Scope:
    method: str
    path: str


@dataclass
class _Protocol:
    """What the app sees of granian's RSGI protocol: the body, awaited, and ``response_bytes``."""

    body: bytes = b""
    answer: list[Any] = field(default_factory=list)

    async def __call__(self) -> bytes:
        return self.body

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.answer = [status, dict(headers), body]


def _call(app: BareApp, method: str, path: str, body: str | None = None) -> tuple[int, dict[str, Any]]:
    protocol = _Protocol((body or "").encode())
    asyncio.run(app.__rsgi__(_Scope(method, path), protocol))
    status, headers, raw = protocol.answer
    assert headers == {"content-type": "application/json; charset=utf-8", "content-length": str(len(raw))}
    return status, json.loads(raw)


def _post(keys: BareKeys, op: str) -> tuple[dict[str, Any], bytes]:
    """kluis's request of ``op`` sent to its bare crypto route: the answer and the ``value`` sent."""
    scenario = OPERATIONS[op].scenario(FIXTURE)
    primitive = OPERATIONS[op].raw
    assert primitive is not None
    body = keys.body(primitive, scenario.body)
    status, answer = _call(BareApp(keys), "POST", f"/bare/{primitive}", body)
    assert status == 200
    sent = json.loads(body or "{}").get("value")
    return answer, unb64url(sent) if sent else b""


def test_every_unpaced_raw_primitive_of_an_operation_has_a_route() -> None:
    used = {op.raw for op in OPERATIONS.values() if op.raw and not op.scenario(FIXTURE).delay_ms}
    assert used <= set(CRYPTO) <= set(PRIMITIVES)


def test_ps256_answers_a_valid_signature_of_the_digest_sent(keys: BareKeys) -> None:
    answer, digest = _post(keys, "sign_ps256")
    pss = padding.PSS(mgf=padding.MGF1(SHA), salt_length=32)
    keys.rsa.public_key().verify(unb64url(answer["value"]), digest, pss, utils.Prehashed(SHA))  # raises if invalid
    assert len(digest) == 32 and answer["kid"].startswith("https://")


def test_es256_answers_a_jose_signature_r_s_of_the_digest_sent(keys: BareKeys) -> None:
    answer, digest = _post(keys, "sign_es256")
    raw = unb64url(answer["value"])
    assert len(raw) == 64  # JOSE: r || s, 32 bytes each, not DER
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    keys.ec.public_key().verify(der, digest, ec.ECDSA(utils.Prehashed(SHA)))


@pytest.mark.parametrize("op", ["decrypt_rsa_oaep256", "unwrap_rsa_oaep256"])
def test_oaep_decrypt_answers_the_plaintext_of_a_ciphertext_made_for_the_shared_key(keys: BareKeys, op: str) -> None:
    kluis = OPERATIONS[op].scenario(FIXTURE)
    body = keys.body("rsa_oaep_decrypt", kluis.body)
    assert body is not None and kluis.body is not None
    assert len(body) == len(kluis.body) and json.loads(body)["alg"] == "RSA-OAEP-256"  # same shape, same size
    oaep = padding.OAEP(mgf=padding.MGF1(SHA), algorithm=SHA, label=None)
    secret = os.urandom(32)
    ciphertext = keys.rsa.public_key().encrypt(secret, oaep)
    status, answer = _call(BareApp(keys), "POST", "/bare/rsa_oaep_decrypt",
                           json.dumps({"alg": "RSA-OAEP-256", "value": b64url(ciphertext)}))  # fmt: skip
    assert status == 200 and unb64url(answer["value"]) == secret
    answer, sent = _post(keys, op)  # the body the runner sends decrypts too
    assert unb64url(answer["value"]) == keys.rsa.decrypt(sent, oaep) and len(unb64url(answer["value"])) == 32


def test_a256gcm_answers_a_ciphertext_iv_and_tag_that_decrypt_to_the_value_sent(keys: BareKeys) -> None:
    answer, plaintext = _post(keys, "encrypt_a256gcm")
    iv, tag = unb64url(answer["iv"]), unb64url(answer["tag"])
    assert len(iv) == 12 and len(tag) == 16
    assert AESGCM(keys.aes).decrypt(iv, unb64url(answer["value"]) + tag, None) == plaintext
    again, _ = _post(keys, "encrypt_a256gcm")
    assert again["iv"] != answer["iv"]  # a fresh nonce per request


def test_ec_generate_answers_a_point_of_p256(keys: BareKeys) -> None:
    first, _ = _post(keys, "create_ec")
    second, _ = _post(keys, "create_ec")
    for answer in (first, second):
        x, y = int.from_bytes(unb64url(answer["x"]), "big"), int.from_bytes(unb64url(answer["y"]), "big")
        ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()  # ValueError when not on the curve
    assert first["x"] != second["x"]  # a new key per request


def test_bare_get_and_post_are_unchanged_and_other_paths_are_404(keys: BareKeys) -> None:
    app = BareApp(keys)
    assert _call(app, "GET", "/bare")[1]["value"] == "x" * 43
    assert _call(app, "POST", "/bare", BARE["POST"].body)[1]["alg"] == "ES256"
    assert _call(app, "POST", "/bare/rsa2048_generate", "{}")[0] == 404  # only paced operations use it
    assert _call(BareApp(None), "POST", "/bare/rsa_pss_sign", '{"value":"AA"}')[0] == 404  # no keys loaded


def test_keys_survive_the_file_every_worker_loads(keys: BareKeys, tmp_path: Path) -> None:
    path = keys.save(tmp_path / "keys.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = BareKeys.load(path)
    assert loaded.rsa.private_numbers() == keys.rsa.private_numbers()
    assert loaded.ec.private_numbers() == keys.ec.private_numbers()
    assert loaded.aes == keys.aes and len(keys.aes) == 32


def test_the_crypto_scenario_is_kluiss_request_on_the_bare_route(tmp_path: Path) -> None:
    server = BareServer(tmp_path / "c.pem", tmp_path / "k.pem", 2, tmp_path)
    kluis = OPERATIONS["sign_es256"].scenario(FIXTURE)
    bare = server.crypto_scenario("ecdsa_p256_sign", kluis)
    assert (bare.method, bare.path, bare.body, bare.headers) == ("POST", "/bare/ecdsa_p256_sign", kluis.body,
                                                                 kluis.headers)  # fmt: skip
    created = server.crypto_scenario("ec_p256_generate", OPERATIONS["create_ec"].scenario(FIXTURE))
    assert "{}" not in created.path and created.vary == "none"
    with pytest.raises(KeyError):
        server.crypto_scenario("rsa2048_generate", kluis)


@pytest.mark.slow
def test_a_served_bare_endpoints_workers_share_the_keys(tmp_path: Path) -> None:
    from kluis.identity.pki import ensure_tls

    tls = ensure_tls(tmp_path / "tls", ["127.0.0.1", "localhost"])
    server = BareServer(tls.server_cert, tls.server_key, 2, tmp_path).start()
    try:
        kluis = OPERATIONS["sign_ps256"].scenario(FIXTURE)
        bare = server.crypto_scenario("rsa_pss_sign", kluis)
        digest = unb64url(json.loads(kluis.body or "{}")["value"])
        pss = padding.PSS(mgf=padding.MGF1(SHA), salt_length=32)
        for _ in range(12):  # a new connection each, spread over the workers (a worker with its own key fails)
            r = httpx.post(f"{server.url}{bare.path}", content=bare.body, headers=dict(bare.headers), verify=False)
            assert r.status_code == 200
            server.keys.rsa.public_key().verify(unb64url(r.json()["value"]), digest, pss, utils.Prehashed(SHA))
        decrypt = server.crypto_scenario("rsa_oaep_decrypt", OPERATIONS["decrypt_rsa_oaep256"].scenario(FIXTURE))
        r = httpx.post(f"{server.url}{decrypt.path}", content=decrypt.body, verify=False)
        assert r.status_code == 200 and len(unb64url(r.json()["value"])) == 32
        assert len(server.worker_pids()) == 2
    finally:
        server.stop()


class _Bench(Bench):
    """The runner's rounds without servers: every run is recorded with the request it would send."""

    def __init__(self, repeat: int = 3) -> None:
        super().__init__(parse_args(["--repeat", str(repeat), "--quiet-wait", "0"]), Path("."), "wrk", 0.0)
        self.sent: list[tuple[str, Scenario | str]] = []

    def load(self, url: str, scenario: Scenario, who: str, **kw: Any) -> dict[str, Any]:
        self.sent.append((who, scenario))
        return {"ops_s": {"bare_cry": 800.0, "bare": 4_000.0, "bare_get": 1_600.0}.get(who, 500.0)}

    def served(self, server: Any, scenario: Scenario, who: str, **kw: Any) -> dict[str, Any]:
        return self.load("", scenario, who)

    def raw(self, raw: Any, primitive: str) -> dict[str, Any]:
        self.sent.append(("raw", primitive))
        return {"ops_s": 1_000.0}


@pytest.mark.parametrize("op", ["sign_es256", "decrypt_rsa_oaep256", "create_ec", "get_key", "create_rsa"])
def test_the_runner_alternates_bare_crypto_with_the_other_subjects(tmp_path: Path, op: str) -> None:
    bench, server = _Bench(), BareServer(tmp_path / "c.pem", tmp_path / "k.pem", 2, tmp_path)
    entry = _operation(bench, op, None, FIXTURE, None, None, server)  # type: ignore[arg-type]
    order = [who for who, _ in bench.sent]
    operation = OPERATIONS[op]
    if operation.raw is None or operation.scenario(FIXTURE).delay_ms:  # no raw primitive, or paced
        assert "bare_cry" not in order and "bare_crypto_ops_s" not in entry
        return
    paired = op in PAIRED_WITH_GET_KEY  # its target is a share of get key: get key and the bare GET join its rounds
    subjects = ["kluis", "raw", "bare", "bare_cry"] + (["get_key", "bare_get"] if paired else [])
    assert order == subjects + subjects[::-1] + subjects  # ABBA: one run each per round, reversed every other
    if paired:
        assert all(s == BARE["GET"] for who, s in bench.sent if who == "bare_get")
        assert entry["bare_crypto_over_bare_get"] == 0.5 and entry["kluis_over_get_key"] == 1.0
    else:
        assert "bare_crypto_over_bare_get" not in entry
    kluis = operation.scenario(FIXTURE)
    for sent in (s for who, s in bench.sent if who == "bare_cry"):
        assert isinstance(sent, Scenario) and sent.path == f"/bare/{operation.raw}" and sent.headers == kluis.headers
        assert sent.body == kluis.body or op == "decrypt_rsa_oaep256"  # only a ciphertext is made for the bare key
    assert entry["bare_crypto_ops_s"] == 800.0 and entry["bare_crypto_over_raw"] == 0.8
    assert entry["kluis_over_bare_crypto"] == 0.625 and entry["raw_primitive"] == operation.raw

"""The bare-endpoint ceilings: a tiny app on granian, configured exactly like ``kluis serve``.

Same TLS certificate and key, same worker count, same interface (RSGI, as ``kluis serve`` uses),
no access log, no websockets, and no framework at all: the least any handler can do.
``GET /bare`` answers a small JSON object; ``POST /bare`` also reads and parses a JSON body first,
which is the least any POST operation has to do. What kluis reaches as a share of these is the
cost of kluis itself (auth, routing, store, serialisation) on top of the HTTP stack.

``POST /bare/<primitive>`` (one route per primitive of :mod:`benchmarks.raw` an unpaced operation
uses, :data:`CRYPTO`) is the HTTP stack's ceiling for that operation: it reads the body, parses
its JSON, base64url-decodes ``value``, runs the same ``cryptography`` call as the raw ceiling with
a key built once per worker by raw.py's own key builders, base64url-encodes the result and answers
``{"kid": ..., "value": ...}`` (an AES-GCM encryption adds ``iv`` and ``tag``, an ES256 signature
is turned from DER into JOSE's ``r || s``, a generated EC key answers its public ``x`` and ``y``:
what any Key Vault endpoint has to answer). No auth, no store. All workers share the keys: the
runner side (:class:`BareServer`) generates them and writes them to a file whose path the workers
find in :data:`KEYS_ENV`; it also builds the request bodies, so a decryption's ciphertext is made
for that key (:meth:`BareKeys.body`).

Run as ``python -m benchmarks.bare CERT KEY PORT WORKERS`` (the runner does this in a subprocess).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from benchmarks.load import Scenario
from benchmarks.raw import ECDSA, OAEP, PREHASHED, PSS, aes_key, ec_key, rsa_key
from benchmarks.server import free_port, launch, stop_process, with_pythonpath, worker_pids

__all__ = ["CRYPTO", "KEYS_ENV", "BareKeys", "BareServer", "app"]

KEYS_ENV = "KLUIS_BENCH_BARE_KEYS"  # the JSON file of the crypto routes' keys (BareKeys.save), read by each worker
_KID = "https://127.0.0.1/keys/bare/0123456789abcdef0123456789abcdef"
_ANSWER = {"kid": _KID, "value": "x" * 43}
_JSON = "application/json; charset=utf-8"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """base64url without padding (as Key Vault's JSON carries it) -> bytes; ValueError when malformed."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class BareKeys:
    """The keys of the crypto routes (built by :mod:`benchmarks.raw`'s builders): one RSA-2048 key for
    PS256 and RSA-OAEP-256, one P-256 key, one AES-256 key."""

    rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    aes: bytes
    aead: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "aead", AESGCM(self.aes))

    @classmethod
    def generate(cls) -> BareKeys:
        return cls(rsa_key(), ec_key(), aes_key())

    def save(self, path: Path) -> Path:
        """Write the keys (PKCS#8 PEM, AES base64url) as JSON to ``path``, readable by the owner only."""
        pem = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        doc = {"rsa": self.rsa.private_bytes(*pem).decode(), "ec": self.ec.private_bytes(*pem).decode(),
               "aes": b64url(self.aes)}  # fmt: skip
        path.touch(mode=0o600)
        path.write_text(json.dumps(doc))
        return path

    @classmethod
    def load(cls, path: Path) -> BareKeys:
        """The keys :meth:`save` wrote; ValueError (or KeyError, OSError) when the file is not such a file."""
        doc = json.loads(path.read_text())
        rsa_pem = serialization.load_pem_private_key(doc["rsa"].encode(), None)
        ec_pem = serialization.load_pem_private_key(doc["ec"].encode(), None)
        if not isinstance(rsa_pem, rsa.RSAPrivateKey) or not isinstance(ec_pem, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: not an RSA and an EC private key")
        return cls(rsa_pem, ec_pem, unb64url(doc["aes"]))

    def body(self, primitive: str, body: str | None) -> str | None:
        """The request body for ``POST /bare/<primitive>`` from kluis's body of the same operation: the
        same JSON, except that a decryption's ``value`` is a ciphertext of 32 random bytes for this RSA
        key (made as raw.py makes it; the same length as kluis's, RSA-2048 OAEP being 256 bytes)."""
        if primitive != "rsa_oaep_decrypt" or body is None:
            return body
        doc = json.loads(body)
        doc["value"] = b64url(self.rsa.public_key().encrypt(os.urandom(32), OAEP))
        return json.dumps(doc, separators=(",", ":"))


def _sign_pss(keys: BareKeys, value: bytes) -> dict[str, str]:
    return {"kid": _KID, "value": b64url(keys.rsa.sign(value, PSS, PREHASHED))}


def _decrypt_oaep(keys: BareKeys, value: bytes) -> dict[str, str]:
    return {"kid": _KID, "value": b64url(keys.rsa.decrypt(value, OAEP))}


def _sign_ecdsa(keys: BareKeys, value: bytes) -> dict[str, str]:
    r, s = decode_dss_signature(keys.ec.sign(value, ECDSA))
    return {"kid": _KID, "value": b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}


def _encrypt_gcm(keys: BareKeys, value: bytes) -> dict[str, str]:
    iv = os.urandom(12)
    sealed = keys.aead.encrypt(iv, value, None)
    return {"kid": _KID, "value": b64url(sealed[:-16]), "iv": b64url(iv), "tag": b64url(sealed[-16:])}


def _generate_ec(keys: BareKeys, value: bytes) -> dict[str, str]:
    public = ec_key().public_key().public_numbers()
    return {"kid": _KID, "kty": "EC", "crv": "P-256", "x": b64url(public.x.to_bytes(32, "big")),
            "y": b64url(public.y.to_bytes(32, "big"))}  # fmt: skip


# ``POST /bare/<primitive>``: what each handler does with the decoded ``value`` (a generation has none).
CRYPTO: dict[str, Callable[[BareKeys, bytes], dict[str, str]]] = {
    "rsa_pss_sign": _sign_pss,
    "rsa_oaep_decrypt": _decrypt_oaep,
    "ecdsa_p256_sign": _sign_ecdsa,
    "aes256_gcm_encrypt": _encrypt_gcm,
    "ec_p256_generate": _generate_ec,
}
_ROUTES = {f"/bare/{name}": fn for name, fn in CRYPTO.items()}


class BareApp:
    """``GET /bare`` -> small JSON; ``POST /bare`` parses the JSON body first; ``POST /bare/<primitive>``
    (with ``keys``) also runs the primitive on the body's ``value``. Anything else: 404."""

    def __init__(self, keys: BareKeys | None = None) -> None:
        self.keys = keys

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        status = 200
        if scope.method == "POST":
            body = json.loads(await protocol())
            if scope.path == "/bare":
                payload: dict[str, Any] = {**_ANSWER, "alg": body.get("alg")}
            elif (route := _ROUTES.get(scope.path)) is not None and self.keys is not None:
                value = body.get("value")
                payload = route(self.keys, unb64url(value) if isinstance(value, str) else b"")
            else:
                status, payload = 404, {"error": {"code": "NotFound", "message": scope.path}}
        else:
            payload = _ANSWER
        raw = json.dumps(payload, separators=(",", ":")).encode()
        protocol.response_bytes(status, [("content-type", _JSON), ("content-length", str(len(raw)))], raw)


def _app() -> BareApp:
    path = os.environ.get(KEYS_ENV)
    return BareApp(BareKeys.load(Path(path)) if path else None)


app = _app()  # each granian worker imports this module: its keys are loaded once per worker process


@dataclass
class BareServer:
    cert: Path
    key: Path
    workers: int
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    keys: BareKeys = field(default_factory=BareKeys.generate)  # the crypto routes' keys, shared by all workers

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> BareServer:
        root = Path(__file__).resolve().parent.parent
        keys = self.keys.save(self.log_dir / f"bare-keys-{self.port}.json")
        self.process = launch(
            [sys.executable, "-m", "benchmarks.bare", str(self.cert), str(self.key), str(self.port), str(self.workers)],
            log_path=self.log_dir / f"bare-{self.port}.log",
            ready_url=f"{self.url}/bare",
            timeout=timeout,
            env=with_pythonpath(root, {KEYS_ENV: str(keys)}),
            cwd=str(root),
        )
        return self

    def crypto_scenario(self, primitive: str, scenario: Scenario) -> Scenario:
        """kluis's request ``scenario`` sent to ``POST /bare/<primitive>`` instead: the same method, headers
        (the token too, which nothing reads) and body (:meth:`BareKeys.body`: a decryption's ciphertext is
        made for this server's key). KeyError when ``primitive`` has no route."""
        if primitive not in CRYPTO:
            raise KeyError(f"no bare crypto route for {primitive!r} (known: {', '.join(CRYPTO)})")
        return replace(scenario, name=f"bare {primitive}", path=f"/bare/{primitive}", vary="none",
                       body=self.keys.body(primitive, scenario.body))  # fmt: skip

    def worker_pids(self) -> list[int]:
        """granian's worker processes (children of the server process), for ``--profile``."""
        return worker_pids(self.process.pid) if self.process is not None else []

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def _serve(cert: str, key: str, port: int, workers: int) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    Server(
        "benchmarks.bare:app",
        address="127.0.0.1",
        port=port,
        interface=Interfaces.RSGI,
        workers=workers,
        ssl_cert=Path(cert),
        ssl_key=Path(key),
        log_access=False,
        websockets=False,
    ).serve()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

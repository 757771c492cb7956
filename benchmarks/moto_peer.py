"""The peer: moto's KMS server (``moto_server``, Werkzeug, threaded), side by side with kluis.

It serves HTTPS with kluis's own server certificate, so both pay for TLS. Keys are created with
boto3 (RSA_2048 and ECC_NIST_P256, SIGN_VERIFY); the load is the same wrk/python client with raw
KMS JSON requests: ``Sign`` (RSASSA_PSS_SHA_256 / ECDSA_SHA_256 over a 32-byte digest) and
``GetPublicKey``. moto checks no signatures, so requests carry a well-formed but unsigned
SigV4 ``Authorization`` header (moto reads the service and region from it).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.load import Scenario
from benchmarks.server import free_port, launch, stop_process

__all__ = ["MOTO_PAIRS", "MotoServer", "moto_available"]

# moto scenario -> the kluis operation it is compared with
MOTO_PAIRS: dict[str, str] = {
    "moto_get_public_key": "get_key",
    "moto_sign_rsa_pss": "sign_ps256",
    "moto_sign_ecdsa": "sign_es256",
}

_AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1/kms/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64
)


def moto_available() -> str | None:
    """None when moto's server can run here, else why not."""
    for mod in ("moto", "flask", "boto3"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install -e '.[bench]')"
    return None


@dataclass
class MotoServer:
    cert: Path
    key: Path
    ca: Path
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> MotoServer:
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
        cmd = [exe] if exe else [sys.executable, "-m", "moto.server"]
        self.process = launch(
            [*cmd, "-H", "127.0.0.1", "-p", str(self.port), "-c", str(self.cert), "-k", str(self.key)],
            log_path=self.log_dir / f"moto-{self.port}.log",
            ready_url=f"{self.url}/moto-api/",
            timeout=timeout,
            env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
            grace=5,
        )
        return self

    def stop(self) -> None:
        stop_process(self.process, grace=5)
        self.process = None

    def scenarios(self) -> dict[str, Scenario]:
        import boto3  # type: ignore[import-untyped]

        kms = boto3.client(
            "kms",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="secret",
            verify=str(self.ca),
        )
        rsa = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]["KeyId"]
        ec = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
        digest = base64.b64encode(os.urandom(32)).decode()
        for key, alg in ((rsa, "RSASSA_PSS_SHA_256"), (ec, "ECDSA_SHA_256")):  # fail fast if moto cannot
            kms.sign(KeyId=key, Message=base64.b64decode(digest), MessageType="DIGEST", SigningAlgorithm=alg)

        def op(name: str, target: str, **body: str) -> Scenario:
            return Scenario(
                name,
                "POST",
                "/",
                json.dumps(body),
                content_type="application/x-amz-json-1.1",
                headers=(
                    ("X-Amz-Target", f"TrentService.{target}"),
                    ("X-Amz-Date", "20250101T000000Z"),
                    ("Authorization", _AUTH),
                ),
            )

        sign = {"Message": digest, "MessageType": "DIGEST"}
        return {
            "moto_get_public_key": op("moto_get_public_key", "GetPublicKey", KeyId=rsa),
            "moto_sign_rsa_pss": op(
                "moto_sign_rsa_pss", "Sign", KeyId=rsa, SigningAlgorithm="RSASSA_PSS_SHA_256", **sign
            ),
            "moto_sign_ecdsa": op("moto_sign_ecdsa", "Sign", KeyId=ec, SigningAlgorithm="ECDSA_SHA_256", **sign),
        }

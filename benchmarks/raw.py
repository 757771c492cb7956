"""The raw-crypto ceiling: each operation straight on ``cryptography``, in N processes, no HTTP.

Each process loops on one primitive for a fixed time with its key built once, exactly the call
kluis makes (PSS with salt = digest length over a prehashed SHA-256 digest, OAEP with SHA-256 and
MGF1-SHA256, ECDSA over a prehashed digest, AES-GCM with a fresh 96-bit nonce). Rates are summed
over the processes, each measured over its own loop, so process start-up does not count.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["ECDSA", "OAEP", "PREHASHED", "PRIMITIVES", "PSS", "RawCeiling", "aes_key", "ec_key", "rsa_key"]

PRIMITIVES = (
    "rsa_pss_sign",
    "rsa_oaep_decrypt",
    "ecdsa_p256_sign",
    "aes256_gcm_encrypt",
    "ec_p256_generate",
    "rsa2048_generate",
)  # what an operation's ``raw`` may name (benchmarks.scenarios)


# The parameters of the calls kluis makes (PS256, RSA-OAEP-256, ES256), shared with the bare endpoint's
# crypto routes (benchmarks.bare), which must run exactly the call measured here.
SHA256 = hashes.SHA256()
PSS = padding.PSS(mgf=padding.MGF1(SHA256), salt_length=32)
PREHASHED = utils.Prehashed(SHA256)
OAEP = padding.OAEP(mgf=padding.MGF1(SHA256), algorithm=SHA256, label=None)
ECDSA = ec.ECDSA(utils.Prehashed(SHA256))


def rsa_key() -> rsa.RSAPrivateKey:
    """The key of ``rsa_pss_sign`` and ``rsa_oaep_decrypt``: RSA-2048, e = 65537."""
    return rsa.generate_private_key(65537, 2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    """The key of ``ecdsa_p256_sign``: P-256."""
    return ec.generate_private_key(ec.SECP256R1())


def aes_key() -> bytes:
    """The key of ``aes256_gcm_encrypt``: 32 random bytes."""
    return AESGCM.generate_key(256)


def _make(primitive: str) -> Callable[[], object]:
    digest = os.urandom(32)
    if primitive in ("rsa_pss_sign", "rsa_oaep_decrypt"):
        key = rsa_key()
        if primitive == "rsa_pss_sign":
            return lambda: key.sign(digest, PSS, PREHASHED)
        ct = key.public_key().encrypt(digest, OAEP)
        return lambda: key.decrypt(ct, OAEP)
    if primitive == "ecdsa_p256_sign":
        eckey = ec_key()
        return lambda: eckey.sign(digest, ECDSA)
    if primitive == "aes256_gcm_encrypt":
        aead = AESGCM(aes_key())
        return lambda: aead.encrypt(os.urandom(12), digest, None)
    if primitive == "ec_p256_generate":
        return ec_key
    if primitive == "rsa2048_generate":
        return rsa_key
    raise ValueError(f"unknown primitive {primitive!r}")


def _loop(args: tuple[str, float]) -> float:
    primitive, seconds = args
    fn = _make(primitive)
    for _ in range(3):
        fn()
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(8):
            fn()
        n += 8
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


class RawCeiling:
    """A pool of ``processes`` worker processes kept for the whole run, so each primitive can be
    measured right before the kluis operation it is compared with (same noise, same moment)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool = ProcessPoolExecutor(processes, mp_context=get_context("spawn"))
        list(self._pool.map(_loop, [("aes256_gcm_encrypt", 0.05)] * processes))  # start them now

    def measure(self, primitive: str, seconds: float) -> float:
        """Operations per second of ``primitive``, summed over the concurrent processes."""
        return sum(self._pool.map(_loop, [(primitive, seconds)] * self.processes))

    def close(self) -> None:
        self._pool.shutdown()

    def __enter__(self) -> RawCeiling:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

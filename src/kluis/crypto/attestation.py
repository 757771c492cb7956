"""Attestation tokens for key release, and wrapping a released key for the attested environment.

Key release (Azure "SKR") hands an exportable key only to an environment whose attestation token
satisfies the key's release policy. kluis has no attestation service of its own: an operator
configures the authorities it trusts and their token-signing public keys. A token counts only if
its signature verifies against a key of the authority named in its ``iss`` claim.

The released key is wrapped for the RSA key carried in the token (``x-ms-runtime.keys``) with
PKCS#11 ``CKM_RSA_AES_KEY_WRAP``: a fresh AES-256 key wrapped with RSA-OAEP, followed by the key
material wrapped with that AES key (AES-KWP, RFC 5649).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from kluis.crypto.encoding import b64url_decode
from kluis.crypto.errors import InvalidParameter
from kluis.crypto.keys import KeyMaterial

__all__ = ["RELEASE_ALGORITHMS", "load_trusted_key", "runtime_rsa_key", "verify_attestation", "wrap_for_release"]

RELEASE_ALGORITHMS: Mapping[str, hashes.HashAlgorithm] = {
    "CKM_RSA_AES_KEY_WRAP": hashes.SHA1(),
    "RSA_AES_KEY_WRAP_256": hashes.SHA256(),
    "RSA_AES_KEY_WRAP_384": hashes.SHA384(),
}
_SIG_HASH = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}


def load_trusted_key(pem: bytes) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    """A trusted authority's public key (PEM public key or certificate); InvalidParameter otherwise."""
    try:
        if b"CERTIFICATE" in pem:
            from cryptography import x509

            key: Any = x509.load_pem_x509_certificate(pem).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise InvalidParameter("The attestation key is not a PEM public key or certificate.") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise InvalidParameter("Attestation keys must be RSA or EC public keys.")
    return key


def _check_signature(key: Any, alg: str, signing_input: bytes, signature: bytes) -> bool:
    h = _SIG_HASH.get(alg[2:])
    if h is None:
        return False
    try:
        if alg.startswith("RS") and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PKCS1v15(), h)
        elif alg.startswith("PS") and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PSS(padding.MGF1(h), h.digest_size), h)
        elif alg.startswith("ES") and isinstance(key, ec.EllipticCurvePublicKey):
            half = len(signature) // 2
            der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
            key.verify(der, signing_input, ec.ECDSA(h))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def verify_attestation(
    token: str, trusted: Mapping[str, Iterable[bytes]], *, now: int, leeway: int = 60
) -> dict[str, Any]:
    """The claims of a JWT attestation token signed by a trusted authority, or InvalidParameter."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise InvalidParameter("The attestation token (target) is not a JWT.")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, InvalidParameter):
        raise InvalidParameter("The attestation token (target) is not a valid JWT.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidParameter("The attestation token (target) is not a valid JWT.")
    issuer = str(claims.get("iss", "")).rstrip("/")
    keys = next((list(v) for k, v in trusted.items() if k.rstrip("/") == issuer), None)
    if not keys:
        raise InvalidParameter(f"The attestation token's issuer '{issuer}' is not a trusted attestation authority.")
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    alg = str(header.get("alg", ""))
    if not any(_check_signature(load_trusted_key(pem), alg, signing_input, signature) for pem in keys):
        raise InvalidParameter(
            "The attestation token's signature does not verify against the trusted authority's keys."
        )
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | float) or now > exp + leeway:
        raise InvalidParameter("The attestation token has expired.")
    if isinstance(nbf, int | float) and now + leeway < nbf:
        raise InvalidParameter("The attestation token is not yet valid.")
    return claims


def runtime_rsa_key(claims: Mapping[str, Any]) -> rsa.RSAPublicKey:
    """The RSA key the attested environment published (``x-ms-runtime.keys``) to receive the key."""
    runtime = claims.get("x-ms-runtime") or {}
    keys = runtime.get("keys") if isinstance(runtime, dict) else None
    for jwk in keys or []:
        if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and jwk.get("n") and jwk.get("e"):
            n = int.from_bytes(b64url_decode(jwk["n"]), "big")
            e = int.from_bytes(b64url_decode(jwk["e"]), "big")
            return rsa.RSAPublicNumbers(e, n).public_key()
    raise InvalidParameter("The attestation token carries no RSA key (x-ms-runtime.keys) to release the key to.")


def wrap_for_release(material: KeyMaterial, enc: str, target: rsa.RSAPublicKey) -> bytes:
    """CKM_RSA_AES_KEY_WRAP: RSA-OAEP(ephemeral AES-256 key) || AES-KWP(ephemeral key, private key)."""
    h = RELEASE_ALGORITHMS.get(enc)
    if h is None:
        raise InvalidParameter(f"Unsupported release algorithm '{enc}'. Allowed: {', '.join(RELEASE_ALGORITHMS)}.")
    ephemeral = os.urandom(32)
    head = target.encrypt(ephemeral, padding.OAEP(padding.MGF1(h), h, None))
    return head + aes_key_wrap_with_padding(ephemeral, material.to_bytes())

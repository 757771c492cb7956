"""A local certificate authority and the TLS certificate kluis serves.

The Azure SDKs only talk HTTPS and verify the server certificate, so kluis must
present a certificate that chains to something the client trusts. Rather than
asking users to disable verification, kluis mints its own small CA once, and the
user points the client at it (``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``,
``CURL_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS``, a Java trust store: see ``kluis env``).
The server certificate also covers the real Azure host names, because in proxy
mode the client opens TLS to ``NAME.vault.azure.net`` while talking to kluis.

Everything here is idempotent: :func:`ensure_tls` is called at every start and
only (re)creates what is missing, stale, or no longer matches the wanted names.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import secrets
import ssl
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kluis.addressing import CERTIFICATE_NAMES

__all__ = [
    "TlsFiles",
    "ca_fingerprint",
    "default_server_names",
    "ensure_tls",
    "java_truststore_path",
    "system_roots",
    "write_ca_bundle",
]

CA_CERT_NAME = "ca.pem"
CA_KEY_NAME = "ca-key.pem"
SERVER_CERT_NAME = "server.pem"
SERVER_KEY_NAME = "server-key.pem"
LOCK_NAME = ".tls.lock"

CA_VALIDITY = timedelta(days=3650)
# 397 days is the longest lifetime Apple and the CA/Browser Forum accept for a
# leaf; staying under it keeps strict clients from rejecting the certificate.
SERVER_VALIDITY = timedelta(days=397)
RENEW_BEFORE = timedelta(days=30)
# Backdate certificates a little so a client whose clock lags ours by a few
# minutes does not see a "not yet valid" certificate.
BACKDATE = timedelta(minutes=5)

_BUILTIN_NAMES = CERTIFICATE_NAMES  # which names are kluis's: kluis.addressing


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files the server and its clients need."""

    ca_cert: Path
    server_cert: Path  # leaf followed by the CA certificate
    server_key: Path


def _key_usage(*, signs_data: bool, signs_certificates: bool) -> x509.KeyUsage:
    """KeyUsage for a leaf (digital signature) or a CA (certificate and CRL signing); nothing else."""
    return x509.KeyUsage(
        digital_signature=signs_data,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def default_server_names(extra_hosts: Sequence[str] = (), domains: Sequence[str] = ()) -> list[str]:
    """The names the server certificate must cover.

    Loopback names cover direct use; the Azure names cover proxy mode, where
    the client believes it is talking to Azure. Each configured domain ``D``
    adds ``D`` and ``*.D`` so vaults can be addressed as ``NAME.D``.
    """
    names: list[str] = list(_BUILTIN_NAMES)
    names.extend(extra_hosts)
    for domain in domains:
        d = domain.strip().rstrip(".")
        if d:
            names.extend((d, f"*.{d}"))
    seen: set[str] = set()
    result: list[str] = []
    for name in names:
        n = name.strip()
        if n and n.lower() not in seen:
            seen.add(n.lower())
            result.append(n)
    return result


def ensure_tls(directory: Path, names: Sequence[str], *, now: datetime | None = None) -> TlsFiles:
    """Create or refresh the CA and server certificate in ``directory``.

    The CA is created once and reused forever (re-creating it would break every
    client that already trusts it). The server certificate is re-issued when its
    names differ from ``names``, when it expires within 30 days, or when it no
    longer belongs to the CA or its key. A lock file serialises concurrent
    callers so two processes starting at once do not mint two CAs.
    """
    if not names:
        raise ValueError("at least one server name is required")
    moment = _utc(now)
    directory = Path(directory)
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = TlsFiles(
        ca_cert=directory / CA_CERT_NAME,
        server_cert=directory / SERVER_CERT_NAME,
        server_key=directory / SERVER_KEY_NAME,
    )
    with _locked(directory / LOCK_NAME):
        ca = _load_ca(directory, moment)
        ca_created = ca is None
        if ca is None:
            ca = _create_ca(moment)
            _atomic_write(directory / CA_KEY_NAME, _key_pem(ca[1]), 0o600)
            _atomic_write(files.ca_cert, ca[0].public_bytes(serialization.Encoding.PEM), 0o644)
        ca_cert, ca_key = ca
        wanted = _general_names(names)
        if ca_created or not _server_is_current(files, ca_cert, wanted, moment):
            leaf, leaf_key = _issue_server(ca_cert, ca_key, names, wanted, moment)
            chain = leaf.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
            # Key first: if we die between the two writes, the next call sees a
            # key/cert mismatch and re-issues instead of serving a broken pair.
            _atomic_write(files.server_key, _key_pem(leaf_key), 0o600)
            _atomic_write(files.server_cert, chain, 0o644)
    return files


def ca_fingerprint(ca_cert: Path) -> str:
    """SHA-256 fingerprint of the CA, colon separated, for users to compare."""
    cert = x509.load_pem_x509_certificate(Path(ca_cert).read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def write_ca_bundle(ca_cert: Path, target: Path, *, roots: Path | None = None) -> Path:
    """Write the platform's trusted roots plus the kluis CA to ``target`` (PEM), and a Java trust store beside it.

    ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` and a JVM's ``javax.net.ssl.trustStore``
    *replace* the trust store, so a bundle holding only the kluis CA would break every other HTTPS call
    the process makes (real Entra ID logins, package downloads). The roots come from ``roots`` if given,
    else from :func:`system_roots`: the system trust store, where corporate roots are installed, or
    certifi's roots where there is none. The PKCS#12 trust store (:func:`java_truststore_path`) holds the
    same certificates; it has no password. Both files are written atomically; returns ``target``.

    Raises ``OSError`` when a file cannot be read or written, ``ValueError`` when ``ca_cert`` holds no
    certificate.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    ours = _load_certs(Path(ca_cert))
    if not ours:
        raise ValueError(f"{ca_cert} holds no PEM certificate")
    public = _read_roots(roots) if roots is not None else system_roots()[0]
    mine = {c.fingerprint(hashes.SHA256()) for c in ours}
    public = [c for c in public if c.fingerprint(hashes.SHA256()) not in mine]
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in public)
    content = pem + b"\n# kluis local CA\n" + Path(ca_cert).read_bytes()
    _atomic_write(target, content, 0o644)
    entries = [pkcs12.PKCS12Certificate(cert, f"root-{i}".encode()) for i, cert in enumerate(public, start=1)] + [
        pkcs12.PKCS12Certificate(cert, f"kluis-ca-{i}".encode()) for i, cert in enumerate(ours, start=1)
    ]
    store = pkcs12.serialize_java_truststore(entries, serialization.NoEncryption())
    _atomic_write(java_truststore_path(target), store, 0o644)
    return target


def java_truststore_path(bundle: Path) -> Path:
    """Where :func:`write_ca_bundle` puts the PKCS#12 twin of ``bundle`` (same directory, ``.p12``)."""
    return Path(bundle).with_suffix(".p12")


def system_roots() -> tuple[list[x509.Certificate], str]:
    """The root certificates this machine trusts, and the file or directory they came from.

    Looks where OpenSSL looks by default (``ssl.get_default_verify_paths()``: the compiled-in CA file,
    e.g. ``/usr/lib/ssl/cert.pem`` -> ``/etc/ssl/certs/ca-certificates.crt`` on Debian, then the hashed
    certificate directory). The ``SSL_CERT_FILE``/``SSL_CERT_DIR`` overrides are deliberately ignored:
    after ``eval "$(kluis env)"`` they name kluis's own bundle. Falls back to certifi's roots when the
    platform has no usable store (e.g. python.org builds on macOS). Duplicates are removed.
    """
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.openssl_cafile, paths.openssl_capath):
        if candidate:
            certs = _read_roots(Path(candidate))
            if certs:
                return certs, candidate
    where = certifi.where()
    return _read_roots(Path(where)), where


# --- internals -------------------------------------------------------------


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write via a temp file + rename so readers never see a half-written PEM."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _load_certs(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return []


_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----", re.DOTALL)


def _pem_blocks(path: Path) -> list[x509.Certificate]:
    """Each certificate of a PEM file; a block that does not parse is skipped, not fatal to the rest."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    certs: list[x509.Certificate] = []
    with warnings.catch_warnings():
        # Old roots with a non-positive serial number still load, with a deprecation warning.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        for block in _PEM_CERT.findall(data):
            with contextlib.suppress(ValueError):
                certs.append(x509.load_pem_x509_certificate(block))
    return certs


def _read_roots(path: Path) -> list[x509.Certificate]:
    """Certificates in a PEM file, or in every file of a directory; unreadable ones are skipped."""
    try:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    except OSError:
        return []
    seen: set[bytes] = set()
    result: list[x509.Certificate] = []
    for file in files:
        for cert in _pem_blocks(file):
            fingerprint = cert.fingerprint(hashes.SHA256())
            if fingerprint not in seen:
                seen.add(fingerprint)
                result.append(cert)
    return result


def _same_public_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def _load_ca(directory: Path, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    certs = _load_certs(directory / CA_CERT_NAME)
    key = _load_key(directory / CA_KEY_NAME)
    if not certs or key is None:
        return None
    cert = certs[0]
    if not _same_public_key(cert, key) or cert.not_valid_after_utc <= now:
        return None
    return cert, key


def _create_ca(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    # A random suffix makes each installation's CA distinguishable in trust
    # stores, so removing one machine's CA never removes another's.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"kluis local CA {secrets.token_hex(4)}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kluis"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    start = now - BACKDATE
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(signs_data=False, signs_certificates=True),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    seen: set[x509.GeneralName] = set()
    for raw in names:
        name = raw.strip()
        general: x509.GeneralName
        try:
            general = x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
        except ValueError:
            general = x509.DNSName(name.lower().rstrip("."))
        if general not in seen:
            seen.add(general)
            result.append(general)
    return result


def _server_is_current(
    files: TlsFiles, ca_cert: x509.Certificate, wanted: list[x509.GeneralName], now: datetime
) -> bool:
    certs = _load_certs(files.server_cert)
    key = _load_key(files.server_key)
    if not certs or key is None:
        return False
    leaf = certs[0]
    if not _same_public_key(leaf, key):
        return False
    if leaf.not_valid_after_utc - now < RENEW_BEFORE or leaf.not_valid_before_utc > now:
        return False
    try:
        leaf.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(san) == set(wanted)


def _common_name(names: Sequence[str]) -> str:
    # CN is limited to 64 characters; clients use the SANs anyway.
    for name in names:
        n = name.strip()
        if 0 < len(n) <= 64:
            return n
    return "kluis"


def _issue_server(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: Sequence[str],
    sans: list[x509.GeneralName],
    now: datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    start = now - BACKDATE
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(names))]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + SERVER_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(signs_data=True, signs_certificates=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key

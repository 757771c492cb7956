from __future__ import annotations

import ipaddress
import multiprocessing
import socket
import ssl
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from kluis.identity.pki import (
    TlsFiles,
    ca_fingerprint,
    default_server_names,
    ensure_tls,
)

NAMES = default_server_names()


def _certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def _sans(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    }


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_default_server_names() -> None:
    names = default_server_names(["kluis.internal", "localhost"], ["vault.example.org"])
    assert names == [
        "localhost",
        "*.localhost",
        "127.0.0.1",
        "::1",
        "vault.azure.net",
        "*.vault.azure.net",
        "login.microsoftonline.com",
        "management.azure.com",
        "kluis.internal",
        "vault.example.org",
        "*.vault.example.org",
    ]


def test_creates_ca_and_server(tmp_path: Path) -> None:
    d = tmp_path / "tls"
    files = ensure_tls(d, NAMES)
    assert files == TlsFiles(d / "ca.pem", d / "server.pem", d / "server-key.pem")
    assert _mode(d) == 0o700
    assert _mode(d / "ca-key.pem") == 0o600
    assert _mode(files.server_key) == 0o600

    (ca,) = _certs(files.ca_cert)
    assert str(ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value).startswith("kluis local CA ")
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == timedelta(days=3650)

    leaf, chained_ca = _certs(files.server_cert)
    assert chained_ca == ca
    assert _sans(leaf) == {"localhost", "*.localhost", "127.0.0.1", "::1", "vault.azure.net"} | {
        "*.vault.azure.net",
        "login.microsoftonline.com",
        "management.azure.com",
    }
    ips = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("::1") in ips.get_values_for_type(x509.IPAddress)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=397)
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)


def test_reuse_on_second_call(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path, NAMES)
    before = {p: p.read_bytes() for p in tmp_path.glob("*.pem")}
    assert len(before) == 4
    ensure_tls(tmp_path, list(reversed(NAMES)))  # same set, other order
    assert {p: p.read_bytes() for p in tmp_path.glob("*.pem")} == before
    assert files.server_cert.read_bytes() == before[files.server_cert]


def test_reissue_when_names_change(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path, NAMES)
    ca_before = files.ca_cert.read_bytes()
    key_before = files.server_key.read_bytes()
    ensure_tls(tmp_path, [*NAMES, "kluis.example.org"])
    assert files.ca_cert.read_bytes() == ca_before
    assert files.server_key.read_bytes() != key_before
    leaf, _ = _certs(files.server_cert)
    assert "kluis.example.org" in _sans(leaf)
    leaf.verify_directly_issued_by(_certs(files.ca_cert)[0])


def test_reissue_near_expiry(tmp_path: Path) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    files = ensure_tls(tmp_path, NAMES, now=start)
    first = files.server_cert.read_bytes()
    ensure_tls(tmp_path, NAMES, now=start + timedelta(days=300))
    assert files.server_cert.read_bytes() == first
    ensure_tls(tmp_path, NAMES, now=start + timedelta(days=380))
    assert files.server_cert.read_bytes() != first
    leaf, _ = _certs(files.server_cert)
    assert leaf.not_valid_before_utc > start + timedelta(days=379)


def test_recovers_from_mismatched_key(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path, NAMES)
    other = tmp_path / "other"
    other_files = ensure_tls(other, NAMES)
    files.server_key.write_bytes(other_files.server_key.read_bytes())
    ensure_tls(tmp_path, NAMES)
    leaf, _ = _certs(files.server_cert)
    leaf.verify_directly_issued_by(_certs(files.ca_cert)[0])
    assert files.server_key.read_bytes() != other_files.server_key.read_bytes()


def test_chain_validates(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path, NAMES)
    leaf, ca = _certs(files.server_cert)
    builder = PolicyBuilder().store(Store(_certs(files.ca_cert))).time(datetime.now(UTC))
    for subject in (
        DNSName("myvault.vault.azure.net"),
        DNSName("localhost"),
        DNSName("login.microsoftonline.com"),
        IPAddress(ipaddress.ip_address("127.0.0.1")),
    ):
        chain = builder.build_server_verifier(subject).verify(leaf, [])
        assert chain[-1] == ca
    with pytest.raises(x509.verification.VerificationError):
        builder.build_server_verifier(DNSName("example.com")).verify(leaf, [])


def _ensure_in_child(directory: str, out: multiprocessing.Queue[bytes]) -> None:
    files = ensure_tls(Path(directory), NAMES)
    out.put(files.ca_cert.read_bytes())


def test_concurrent_first_start_makes_one_ca(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[bytes] = ctx.Queue()
    procs = [ctx.Process(target=_ensure_in_child, args=(str(tmp_path), queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(set(results)) == 1
    assert results[0] == (tmp_path / "ca.pem").read_bytes()


def test_fingerprint(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path, NAMES)
    fp = ca_fingerprint(files.ca_cert)
    parts = fp.split(":")
    assert len(parts) == 32 and all(len(p) == 2 for p in parts)
    assert int(fp.replace(":", ""), 16) >= 0


def test_real_tls_handshake(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path, NAMES)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.server_cert, files.server_key)

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            for _ in range(3):
                conn, _ = listener.accept()
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(tls.recv(100).upper())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(files.ca_cert))
        for hostname in ("myvault.vault.azure.net", "localhost", "127.0.0.1"):
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client_ctx.wrap_socket(raw, server_hostname=hostname) as tls,
            ):
                tls.sendall(b"ping")
                assert tls.recv(100) == b"PING"
    finally:
        thread.join(10)
        listener.close()
    assert not errors


def test_tls_handshake_rejects_other_name(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path, NAMES)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.server_cert, files.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            server_ctx.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(files.ca_cert))
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            client_ctx.wrap_socket(raw, server_hostname="example.com")
    finally:
        thread.join(10)
        listener.close()

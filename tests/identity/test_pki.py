from __future__ import annotations

import ipaddress
import multiprocessing
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from kluis.identity import pki
from kluis.identity.pki import (
    TlsFiles,
    ca_fingerprint,
    default_server_names,
    ensure_tls,
    java_truststore_path,
    system_roots,
    write_ca_bundle,
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


# -- the CA bundle and Java trust store that `kluis env` hands to every TLS stack ----------------------
# The trust files ``kluis env`` names: the platform's roots (or certifi's) plus the kluis CA, PEM and PKCS#12.

NAMES = pki.default_server_names()


def _certs(path: Path) -> list[x509.Certificate]:
    with warnings.catch_warnings():  # some platform roots have a non-positive serial number
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return x509.load_pem_x509_certificates(path.read_bytes())


def _other_root(tmp_path: Path, name: str) -> Path:
    """A root certificate that is not the kluis CA under test (a stand-in for a corporate root)."""
    return ensure_tls(tmp_path / name, ["localhost"]).ca_cert


def _verify_paths(cafile: str | None, capath: str | None) -> ssl.DefaultVerifyPaths:
    return ssl.DefaultVerifyPaths(cafile, capath, "SSL_CERT_FILE", cafile or "", "SSL_CERT_DIR", capath or "")


def test_bundle_is_given_roots_plus_kluis_ca_and_verifies_the_server(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path / "tls", NAMES)
    corporate, public = _other_root(tmp_path, "corp"), _other_root(tmp_path, "public")
    roots = tmp_path / "roots.pem"
    garbage = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    roots.write_bytes(corporate.read_bytes() + garbage + b"# comment\n" + public.read_bytes())
    target = write_ca_bundle(files.ca_cert, tmp_path / "out" / "ca-bundle.pem", roots=roots)
    assert target == tmp_path / "out" / "ca-bundle.pem"
    got = _certs(target)
    # A block that does not parse is skipped, not fatal to the roots after it.
    assert got == [_certs(corporate)[0], _certs(public)[0], _certs(files.ca_cert)[0]]
    leaf = _certs(files.server_cert)[0]
    verifier = PolicyBuilder().store(Store(got)).build_server_verifier(x509.DNSName("myvault.vault.azure.net"))
    assert verifier.verify(leaf, [])[-1] == _certs(files.ca_cert)[0]
    ctx = ssl.create_default_context(cafile=str(target))
    assert len(ctx.get_ca_certs()) == 3


def test_java_truststore_holds_the_same_certificates(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path / "tls", NAMES)
    roots = tmp_path / "roots.pem"
    roots.write_bytes(_other_root(tmp_path, "corp").read_bytes())
    target = write_ca_bundle(files.ca_cert, tmp_path / "ca-bundle.pem", roots=roots)
    store_path = java_truststore_path(target)
    assert store_path == tmp_path / "ca-bundle.p12"
    store = pkcs12.load_pkcs12(store_path.read_bytes(), None)
    assert store.key is None and store.cert is None
    assert [c.certificate for c in store.additional_certs] == _certs(target)
    assert [c.friendly_name for c in store.additional_certs] == [b"root-1", b"kluis-ca-1"]
    assert oct(store_path.stat().st_mode & 0o777) == "0o644"


@pytest.mark.skipif(shutil.which("keytool") is None, reason="keytool (a JDK) is not installed")
def test_java_reads_every_entry_as_a_trusted_certificate(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path / "tls", NAMES)
    target = write_ca_bundle(files.ca_cert, tmp_path / "ca-bundle.pem")
    keytool = shutil.which("keytool")
    assert keytool is not None
    listing = subprocess.run(
        [keytool, "-list", "-keystore", str(java_truststore_path(target)), "-storetype", "PKCS12", "-storepass", ""],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "JAVA_TOOL_OPTIONS"},
    ).stdout
    assert listing.count("trustedCertEntry") == len(_certs(target)) > 1
    assert "kluis-ca-1, " in listing


def test_system_roots_follow_openssl_default_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cafile = _other_root(tmp_path, "file")
    capath = tmp_path / "certs"
    capath.mkdir()
    shutil.copy(_other_root(tmp_path, "dir1"), capath / "a.pem")
    shutil.copy(_other_root(tmp_path, "dir2"), capath / "b.0")
    shutil.copy(capath / "a.pem", capath / "a-again.pem")  # hashed-name links duplicate certificates
    (capath / "README").write_text("not a certificate")

    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: _verify_paths(str(cafile), str(capath)))
    assert system_roots() == (_certs(cafile), str(cafile))

    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: _verify_paths(str(tmp_path / "no.pem"), str(capath)))
    certs, where = system_roots()
    assert where == str(capath) and len(certs) == 2
    assert set(certs) == {_certs(capath / "a.pem")[0], _certs(capath / "b.0")[0]}

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: _verify_paths(str(tmp_path / "no.pem"), str(empty)))
    certs, where = system_roots()
    assert where == certifi.where() and len(certs) > 50


def test_system_roots_ignore_ssl_cert_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After ``eval "$(kluis env)"`` SSL_CERT_FILE names kluis's own bundle: it must not feed the next one."""
    files = ensure_tls(tmp_path / "tls", NAMES)
    bundle = write_ca_bundle(files.ca_cert, tmp_path / "ca-bundle.pem")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    certs, where = system_roots()
    assert where != str(bundle) and _certs(files.ca_cert)[0] not in certs


def test_rebuilding_from_its_own_output_adds_the_ca_once(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path / "tls", NAMES)
    roots = tmp_path / "roots.pem"
    roots.write_bytes(_other_root(tmp_path, "corp").read_bytes())
    target = write_ca_bundle(files.ca_cert, tmp_path / "ca-bundle.pem", roots=roots)
    first = _certs(target)
    again = write_ca_bundle(files.ca_cert, target, roots=target)
    assert _certs(again) == first and len(first) == 2


def test_default_bundle_is_the_platform_store_plus_kluis_ca(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path / "tls", NAMES)
    target = write_ca_bundle(files.ca_cert, tmp_path / "ca-bundle.pem")
    roots, _ = system_roots()
    assert _certs(target) == [*roots, _certs(files.ca_cert)[0]]


def test_ca_without_certificate_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "ca.pem"
    empty.write_text("")
    with pytest.raises(ValueError, match="no PEM certificate"):
        write_ca_bundle(empty, tmp_path / "bundle.pem")

"""The trust files ``kluis env`` names: the platform's roots (or certifi's) plus the kluis CA, PEM and PKCS#12."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import warnings
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import PolicyBuilder, Store

from kluis.identity import pki
from kluis.identity.pki import ensure_tls, java_truststore_path, system_roots, write_ca_bundle

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

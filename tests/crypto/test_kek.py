"""The KEK sources: key file, environment variable, PKCS#11 token (SoftHSM2), and their errors."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from kluis.crypto.kek import (
    FileKek,
    KekMissing,
    KekUnavailable,
    Pkcs11Kek,
    SoftwareKek,
    canonical_source,
    create_kek_file,
    fingerprint_of,
    init_pkcs11_kek,
    open_kek,
    parse_pkcs11_uri,
    redact_source,
)
from kluis.crypto.seal import derive_key, new_dek, new_kek
from tests.conftest import SOFTHSM_TOKEN
from tests.softhsm import PIN_ENV, SoftHsm

FINGERPRINT = r"^[0-9a-f]{4}(:[0-9a-f]{4}){7}$"


def test_fingerprint_is_the_published_check_value() -> None:
    kek = bytes(range(32))
    digest = derive_key(kek, b"kek-fingerprint")[:16].hex()
    assert fingerprint_of(kek) == ":".join(digest[i : i + 4] for i in range(0, 32, 4))
    assert fingerprint_of(kek) != fingerprint_of(new_kek())


def test_file_kek_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "kek.key"
    with pytest.raises(KekMissing, match=r"kek.key is missing") as missing:
        open_kek("", default_file=path)
    assert missing.value.path == path
    create_kek_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == 32
    with pytest.raises(FileExistsError):
        create_kek_file(path)  # never overwrites
    kek = open_kek("", default_file=path)
    assert isinstance(kek, FileKek) and kek.source == f"file:{path}" and str(path) in kek.label
    assert kek.fingerprint == fingerprint_of(path.read_bytes())
    assert open_kek(f"file:{path}", default_file=tmp_path / "other").fingerprint == kek.fingerprint
    assert open_kek(str(path), default_file=tmp_path / "other").fingerprint == kek.fingerprint
    deks = [new_dek(), new_dek()]
    wrapped = kek.wrap(deks)
    assert [len(w) for w in wrapped] == [40, 40] and wrapped[0] != deks[0]
    assert wrapped[0] == aes_key_wrap(path.read_bytes(), deks[0])  # RFC 3394 AES Key Wrap
    assert kek.unwrap(wrapped) == deks
    other = SoftwareKek(new_kek(), source="x", label="the other key")
    with pytest.raises(KekUnavailable, match=r"the other key .* cannot unwrap the data keys"):
        other.unwrap(wrapped)
    assert kek.current_fingerprint() == kek.fingerprint
    path.write_bytes(os.urandom(32))  # replaced on disk: the re-read sees it
    assert kek.current_fingerprint() != kek.fingerprint
    path.write_bytes(b"short")
    with pytest.raises(KekUnavailable, match=rf"{path} holds 5 bytes, not the 32"):
        open_kek("", default_file=path)
    assert kek.raw() is not None and kek.fingerprint in repr(kek)


def test_env_kek(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = new_kek()
    monkeypatch.delenv("KLUIS_TEST_KEK", raising=False)
    with pytest.raises(KekUnavailable, match="KLUIS_TEST_KEK is not set"):
        open_kek("env:KLUIS_TEST_KEK", default_file=tmp_path / "kek.key")
    monkeypatch.setenv("KLUIS_TEST_KEK", "not base64!")
    with pytest.raises(KekUnavailable, match="KLUIS_TEST_KEK is not base64"):
        open_kek("env:KLUIS_TEST_KEK", default_file=tmp_path / "kek.key")
    monkeypatch.setenv("KLUIS_TEST_KEK", base64.b64encode(b"x" * 16).decode())
    with pytest.raises(KekUnavailable, match="environment variable KLUIS_TEST_KEK holds 16 bytes"):
        open_kek("env:KLUIS_TEST_KEK", default_file=tmp_path / "kek.key")
    monkeypatch.setenv("KLUIS_TEST_KEK", base64.urlsafe_b64encode(key).decode() + "\n")
    kek = open_kek("env:KLUIS_TEST_KEK", default_file=tmp_path / "kek.key")
    assert kek.source == "env:KLUIS_TEST_KEK" and kek.fingerprint == fingerprint_of(key)
    assert not (tmp_path / "kek.key").exists()
    dek = new_dek()
    assert kek.unwrap(kek.wrap([dek])) == [dek] and kek.wrap([dek]) == [aes_key_wrap(key, dek)]
    monkeypatch.delenv("KLUIS_TEST_KEK")
    with pytest.raises(KekUnavailable, match="KLUIS_TEST_KEK is not set"):
        kek.current_fingerprint()


def test_pkcs11_uri() -> None:
    attrs = parse_pkcs11_uri("pkcs11:token=my%20token;object=kek?module-path=/usr/lib/x.so&pin-source=env:PIN")
    assert attrs == {"token": "my token", "object": "kek", "module-path": "/usr/lib/x.so", "pin-source": "env:PIN"}
    assert parse_pkcs11_uri("pkcs11:token=t;object=k?module-path=/m.so")["pin-source"] == "env:KLUIS_PKCS11_PIN"
    with pytest.raises(ValueError, match="needs object, module-path"):
        parse_pkcs11_uri("pkcs11:token=t")
    with pytest.raises(ValueError, match="not in the pkcs11: URI"):
        parse_pkcs11_uri("pkcs11:token=t;object=k?module-path=/m.so&pin-value=1234")
    with pytest.raises(ValueError, match="pin-source must be"):
        parse_pkcs11_uri("pkcs11:token=t;object=k?module-path=/m.so&pin-source=1234")
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_pkcs11_uri("pkcs11:token;object=k")
    with pytest.raises(KekUnavailable, match="needs module-path"):
        open_kek("pkcs11:token=t;object=k", default_file=Path("/nonexistent"))


def test_pkcs11_kek_wraps_inside_the_token(softhsm: SoftHsm) -> None:
    uri = softhsm.uri(SOFTHSM_TOKEN, "kek-roundtrip")
    made = init_pkcs11_kek(uri)
    assert isinstance(made, Pkcs11Kek) and made.raw() is None
    kek = open_kek(uri, default_file=Path("/nonexistent"))
    assert kek.fingerprint == made.fingerprint == kek.current_fingerprint()
    assert "kek-roundtrip" in kek.label and SOFTHSM_TOKEN in kek.label
    deks = [new_dek() for _ in range(3)]
    wrapped = kek.wrap(deks)
    assert kek.unwrap(wrapped) == deks and all(len(w) == 40 for w in wrapped)
    with pytest.raises(KekUnavailable, match="already has a key labelled"):
        init_pkcs11_kek(uri)
    other = init_pkcs11_kek(softhsm.uri(SOFTHSM_TOKEN, "kek-other"))
    assert other.fingerprint != kek.fingerprint
    with pytest.raises(KekUnavailable, match=r"kek-other.* cannot unwrap the data keys"):
        other.unwrap(wrapped)
    # the KEK never leaves the token: sensitive, not extractable
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    token = pkcs11.lib(softhsm.module).get_token(token_label=SOFTHSM_TOKEN)
    with token.open(user_pin=os.environ[PIN_ENV]) as session:
        key = session.get_key(object_class=ObjectClass.SECRET_KEY, label="kek-roundtrip")
        assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE] and key[Attribute.TOKEN]
        with pytest.raises(pkcs11.exceptions.PKCS11Error):
            key[Attribute.VALUE]


def test_pkcs11_wrapping_is_rfc_3394_like_the_software_sources(softhsm: SoftHsm) -> None:
    """The same key bytes on the token wrap to the same bytes as a key file: one format everywhere."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    value = new_kek()
    token = pkcs11.lib(softhsm.module).get_token(token_label=SOFTHSM_TOKEN)
    with token.open(user_pin=os.environ[PIN_ENV], rw=True) as session:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: value,
                Attribute.LABEL: "kek-imported",
                Attribute.TOKEN: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.WRAP: True,
                Attribute.UNWRAP: True,
            }
        )
    dek = new_dek()
    on_token = open_kek(softhsm.uri(SOFTHSM_TOKEN, "kek-imported"), default_file=Path("/nonexistent"))
    assert on_token.wrap([dek]) == [aes_key_wrap(value, dek)]
    assert on_token.unwrap([aes_key_wrap(value, dek)]) == [dek]


def test_pkcs11_errors_name_the_token_and_key(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    init_pkcs11_kek(softhsm.uri(SOFTHSM_TOKEN, "kek-errors"))
    nowhere = Path("/nonexistent")
    with pytest.raises(KekUnavailable, match="no AES key labelled 'kek-missing'"):
        open_kek(softhsm.uri(SOFTHSM_TOKEN, "kek-missing"), default_file=nowhere)
    with pytest.raises(KekUnavailable, match="No PKCS#11 token labelled 'no-such-token'"):
        open_kek(softhsm.uri("no-such-token", "kek-errors"), default_file=nowhere)
    monkeypatch.setenv("KLUIS_TEST_WRONG_PIN", "000000")
    with pytest.raises(KekUnavailable, match=f"The PIN for the PKCS#11 token '{SOFTHSM_TOKEN}' is wrong"):
        open_kek(softhsm.uri(SOFTHSM_TOKEN, "kek-errors", pin_env="KLUIS_TEST_WRONG_PIN"), default_file=nowhere)
    monkeypatch.delenv("KLUIS_TEST_NO_PIN", raising=False)
    with pytest.raises(KekUnavailable, match="KLUIS_TEST_NO_PIN is not set"):
        open_kek(softhsm.uri(SOFTHSM_TOKEN, "kek-errors", pin_env="KLUIS_TEST_NO_PIN"), default_file=nowhere)
    bad_module = softhsm.uri(SOFTHSM_TOKEN, "kek-errors").replace(softhsm.module.replace("/", "%2F"), "/no/such.so")
    bad_module = bad_module.replace(f"module-path={softhsm.module}", "module-path=/no/such.so")
    with pytest.raises(KekUnavailable, match=r"Cannot load the PKCS#11 module /no/such.so"):
        open_kek(bad_module, default_file=nowhere)


def test_a_refused_pin_value_is_never_printed() -> None:
    uri = "pkcs11:token=t;object=k?module-path=/m.so&pin-value=SECRET-4711"
    with pytest.raises(KekUnavailable) as caught:
        open_kek(uri, default_file=Path("/nonexistent"))
    assert "SECRET-4711" not in str(caught.value) and "pin-value=***" in str(caught.value)
    with pytest.raises(KekUnavailable) as caught:
        init_pkcs11_kek(uri)
    assert "SECRET-4711" not in str(caught.value)
    assert redact_source("pkcs11:token=t;pin-value=1%202;object=k") == "pkcs11:token=t;pin-value=***;object=k"


def test_sources_are_canonical_and_unknown_schemes_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    default = tmp_path / "d" / "kek.key"
    assert canonical_source("", default_file=default) == ""
    assert canonical_source("k.key", default_file=default) == f"file:{tmp_path / 'k.key'}"
    assert canonical_source("file:sub/k.key", default_file=default) == f"file:{tmp_path / 'sub' / 'k.key'}"
    assert canonical_source("./odd:name", default_file=default) == f"file:{tmp_path / 'odd:name'}"
    assert canonical_source("env:V", default_file=default) == "env:V"
    for typo in ("garbage:xyz", "foo:bar", "envv:X", "pkcs:token=t"):
        with pytest.raises(KekUnavailable, match=r"unknown scheme .*give file:PATH, env:VAR, pkcs11:\.\.\. or a path"):
            open_kek(typo, default_file=default)
    assert list(tmp_path.iterdir()) == []


def test_a_key_file_others_can_read_is_made_private_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "kek.key"
    create_kek_file(path)
    os.chmod(path, 0o644)
    caplog.set_level("WARNING", logger="kluis.kek")
    FileKek(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert any("had mode 644; kluis made it 0600" in r.getMessage() for r in caplog.records)


def test_a_key_file_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KekUnavailable, match=r"the directory .*no-dir does not exist\.$"):
        create_kek_file(tmp_path / "no-dir" / "k.key")
    create_kek_file(tmp_path / "k.key")
    with pytest.raises(FileExistsError):
        create_kek_file(tmp_path / "k.key")


def test_two_tokens_with_one_label_need_serial(softhsm: SoftHsm) -> None:
    import pkcs11

    softhsm.init_token("kluis-twin")
    softhsm.init_token("kluis-twin")
    lib = pkcs11.lib(softhsm.module)
    lib.reinitialize()  # SoftHSM2 lists the tokens it found at C_Initialize
    serials = sorted(t.serial.decode() for t in lib.get_tokens(token_label="kluis-twin"))
    assert len(serials) == 2
    uri = softhsm.uri("kluis-twin", "kek-twin")
    with pytest.raises(KekUnavailable, match=r"Several PKCS#11 tokens are labelled 'kluis-twin'.*add serial=SERIAL"):
        init_pkcs11_kek(uri)
    first = uri.replace("?", f";serial={serials[0]}?")
    made = init_pkcs11_kek(first)
    assert open_kek(first, default_file=Path("/nonexistent")).fingerprint == made.fingerprint
    with pytest.raises(KekUnavailable, match="has no AES key labelled 'kek-twin'"):  # the other token has none
        open_kek(uri.replace("?", f";serial={serials[1]}?"), default_file=Path("/nonexistent"))
    with pytest.raises(KekUnavailable, match="with serial 'nope'"):
        open_kek(uri.replace("?", ";serial=nope?"), default_file=Path("/nonexistent"))

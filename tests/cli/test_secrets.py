"""``kluis keyvault secret`` without a server: addressing, az's file encodings, output shapes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from kluis.cli.client import CliError
from kluis.cli.main import app
from kluis.cli.secrets import Encoding, decode_file, encode_file


@pytest.mark.parametrize("encoding", list(Encoding))
def test_file_encodings_round_trip(encoding: Encoding) -> None:
    if encoding in (Encoding.base64, Encoding.hex):
        data = bytes(range(256)) * 3
    elif encoding is Encoding.ascii:
        data = b"plain ascii text\nline 2\n"
    else:
        data = "tëxt ☃\n".encode(encoding.value)
    assert decode_file(encode_file(data, encoding), encoding) == data


def test_encodings_are_azs() -> None:
    data = bytes(range(100))
    assert encode_file(data, Encoding.base64) == base64.encodebytes(data).decode()  # with az's line breaks
    assert encode_file(b"\x00\xff", Encoding.hex) == "00ff"
    assert encode_file("ĳ".encode("utf-16le"), Encoding.utf_16le) == "ĳ"
    with pytest.raises(CliError, match="Unable to decode"):
        encode_file(b"\xff\xfe\xfa", Encoding.utf_8)
    with pytest.raises(CliError):
        decode_file("not hex", Encoding.hex)
    with pytest.raises(CliError):
        decode_file("☃", Encoding.ascii)


def test_verbs_are_registered_with_azs_names() -> None:
    root: Any = typer.main.get_command(app)
    secret = root.commands["keyvault"].commands["secret"]
    assert set(secret.commands) == {
        "set",
        "show",
        "list",
        "list-versions",
        "list-deleted",
        "show-deleted",
        "set-attributes",
        "delete",
        "recover",
        "purge",
        "backup",
        "restore",
        "download",
    }
    flags = {opt for p in secret.commands["set"].params for opt in p.opts}
    assert flags >= {
        "--vault-name",
        "--name",
        "-n",
        "--id",
        "--value",
        "--file",
        "--encoding",
        "--content-type",
        "--tags",
        "--disabled",
        "--expires",
        "--not-before",
    }
    download = {opt for p in secret.commands["download"].params for opt in p.opts}
    assert download >= {"--file", "--encoding", "--version"}


def test_set_needs_exactly_one_value_source(tmp_path: object) -> None:
    r = CliRunner().invoke(app, ["keyvault", "secret", "set", "--vault-name", "v", "-n", "s"])
    assert r.exit_code == 1 and "exactly one of --value or --file" in r.output

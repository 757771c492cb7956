"""`kluis attestation add|list|remove` against an in-process kluis."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from kluis.cli.attestation import attestation_app
from tests.cli.conftest import InProcess


def _pem_file(tmp_path: Path) -> Path:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    path = tmp_path / "maa.pem"
    path.write_bytes(pem)
    return path


def test_add_list_remove(kluis: InProcess, tmp_path: Path) -> None:
    runner = CliRunner()
    d = ["--data-dir", str(kluis.data_dir.path)]
    key = _pem_file(tmp_path)
    added = runner.invoke(attestation_app, ["add", "--authority", "https://maa.example", "--key-file", str(key), *d])
    assert added.exit_code == 0, added.output
    assert json.loads(added.output) == [{"authority": "https://maa.example", "keys": [key.read_text()]}]
    listed = runner.invoke(attestation_app, ["list", "-o", "tsv", *d])
    assert listed.exit_code == 0 and listed.output == "https://maa.example\n"  # lists are not tsv cells
    removed = runner.invoke(attestation_app, ["remove", "--authority", "https://maa.example", *d])
    assert removed.exit_code == 0 and removed.output == ""
    assert json.loads(runner.invoke(attestation_app, ["list", *d]).output) == []


def test_errors_are_one_line(kluis: InProcess, tmp_path: Path) -> None:
    runner = CliRunner()
    d = ["--data-dir", str(kluis.data_dir.path)]
    missing = runner.invoke(
        attestation_app, ["add", "--authority", "https://a", "--key-file", str(tmp_path / "no"), *d]
    )
    assert missing.exit_code == 1 and missing.output.startswith("ERROR: [Errno 2] No such file or directory")
    insecure = runner.invoke(
        attestation_app, ["add", "--authority", "http://a", "--key-file", str(_pem_file(tmp_path)), *d]
    )
    assert (
        insecure.exit_code == 1
        and "ERROR: (BadParameter) An attestation authority is an https:// URL" in insecure.output
    )
    unknown = runner.invoke(attestation_app, ["remove", "--authority", "https://nobody", *d])
    assert unknown.exit_code == 1 and "No trusted attestation authority" in unknown.output

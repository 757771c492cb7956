"""``kluis attestation``: the attestation authorities key release trusts (kluis has no MAA of its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kluis.cli.common import DataDirOpt, KluisTyper, OutputOpt, admin_call, run
from kluis.cli.output import Output, emit

__all__ = ["attestation_app"]

attestation_app = KluisTyper(help="Trusted attestation authorities for key release.")


@attestation_app.command("add")
def add(
    authority: Annotated[str, typer.Option("--authority", help="The tokens' issuer (iss), an https:// URL.")],
    key_file: Annotated[list[Path], typer.Option("--key-file", help="PEM public key or certificate (repeatable).")],
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Trust tokens from AUTHORITY signed by one of these keys."""
    pems = run(lambda: [p.read_text() for p in key_file])
    emit(admin_call(data_dir, "PUT", "/attestation", {"authority": authority, "keys": pems})["value"], output)


@attestation_app.command("list")
def list_(data_dir: DataDirOpt = None, output: OutputOpt = Output.json) -> None:
    """List trusted authorities."""
    emit(admin_call(data_dir, "GET", "/attestation")["value"], output)


@attestation_app.command("remove")
def remove(
    authority: Annotated[str, typer.Option("--authority", help="The issuer to stop trusting.")],
    data_dir: DataDirOpt = None,
) -> None:
    """Stop trusting an authority."""
    admin_call(data_dir, "DELETE", "/attestation", authority=authority)

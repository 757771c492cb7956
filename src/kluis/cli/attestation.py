"""``kluis attestation``: the attestation authorities key release trusts (kluis has no MAA of its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kluis.cli.client import AdminClient, CliError
from kluis.cli.output import Output, emit
from kluis.config import DataDir, default_data_dir

__all__ = ["attestation_app"]

attestation_app = typer.Typer(no_args_is_help=True, help="Trusted attestation authorities for key release.")


def _client(data_dir: Path | None) -> AdminClient:
    return AdminClient(DataDir(data_dir.expanduser() if data_dir else default_data_dir()))


DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", envvar="KLUIS_DATA_DIR", show_default=False)]


@attestation_app.command("add")
def add(
    authority: Annotated[str, typer.Option("--authority", help="The tokens' issuer (iss), an https:// URL.")],
    key_file: Annotated[list[Path], typer.Option("--key-file", help="PEM public key or certificate (repeatable).")],
    data_dir: DataDirOpt = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.json,
) -> None:
    """Trust tokens from AUTHORITY signed by one of these keys."""
    try:
        pems = [p.read_text() for p in key_file]
        emit(_client(data_dir).call("PUT", "/attestation", {"authority": authority, "keys": pems})["value"], output)
    except (CliError, OSError) as e:
        typer.echo(f"ERROR: {e}", err=True)
        raise typer.Exit(1) from None


@attestation_app.command("list")
def list_(data_dir: DataDirOpt = None, output: Annotated[Output, typer.Option("--output", "-o")] = Output.json) -> None:
    """List trusted authorities."""
    try:
        emit(_client(data_dir).call("GET", "/attestation")["value"], output)
    except CliError as e:
        typer.echo(f"ERROR: {e}", err=True)
        raise typer.Exit(1) from None


@attestation_app.command("remove")
def remove(authority: Annotated[str, typer.Option("--authority")], data_dir: DataDirOpt = None) -> None:
    """Stop trusting an authority."""
    try:
        _client(data_dir).call("DELETE", "/attestation", authority=authority)
    except CliError as e:
        typer.echo(f"ERROR: {e}", err=True)
        raise typer.Exit(1) from None

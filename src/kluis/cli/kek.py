"""``kluis kek``: the key-encryption key (root of trust): rotate it, create one on a PKCS#11 token.

``rotate`` re-wraps every data key under a new KEK in one transaction while servers keep serving
(they hold the unwrapped data keys; a server started afterwards needs the new KEK). Without
``--to`` a new random key replaces the key file, the old one kept beside it with a date. Snapshots
(``kluis backup``) made before a rotation hold data keys wrapped by the old KEK: keep it with them.
One rotation at a time per data dir; a rotation interrupted after its commit is rolled forward by
the next ``kluis serve`` or ``kluis kek rotate`` (the staged ``kek.key.*.new`` moved into place).
``init-pkcs11`` generates the AES-256 KEK on a token (SoftHSM2 or a real HSM) for ``--kek pkcs11:...``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from kluis.api.runtime import init_pkcs11_kek, rotate_database_kek
from kluis.cli.common import DataDirOpt, KluisTyper, OutputOpt, data_dir_of, fail, run
from kluis.cli.output import Output, emit
from kluis.config import StartupError

__all__ = ["kek_app"]

kek_app = KluisTyper(help="The key-encryption key (root of trust): rotate it, or create one on a PKCS#11 token.")


@kek_app.command("rotate")
def rotate(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="The new KEK: file:PATH (created if missing), env:VAR (base64 key) or a pkcs11: URI; "
            "default: a new random key in place of the key file (always fresh; a retired kek.key is set aside).",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            envvar="KLUIS_KEK_SOURCE",
            help="The database's KEK now (default: the one kluis serve last used, else kek.key).",
            show_default=False,
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            envvar="KLUIS_DATABASE",
            help="postgresql://... URL (default: the one kluis serve last used, else SQLite in the data dir).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Re-wrap every data key under a new KEK (safe while kluis serves)."""
    try:
        result = run(rotate_database_kek, data_dir_of(data_dir), to, old_source=source, database=database or None)
    except StartupError as e:
        raise fail(str(e)) from None
    emit(result, output)


@kek_app.command("init-pkcs11")
def init_pkcs11(
    uri: Annotated[
        str,
        typer.Argument(
            help="pkcs11:token=LABEL;object=KEY?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:KLUIS_PKCS11_PIN"
        ),
    ],
    output: OutputOpt = Output.json,
) -> None:
    """Generate an AES-256 KEK on a PKCS#11 token (never extractable; wrap/unwrap only)."""
    try:
        emit(run(init_pkcs11_kek, uri), output)
    except StartupError as e:
        raise fail(str(e)) from None

"""``kluis backup --out FILE`` / ``kluis restore FILE``: the whole store as one file, and back.

``backup`` takes a consistent snapshot of the database with SQLite's online backup API, while
kluis serves. Everything sealed stays sealed, so the snapshot is useless without the same
``kek.key``: keep a copy of that file apart from the snapshots (the output names its fingerprint).
``restore`` puts a snapshot in place as a data dir's database; it refuses while a ``kluis serve``
runs on that data dir, refuses to replace an existing database without ``--force``, and refuses a
``kek.key`` that is not the snapshot's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kluis.api.runtime import backup_database, restore_database
from kluis.cli.common import DataDirOpt, OutputOpt, data_dir_of, fail, run
from kluis.cli.output import Output, emit

__all__ = ["backup", "restore"]


def backup(
    out: Annotated[Path, typer.Option("--out", help="The snapshot file to write (must not exist).")],
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Write a consistent snapshot of the whole store to FILE (safe while kluis serves)."""
    emit(run(backup_database, data_dir_of(data_dir), out), output)


def restore(
    snapshot: Annotated[Path, typer.Argument(help="A file written by `kluis backup`.")],
    force: Annotated[bool, typer.Option("--force", help="Replace the data dir's existing database.")] = False,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Restore a snapshot as the data dir's database (kluis serve must be stopped)."""
    try:
        info = run(restore_database, data_dir_of(data_dir), snapshot, force=force)
    except RuntimeError as e:
        raise fail(str(e)) from None
    emit(info, output)
    if not info["kekPresent"]:
        print(f"WARNING: {missing_kek_advice(info['kekSource'], info['kekFingerprint'])}", file=sys.stderr)


def missing_kek_advice(source: str, fingerprint: str) -> str:
    """One line telling what to provide before ``kluis serve``: the key-encryption key with
    ``fingerprint``, worded for ``source`` (``file:PATH``, ``env:VAR`` or a ``pkcs11:`` URI)."""
    if source.startswith("env:"):
        return (
            f"set the environment variable {source[len('env:') :]} to the key-encryption key with fingerprint "
            f"{fingerprint} (base64) before `kluis serve`."
        )
    if source.startswith("pkcs11:"):
        return (
            f"the PKCS#11 token named by --kek must hold the key-encryption key with fingerprint {fingerprint} "
            "before `kluis serve`."
        )
    path = source[len("file:") :] if source.startswith("file:") else source
    return (
        f"{path} is missing: put the key-encryption key with fingerprint {fingerprint} there before `kluis serve` "
        "(or start kluis with --kek env:VAR or --kek pkcs11:... holding that key)."
    )

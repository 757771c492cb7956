"""``kluis db``: the database's schema version, and upgrading it without starting the server.

``kluis serve`` applies pending migrations on start too; ``kluis db upgrade`` lets an operator do
it ahead of time (e.g. before rolling out a new release to several nodes) and see what changed.
"""

from __future__ import annotations

from kluis.api.runtime import database_label, schema_status, upgrade_database
from kluis.cli.common import DataDirOpt, KluisTyper, OutputOpt, data_dir_of, run
from kluis.cli.output import Output, emit

__all__ = ["db_app"]

db_app = KluisTyper(help="The database: schema version and migrations.")


@db_app.command("upgrade")
def upgrade(data_dir: DataDirOpt = None, output: OutputOpt = Output.json) -> None:
    """Apply every pending schema migration (safe to run while kluis serves: migrations take the write lock)."""
    before, after = run(upgrade_database, data_dir_of(data_dir))
    emit({"database": database_label(data_dir_of(data_dir)), "from": before, "to": after}, output)


@db_app.command("status")
def status(data_dir: DataDirOpt = None, output: OutputOpt = Output.json) -> None:
    """The database's schema version and the version this kluis brings."""
    current, latest = run(schema_status, data_dir_of(data_dir))
    emit({"database": database_label(data_dir_of(data_dir)), "version": current, "latest": latest}, output)

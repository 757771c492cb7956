"""A throw-away PostgreSQL server for tests and benchmarks: ``initdb`` + ``pg_ctl start`` in a temporary
directory, on a free loopback port, stopped (and deleted) at the end.

PostgreSQL refuses to run as root; as root the server runs as the ``postgres`` system user (made
by Debian's package) through ``runuser``. Nothing is installed here: ``make pg-deps`` installs
Debian's ``postgresql`` package under CI=true. ``find_binaries()`` says why it cannot start, so
callers can skip (a developer without PostgreSQL) or fail (CI).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["IN_CI", "PostgresServer", "find_binaries"]

IN_CI = os.environ.get("CI", "").lower() == "true"
SUPERUSER = "kluis"


def find_binaries() -> tuple[Path | None, str]:
    """(the directory holding initdb and pg_ctl, "") or (None, why not)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent, ""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate), ""
    return None, (
        "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin); "
        "install Debian's postgresql package (`make pg-deps` does under CI=true) to run the PostgreSQL tests"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster. ``durable=False`` (tests) turns fsync off; benchmarks keep PostgreSQL's
    defaults (fsync on, synchronous commit), as SQLite's ``synchronous=FULL`` is on."""

    def __init__(self, *, durable: bool = False) -> None:
        bindir, why = find_binaries()
        if bindir is None:
            raise RuntimeError(why)
        self.bindir = bindir
        self.durable = durable
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="kluis-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run PostgreSQL as") from None
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 60) -> None:
        res = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({res.returncode}): {res.stderr.strip()}\n{tail}")

    def start(self) -> PostgresServer:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8" if Path("/usr/lib/locale/C.utf8").exists() else "--locale=C",
        )  # fmt: skip
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30",
            "start",
        )  # fmt: skip
        return self

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"kluis_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [*self._as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        for _ in range(3):
            try:
                shutil.rmtree(self.root)
                break
            except OSError:
                time.sleep(0.2)

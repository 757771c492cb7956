"""The composition root: builds store, sealer, clock, services and token handling from a data dir.

``bootstrap=True`` (only ``kluis serve``'s main process) creates what a first start needs: the
key-encryption key file, the tenant, the token-signing key (sealed in the database so every
worker and machine sharing the database signs with the same key), the administrator principal
and its credential file, and the default vault for bare ``localhost`` / IP addresses.

The store is SQLite in the data dir unless ``settings.database`` is a ``postgresql://`` URL. On a
shared (PostgreSQL) database several nodes act as one vault: the first node to start creates the
tenant, token-signing key, administrator and CA in the database; a node that joins later finds
them there. Each node needs the same key-encryption key (``kek.key`` in its data dir, copied by
the operator, or the same ``--kek`` source: an environment variable or a PKCS#11 token); the KEK
never enters the database, which keeps only the data keys it wraps and its fingerprint
(:mod:`kluis.domain.keyring`). The administrator's credential and the CA's certificate and key are kept in the
database sealed under the KEK, so a joining node writes the same ``admin.json`` and CA files and
issues its own server certificate from that one CA, which clients already trust.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from kluis.addressing import DEFAULT_VAULT
from kluis.config import DataDir, ServerSettings, StartupError, write_private
from kluis.crypto import CryptoError, KeyPool, Sealer
from kluis.crypto.kek import (
    FileKek,
    KekMissing,
    KekUnavailable,
    KeyEncryptionKey,
    canonical_source,
    create_kek_file,
    fingerprint_of,
    open_kek,
    redact_source,
)
from kluis.crypto.kek import init_pkcs11_kek as make_pkcs11_kek
from kluis.crypto.seal import KEK_SIZE
from kluis.domain.audit import AuditLog, AuditService
from kluis.domain.authorization import AccessPolicyAuthorizer, Authorizer
from kluis.domain.backup import BackupEnvelope, ObjectBackup
from kluis.domain.clock import Clock
from kluis.domain.errors import Conflict, NotFound
from kluis.domain.events import EventBus, access_log
from kluis.domain.housekeeping import Housekeeping, TickResult
from kluis.domain.keyring import KEK_CHECK_SETTING, KeyringError, open_keyring, rotate_kek
from kluis.domain.keys.backup import open_legacy_key_backup
from kluis.domain.keys.operations import KeyOperations
from kluis.domain.keys.release import KeyRelease
from kluis.domain.keys.service import KeyService
from kluis.domain.management import Management
from kluis.domain.secrets.service import SecretService
from kluis.identity.pki import CA_CERT_NAME, CA_KEY_NAME
from kluis.identity.secrets import hash_secret, new_app_id, new_client_secret, new_object_id
from kluis.identity.tokens import TokenIssuer, TokenVerifier, new_signing_key
from kluis.store import (
    SCHEMA_VERSION,
    CacheMiss,
    ObjectRecord,
    PrincipalRecord,
    VaultRecord,
    copy_database,
    is_postgres_url,
    open_store,
    read_setting,
    redact,
    schema_version_of,
)

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_VAULT",
    "CacheMiss",
    "Runtime",
    "backup_database",
    "database_label",
    "database_of",
    "init_pkcs11_kek",
    "kek_fingerprint",
    "kek_source_of",
    "open_node_kek",
    "restore_database",
    "rotate_database_kek",
    "schema_status",
    "upgrade_database",
]

log = logging.getLogger("kluis.kek")
DEFAULT_GROUP = "kluis"
# PostgreSQL: threads (and pooled connections) per worker for requests' database work; on 2 cores 4
# beat 8 (create EC key 58% vs 50% of SQLite's rate: fewer threads contend less for the GIL).
DB_THREADS = 4
ADMIN_CREDENTIAL_SETTING = "admin_credential"  # shared databases: admin.json sealed under the KEK
CA_SETTING = "tls_ca"  # shared databases: the CA's certificate and key (PEM), sealed under the KEK


def _without_password(text: str, database: str) -> str:
    """``text`` with the URL's password, as written or percent-decoded, replaced by ``***`` (libpq
    quotes a malformed one back: 'invalid percent-encoded token: "p%ZZw"')."""
    userinfo = database.split("://", 1)[-1].rsplit("@", 1)[0] if "@" in database else ""
    password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
    for form in sorted({password, unquote(password)} - {""}, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def database_of(data_dir: DataDir, settings: ServerSettings | None = None) -> str:
    """The database a node uses: ``settings.database`` (server.json's when None) or the data dir's SQLite file."""
    if settings is None:
        settings = data_dir.read_server()
    return (settings.database if settings is not None else "") or str(data_dir.database)


def database_label(data_dir: DataDir) -> str:
    """The node's database for people: the SQLite file's path, or the PostgreSQL URL without its password."""
    return redact(database_of(data_dir))


def upgrade_database(data_dir: DataDir) -> tuple[int, int]:
    """Apply pending schema migrations to the node's database: (version before, version after).

    Raises FileNotFoundError when there is no SQLite database yet (``kluis serve`` creates it).
    """
    database = database_of(data_dir)
    if not is_postgres_url(database) and not Path(database).exists():
        raise FileNotFoundError(f"No database at {database}; start `kluis serve` first.")
    store = open_store(database, pool_size=1)
    try:
        return store.migrated_from, store.schema_version
    finally:
        store.close()


def schema_status(data_dir: DataDir) -> tuple[int, int]:
    """(the database's schema version, the latest this kluis knows), without changing anything."""
    database = database_of(data_dir)
    if not is_postgres_url(database) and not Path(database).exists():
        raise FileNotFoundError(f"No database at {database}; start `kluis serve` first.")
    return schema_version_of(database), SCHEMA_VERSION


def backup_database(data_dir: DataDir, out: Path) -> dict[str, Any]:
    """A consistent snapshot of the whole database at ``out`` (mode 0600), safe while kluis serves.

    SQLite's online backup API copies the pages of one committed state (writers keep going; the
    copy restarts past their commits). Sealed material stays sealed: the snapshot is as useless
    without the same ``kek.key`` as the database itself. Returns the file, its size in bytes, its
    schema version and the fingerprint of the KEK it needs. FileNotFoundError when there is no
    database; FileExistsError when ``out`` exists; ValueError for a node on PostgreSQL (use pg_dump).
    """
    if is_postgres_url(database_of(data_dir)):
        raise ValueError(
            f"This node's database is PostgreSQL ({database_label(data_dir)}): back it up with pg_dump, "
            "and keep kek.key with it (`kluis backup` snapshots SQLite)."
        )
    if not data_dir.database.exists():
        raise FileNotFoundError(f"No database at {data_dir.database}; start `kluis serve` first.")
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another --out or remove it first.")
    copy_database(data_dir.database, out)
    return _describe_snapshot(out)


def _describe_snapshot(path: Path) -> dict[str, Any]:
    fingerprint = read_setting(path, KEK_CHECK_SETTING)
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "schemaVersion": schema_version_of(path),
        "kekFingerprint": fingerprint.decode() if fingerprint else None,
    }


def restore_database(data_dir: DataDir, snapshot: Path, *, force: bool = False) -> dict[str, Any]:
    """Make ``snapshot`` (from :func:`backup_database`) the data dir's database.

    Refuses (RuntimeError) while any ``kluis serve`` runs on the data dir (it holds ``serve.lock``),
    when a database exists and ``force`` is false, when the snapshot is not a kluis database, and
    when the data dir's KEK (server.json's ``--kek`` source, else ``kek.key``) is not the one that
    wraps the snapshot's data keys, or cannot be read. Without a ``kek.key`` the database is
    restored and the answer says which KEK (by fingerprint) to put there before ``kluis serve``;
    kluis never creates a new KEK for it. Pending migrations run on the next start (or ``kluis db
    upgrade``). Returns what was restored, ``kekPresent`` and ``kekSource`` (the source the data
    dir's server uses: ``file:PATH``, ``env:VAR`` or a ``pkcs11:`` URI).
    """
    if not snapshot.is_file():
        raise FileNotFoundError(f"No snapshot at {snapshot}.")
    try:
        info = _describe_snapshot(snapshot)
    except sqlite3.DatabaseError:
        raise RuntimeError(f"{snapshot} is not a kluis database snapshot.") from None
    if info["kekFingerprint"] is None:
        raise RuntimeError(f"{snapshot} is not a kluis database snapshot (it names no key-encryption key).")
    data_dir.ensure()
    with open(data_dir.serve_lock, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"kluis serve is running on {data_dir.path}; stop it before restoring into this data dir."
            ) from None
        if data_dir.database.exists() and not force:
            raise RuntimeError(f"{data_dir.database} exists; pass --force to replace it with the snapshot.")
        settings = data_dir.read_server()
        try:  # the KEK this data dir's server uses (server.json's --kek, else kek.key)
            kek: KeyEncryptionKey | None = open_kek(settings.kek if settings else "", default_file=data_dir.kek)
        except KekMissing:
            kek = None
        except KekUnavailable as e:
            raise RuntimeError(f"{e} (the snapshot needs the key-encryption key {info['kekFingerprint']}).") from None
        kek_present = kek is not None
        if kek is not None and kek.fingerprint != info["kekFingerprint"]:
            where = str(kek.path) if isinstance(kek, FileKek) else kek.label
            raise RuntimeError(
                f"The key-encryption key {where} (fingerprint {kek.fingerprint}) is not the key the snapshot was "
                f"sealed with ({info['kekFingerprint']}); put that KEK there (after a `kluis kek rotate`: the "
                "dated kek.key.*.bak), or restore into another data dir."
            )
        staged = data_dir.database.with_name(data_dir.database.name + ".restore")
        staged.unlink(missing_ok=True)
        copy_database(snapshot, staged)
        for suffix in ("-wal", "-shm"):  # the old database's journal must not be replayed onto the new one
            Path(str(data_dir.database) + suffix).unlink(missing_ok=True)
        os.replace(staged, data_dir.database)
    source = (settings.kek if settings else "") or f"file:{data_dir.kek}"
    return {
        **info,
        "file": str(data_dir.database),
        "from": str(snapshot),
        "kekPresent": kek_present,
        "kekSource": redact_source(source),
    }


def kek_fingerprint(kek: bytes) -> str:
    """A public check value of a file or env KEK: 16 bytes of an HKDF sub-key, hex in colon-separated
    groups (:func:`kluis.crypto.kek.fingerprint_of`): what the database records and errors name."""
    return fingerprint_of(kek)


def open_node_kek(
    data_dir: DataDir,
    store: Any,
    source: str,
    *,
    create: bool,
    database: str,
    recover: bool = False,
    locked: bool = False,
) -> KeyEncryptionKey:
    """The KEK ``source`` names ("" for the data dir's ``kek.key``), as a :class:`StartupError` with
    one line naming the source and the fingerprint the database expects when it is missing, not
    usable or not the database's KEK (listing the staged and backup key files found, with their
    fingerprints). A key file is created (mode 0600) only with ``create`` and for a database holding
    nothing sealed: kluis never makes a new KEK for sealed data. With ``recover`` (``kluis serve``'s
    main process, ``kluis kek rotate``) a rotation interrupted after its commit is rolled forward
    first: see :func:`_roll_forward` (``locked``: the caller holds the data dir's rotate lock). A
    recovering start holds that lock from reading the database's fingerprint to comparing it, so a
    rotation running at the same time is seen either whole or not at all."""
    if recover and not locked:
        data_dir.ensure()
        with open(_rotate_lock(data_dir), "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("Waiting for a running `kluis kek rotate` on %s to finish.", data_dir.path)
                fcntl.flock(lock, fcntl.LOCK_EX)
            return open_node_kek(data_dir, store, source, create=create, database=database, recover=True, locked=True)
    with store.read() as tx:
        expected = tx.get_setting(KEK_CHECK_SETTING)
        sealed = tx.get_setting("token_signing_key")
    known = f" with fingerprint {expected.decode()}" if expected is not None else ""
    try:
        canonical = canonical_source(source, default_file=data_dir.kek)
    except KekUnavailable as e:
        raise StartupError(str(e)) from None
    key_file = Path(canonical[len("file:") :]) if canonical.startswith("file:") else None
    if not canonical:
        key_file = data_dir.kek
    if recover and key_file is not None and expected is not None:
        _roll_forward(data_dir, key_file, expected.decode(), locked=locked)
    try:
        kek = open_kek(canonical, default_file=data_dir.kek)
    except KekMissing as e:
        if expected is not None or sealed is not None:
            raise StartupError(
                f"The key-encryption key file {e.path} is missing, but the database {redact(database)} "
                f"holds data sealed under a key{known}. Restore kek.key from your backup (a node joining a "
                f"shared database: copy the first node's kek.key); kluis never creates a new one for a "
                f"database that has sealed data.{_found_keys(data_dir, e.path)}"
            ) from None
        if not create:
            raise StartupError(f"No key-encryption key at {e.path}; start `kluis serve` first.") from None
        try:
            create_kek_file(e.path)
            return open_kek(canonical, default_file=data_dir.kek)
        except KekUnavailable as made:
            raise StartupError(str(made)) from None
    except KekUnavailable as e:
        wanted = f" The database {redact(database)} expects the key-encryption key{known}." if known else ""
        raise StartupError(f"{e}{wanted}") from None
    if expected is not None and kek.fingerprint != expected.decode():
        raise StartupError(
            f"{kek.label[:1].upper()}{kek.label[1:]} is not the key of the database: its fingerprint is "
            f"{kek.fingerprint}, the database expects {expected.decode()}. Give kluis that key-encryption key."
            f"{_found_keys(data_dir, key_file)}"
        )
    return kek


def _rotate_lock(data_dir: DataDir) -> Path:
    return data_dir.path / "kek.rotate.lock"


def _staged_files(final: Path) -> list[Path]:
    """Key files a rotation staged beside ``final`` (``NAME.<id>.new``; ``NAME.new`` from older kluis)."""
    found = [p for p in final.parent.glob(f"{final.name}.*.new") if p.is_file()]
    legacy = final.with_name(final.name + ".new")
    return sorted(found + ([legacy] if legacy.is_file() else []))


def _file_fingerprint(path: Path) -> str | None:
    try:
        key = path.read_bytes()
    except OSError:
        return None
    return fingerprint_of(key) if len(key) == KEK_SIZE else None


_FOUND_SHOWN = 5  # key files named in a start error, newest first (a data dir may keep many .bak files)


def _found_keys(data_dir: DataDir, key_file: Path | None) -> str:
    """ " Key files found: NAME (F), ... and N older." for the staged and backup key files beside
    ``key_file`` and the data dir's ``kek.key``, the ``_FOUND_SHOWN`` newest ("" when there are none)."""
    places = {data_dir.kek}
    if key_file is not None:
        places.add(key_file)
    found: dict[Path, str] = {}
    for final in places:
        candidates = [final, *_staged_files(final), *final.parent.glob(f"{final.name}.*.bak")]
        for path in candidates:
            fingerprint = _file_fingerprint(path) if path.is_file() else None
            if fingerprint is not None and path != key_file:
                found[path] = fingerprint
    if not found:
        return ""
    newest = sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:_FOUND_SHOWN]
    listed = ", ".join(f"{p} ({found[p]})" for p in newest)
    more = f" and {len(found) - len(newest)} older" if len(found) > len(newest) else ""
    return f" Key files found: {listed}{more}."


def _unique_backup(final: Path) -> Path:
    """``NAME.YYYYmmddTHHMMSSZ.bak`` beside ``final``, or ``...Z-2.bak``, ``-3``... when taken (same second)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    n = 1
    while True:
        candidate = final.with_name(f"{final.name}.{stamp}{'' if n == 1 else f'-{n}'}.bak")
        try:
            os.link(final, candidate)
        except FileExistsError:
            n += 1
            continue
        return candidate


def _roll_forward(data_dir: DataDir, final: Path, expected: str, *, locked: bool) -> None:
    """Finish a rotation interrupted after its commit: when ``final`` (the key file) is not the
    database's KEK (``expected``) but a staged ``NAME.*.new`` beside it is, keep ``final`` as a
    dated ``.bak`` and move the staged key into place (logging one line). Unless the caller holds
    it (``locked``), waits for the data dir's rotate lock so it never races a rotation in progress."""
    if _file_fingerprint(final) == expected or not any(_file_fingerprint(p) == expected for p in _staged_files(final)):
        return
    if locked:
        _move_staged_into_place(final, expected)
        return
    data_dir.ensure()
    with open(_rotate_lock(data_dir), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a running rotation finishes its own work first
        _move_staged_into_place(final, expected)


def _move_staged_into_place(final: Path, expected: str) -> None:
    if _file_fingerprint(final) == expected:
        return
    staged = next((p for p in _staged_files(final) if _file_fingerprint(p) == expected), None)
    if staged is None:
        return
    backup = _unique_backup(final) if final.exists() else None
    os.replace(staged, final)
    _fsync_dir(final.parent)
    log.warning(
        "Rolled an interrupted `kluis kek rotate` forward: %s (fingerprint %s) is the key file now%s.",
        final,
        expected,
        f"; the previous one is kept as {backup}" if backup is not None else "",
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def kek_source_of(source: str, data_dir: DataDir) -> str:
    """``--kek`` as kluis stores it in server.json: a key file as ``file:`` and an absolute path
    (taken from the current directory), ``env:``/``pkcs11:`` as given, "" for the data dir's
    ``kek.key``. StartupError (one line naming the accepted forms) for an unknown ``scheme:``."""
    try:
        return canonical_source(source, default_file=data_dir.kek)
    except KekUnavailable as e:
        raise StartupError(str(e)) from None


def init_pkcs11_kek(uri: str) -> dict[str, str]:
    """``kluis kek init-pkcs11``: generate the AES-256 KEK a ``pkcs11:`` URI names on its token
    (never extractable; wrap/unwrap only). StartupError (one line) when the token, PIN or module
    is not usable or the label is taken. Returns the source and the new KEK's fingerprint."""
    try:
        kek = make_pkcs11_kek(uri)
    except KekUnavailable as e:
        raise StartupError(str(e)) from None
    return {"source": kek.source, "kek": kek.label, "fingerprint": kek.fingerprint}


def rotate_database_kek(
    data_dir: DataDir, new_source: str | None, *, old_source: str | None = None, database: str | None = None
) -> dict[str, Any]:
    """``kluis kek rotate``: re-wrap every data key of the node's database under a new KEK, in one
    transaction, while servers keep serving (they hold the unwrapped keys).

    ``old_source``: the database's KEK (default: server.json's source, else ``kek.key``); ``database``:
    a ``postgresql://`` URL or SQLite file (default: server.json's, else the data dir's).
    ``new_source``: the new KEK (``env:``/``pkcs11:`` hold it already; a ``file:`` path that does not
    exist gets a new random key; an unknown ``scheme:`` is refused). None, or the old key file
    itself: a new random key, always, in place of the key file (the old KEK's file, else the data
    dir's ``kek.key``); the file it replaces is kept beside it as ``NAME.YYYYmmddTHHMMSSZ.bak``
    (0600; ``-2``... when taken). server.json is updated to the new source so workers and the
    next start use it.

    One rotation at a time per data dir (``kek.rotate.lock``: a second one fails at once, writing
    nothing). The new key file is staged as ``NAME.<random>.new`` and moved into place after the
    commit; a staged file is removed only when the commit certainly did not happen, and a rotation
    interrupted after its commit is rolled forward by the next start or rotation. StartupError (one
    line) for a wrong or missing KEK, changing nothing. Returns the fingerprints, the number of data
    keys and where the KEK is.
    """
    settings = data_dir.read_server()
    if old_source is None:
        old_source = settings.kek if settings is not None else ""
    database = database or database_of(data_dir, settings)
    if not is_postgres_url(database) and not Path(database).exists():
        raise FileNotFoundError(f"No database at {database}; start `kluis serve` first.")
    try:
        target = canonical_source(new_source or "", default_file=data_dir.kek)
    except KekUnavailable as e:
        raise StartupError(f"The new key-encryption key: {e}") from None
    data_dir.ensure()
    with open(_rotate_lock(data_dir), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StartupError(
                f"Another `kluis kek rotate` is running on {data_dir.path} (it holds {lock.name}); "
                "wait for it to finish, then check `kluis kek rotate`'s answer before rotating again."
            ) from None
        store = open_store(database, pool_size=1)
        try:
            return _rotate_locked(data_dir, settings, store, database, target, old_source)
        finally:
            store.close()


def _rotate_locked(
    data_dir: DataDir,
    settings: ServerSettings | None,
    store: Any,
    database: str,
    target: str,
    old_source: str,
) -> dict[str, Any]:
    """:func:`rotate_database_kek` under the data dir's rotate lock, with the store open."""
    old = open_node_kek(data_dir, store, old_source, create=False, database=database, recover=True, locked=True)
    staged: Path | None = None  # a key file this rotation wrote; removed unless the commit may have happened
    final: Path | None = None  # where the staged key goes after the commit
    backup: Path | None = None
    may_have_committed = False
    try:
        same_file = isinstance(old, FileKek) and (not target or _file_of(target, data_dir) == old.path.resolve())
        if same_file or not target:  # always a new random key, in place of the key file
            final = old.path if isinstance(old, FileKek) else data_dir.kek
            staged = final.with_name(f"{final.name}.{uuid.uuid4().hex[:12]}.new")
            new: KeyEncryptionKey
            try:
                create_kek_file(staged)
                new = open_kek(f"file:{staged}", default_file=data_dir.kek)
            except KekUnavailable as e:
                raise StartupError(f"The new key-encryption key: {e}") from None
            target = old_source if same_file else ""
        else:
            path = _file_of(target, data_dir) if target.startswith("file:") else None
            if path is not None and not path.exists():
                try:
                    create_kek_file(path)
                except KekUnavailable as e:
                    raise StartupError(f"The new key-encryption key: {e}") from None
                staged = path  # a new key file: removed again if the rotation does not happen
            try:
                new = open_kek(target, default_file=data_dir.kek)
            except KekUnavailable as e:
                raise StartupError(f"The new key-encryption key: {e}") from None

        def put_in_place() -> None:
            nonlocal backup, may_have_committed
            if final is not None and final.exists():
                backup = _unique_backup(final)  # the file replaced, kept: snapshots made before may need it
            may_have_committed = True  # from here on the commit may happen: the staged key must survive

        try:
            result = rotate_kek(store, old, new, before_commit=put_in_place)
        except KeyringError as e:  # raised before the commit: nothing changed
            may_have_committed = False
            if backup is not None:
                backup.unlink(missing_ok=True)
            raise StartupError(str(e)) from None
        if final is not None and staged is not None:
            os.replace(staged, final)  # committed: the new key takes the old one's name
            _fsync_dir(final.parent)
        staged = None
        if settings is not None and settings.kek != target:
            settings.kek = target
            data_dir.write_server(settings)
        return {
            **result,
            "kek": new.label if final is None else f"the key-encryption key file {final}",
            "source": target or f"file:{data_dir.kek}",
            "oldKeyBackup": str(backup) if backup is not None and isinstance(old, FileKek) else None,
            **({"retiredKeyFile": str(backup)} if backup is not None and not isinstance(old, FileKek) else {}),
            "database": redact(database),
        }
    finally:
        if staged is not None and not may_have_committed:
            staged.unlink(missing_ok=True)


def _file_of(source: str, data_dir: DataDir) -> Path:
    text = source[len("file:") :] if source.startswith("file:") else source
    return (Path(text).expanduser() if text else data_dir.kek).resolve()


class Runtime:
    def __init__(self, data_dir: DataDir, settings: ServerSettings, *, bootstrap: bool = False) -> None:
        self.data_dir = data_dir
        self.settings = settings
        if bootstrap:
            data_dir.ensure()
        self.database = database_of(data_dir, settings)
        self.shared = is_postgres_url(self.database)  # several nodes may share this database
        threads = settings.db_threads if settings.db_threads is not None else (DB_THREADS if self.shared else 0)
        try:
            self.store = open_store(self.database, pool_size=max(threads, 2))
        except Exception as e:  # psycopg's OperationalError and the like: one line, not a traceback
            if self.shared and type(e).__module__.split(".")[0] in ("psycopg", "psycopg_pool"):
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise StartupError(
                    f"Cannot open the database {redact(self.database)}: {_without_password(first, self.database)}"
                ) from None
            raise
        # Runs each request's synchronous domain and database work off the event loop (None: inline).
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="kluis-db") if threads > 0 else None
        try:
            self.kek = open_node_kek(
                data_dir, self.store, settings.kek, create=bootstrap, database=self.database, recover=bootstrap
            )
            try:
                self.keyring = open_keyring(self.store, self.kek, create=bootstrap)
            except KeyringError as e:
                raise StartupError(str(e)) from None
            self.sealer = self.keyring.sealer
        except BaseException:  # a missing or wrong KEK: let go of the database before saying so
            if self.executor is not None:
                self.executor.shutdown(wait=False)
            self.store.close()
            raise
        self._offset_memo: tuple[bytes | None, int] = (None, 0)
        self.clock = Clock(self.clock_offset)
        self.tenant_id = self._setting("tenant_id", lambda: str(uuid.uuid4()).encode(), bootstrap).decode()
        signing_key = self.sealer.unseal(
            self._setting(
                "token_signing_key",
                lambda: self.sealer.seal(new_signing_key(), context=b"kluis/token-signing-key"),
                bootstrap,
            ),
            context=b"kluis/token-signing-key",
        )
        key_id = self._setting("token_key_id", lambda: uuid.uuid4().hex.encode(), bootstrap).decode()
        self.issuer = TokenIssuer(signing_key, tenant_id=self.tenant_id, key_id=key_id)
        self.verifier = TokenVerifier.from_signing_key(signing_key, tenant_id=self.tenant_id, key_id=key_id)
        self.signing_key_der = signing_key
        self.key_id = key_id
        self.management = Management(self.store, self.clock)
        self.authorizer: Authorizer = AccessPolicyAuthorizer(self.store)
        self.events = EventBus()
        self.events.subscribe(access_log)
        # The audit log: MACs under its own data key; a writer (own chain, lazily started thread) per process.
        audit_key = self.keyring.audit_key
        self.audit = AuditService(self.store, audit_key)
        self.audit_log: AuditLog | None = None
        if settings.audit:
            self.audit_log = AuditLog(
                self.store, audit_key, batch=settings.audit_batch, interval=settings.audit_flush_ms / 1000
            )
            self.events.subscribe(self.audit_log)
        self.pool = KeyPool(sizes={2048: settings.key_pool}) if settings.key_pool > 0 else None
        self.keys = KeyService(self.store, self.sealer, self.clock, pool=self.pool)
        self.key_operations = KeyOperations(self.keys)
        self.release = KeyRelease(self.store, self.clock, self.keys)
        # One backup key for every kind, a data key of its own (on databases from before data keys, the
        # value once derived from the KEK, so backups made then still open); kind and tenant are the AAD.
        envelope = BackupEnvelope(Sealer(self.keyring.backup_key), self.tenant_id)
        self.key_backup = ObjectBackup(
            self.keys.lifecycle, self.store, envelope, legacy=lambda blob: open_legacy_key_backup(envelope, blob)
        )
        self.secrets = SecretService(self.store, self.sealer, self.clock)
        self.secret_backup = ObjectBackup(self.secrets.lifecycle, self.store, envelope)
        # by kind ("key", "secret"): what the shared lifecycle handlers (kluis.api.lifecycle) reach
        self.lifecycles = {"key": self.keys.lifecycle, "secret": self.secrets.lifecycle}
        self.backups = {"key": self.key_backup, "secret": self.secret_backup}
        self.housekeeper = Housekeeping(
            self.store,
            self.clock,
            {"key": self.keys.lifecycle, "secret": self.secrets.lifecycle},
            {"key": self._rotate_due_key},
        )
        if bootstrap:
            self._bootstrap_admin_and_default_vault()

    # -- first start ---------------------------------------------------------------------------
    def _setting(self, name: str, make: Any, create: bool) -> bytes:
        with self.store.read() as tx:
            value = tx.get_setting(name)
        if value is not None:
            return value
        if not create:
            raise RuntimeError(f"The database has no {name}; start `kluis serve` first.")
        with self.store.write() as tx:
            value = tx.get_setting(name)
            if value is None:
                value = make()
                tx.put_setting(name, value)
        return value

    def cache_only(self) -> AbstractContextManager[None]:
        """For the block, reads on this thread come from the store's cache or raise ``CacheMiss``
        (PostgreSQL; a no-op on SQLite): how the dispatcher answers cached reads on the event loop."""
        return self.store.cache_only()

    def clock_offset(self) -> int:
        """Seconds ``kluis time set`` moved the clock by, as the store's cached reads see it now (read
        on every ``Clock.now()``: every worker sees a change as soon as its next read sees the database's)."""
        raw = self.store.cached_setting("clock_offset")
        memo = self._offset_memo  # (bytes read, seconds): one object, so threads never see half of it
        if raw is not memo[0]:  # the cache hands out the same bytes until the row changes
            memo = self._offset_memo = (raw, int(raw) if raw else 0)
        return memo[1]

    def set_clock_offset(self, seconds: int) -> None:
        with self.store.write() as tx:
            tx.put_setting("clock_offset", str(int(seconds)).encode())

    def _bootstrap_admin_and_default_vault(self) -> None:
        with self.store.read() as tx:
            admin_oid = tx.get_setting("admin_object_id")
        if admin_oid is not None and not self.data_dir.admin.exists() and self._join_admin():
            pass  # a node joining a shared database: the cluster's administrator, written from the database
        elif admin_oid is None or not self.data_dir.admin.exists():
            secret = new_client_secret()
            principal = PrincipalRecord(
                object_id=new_object_id(),
                app_id=new_app_id(),
                display_name="kluis-admin",
                secret_hash=hash_secret(secret),
                is_admin=True,
                created=self.clock.now(),
            )
            credential = json.dumps(
                {
                    "tenant": self.tenant_id,
                    "appId": principal.app_id,
                    "password": secret,
                    "objectId": principal.object_id,
                    "displayName": principal.display_name,
                },
                indent=2,
            )
            with self.store.write() as tx:
                old = tx.get_setting("admin_object_id")
                joined = old is not None and admin_oid is None and self.shared  # another node was first
                if not joined:
                    if old is not None:  # credential file lost: replace the administrator's secret
                        tx.delete_principal(old.decode())
                    tx.add_principal(principal)
                    tx.put_setting("admin_object_id", principal.object_id.encode())
                    if self.shared:
                        sealed = self.sealer.seal(credential.encode(), context=b"kluis/admin-credential")
                        tx.put_setting(ADMIN_CREDENTIAL_SETTING, sealed)
            if joined:
                self._join_admin()
            else:
                write_private(self.data_dir.admin, credential)
                self._grant_admin_everywhere(principal.object_id)
        admin = self.admin_object_id()
        try:
            self.management.get_vault(DEFAULT_VAULT)
        except NotFound:
            self.management.create_group(DEFAULT_GROUP)
            try:
                self.management.create_vault(DEFAULT_VAULT, DEFAULT_GROUP, creator_object_id=admin, sku="premium")
            except Conflict:  # a node sharing the database made it a moment ago
                if not self.shared:
                    raise

    def _join_admin(self) -> bool:
        """Shared database: write the administrator's credential kept (sealed) in the database to
        this node's ``admin.json``. False when there is none (SQLite, or made before it was kept)."""
        if not self.shared:
            return False
        with self.store.read() as tx:
            sealed = tx.get_setting(ADMIN_CREDENTIAL_SETTING)
        if sealed is None:
            return False
        write_private(self.data_dir.admin, self.sealer.unseal(sealed, context=b"kluis/admin-credential").decode())
        return True

    def share_ca(self, tls_dir: Path) -> bool:
        """Shared database: make the CA in ``tls_dir`` the cluster's one CA. If the database keeps a
        CA (sealed), write it to ``tls_dir`` (replacing a different local one: the caller re-runs
        ``ensure_tls`` so the server certificate is re-issued by it); else publish the local CA, if
        there is one. True when local files changed. Does nothing on SQLite."""
        if not self.shared:
            return False
        cert_path, key_path = tls_dir / CA_CERT_NAME, tls_dir / CA_KEY_NAME
        with self.store.read() as tx:
            sealed = tx.get_setting(CA_SETTING)
        if sealed is None:
            if not (cert_path.exists() and key_path.exists()):
                return False
            mine = json.dumps({"cert": cert_path.read_text(), "key": key_path.read_text()}).encode()
            with self.store.write() as tx:
                sealed = tx.get_setting(CA_SETTING)
                if sealed is None:
                    tx.put_setting(CA_SETTING, self.sealer.seal(mine, context=b"kluis/tls-ca"))
                    return False
        shared = json.loads(self.sealer.unseal(sealed, context=b"kluis/tls-ca"))
        if (
            cert_path.exists()
            and key_path.exists()
            and cert_path.read_text() == shared["cert"]
            and key_path.read_text() == shared["key"]
        ):
            return False
        tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(key_path, shared["key"])
        write_private(cert_path, shared["cert"])
        os.chmod(cert_path, 0o644)
        return True

    def _grant_admin_everywhere(self, object_id: str) -> None:
        for vault in self.management.list_vaults():
            self.management.set_policy(vault.name, object_id, keys=["all"], secrets=["all"], certificates=["all"])

    # what a request that fails on the database raises (metrics count them); a store adds its own
    database_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    # -- per request -------------------------------------------------------------------------
    def begin_request(self) -> Any:
        """Mark the start of one request's reads (they share one freshness check); see the store."""
        return self.store.begin_request()

    def end_request(self, token: Any) -> None:
        self.store.end_request(token)

    def vault(self, name: str) -> VaultRecord:
        """The vault by name; read from the store each time so a deleted vault is gone everywhere."""
        return self.management.get_vault(name)

    def _rotate_due_key(self, vault: VaultRecord, obj: ObjectRecord) -> None:
        self.keys.rotate_key(vault, obj.name)

    def housekeeping(self) -> TickResult:
        """One scheduler tick: purge what retention released, rotate what policy says is due.

        On a shared database one node at a time runs a tick (the store's cluster-wide "scheduler"
        lock); a node that finds it taken skips this tick, so each due object is acted on once."""
        with self.store.exclusive("scheduler") as mine:
            if not mine:
                return TickResult()
            vaults = {v.vault_id: v for v in self.management.list_vaults()}
            return self.housekeeper.tick(vaults)

    def prune_audit(self, now_ms: int | None = None) -> int:
        """Apply the audit retention settings (real time, not the lifecycle clock); records deleted."""
        return self.audit.prune(
            now_ms=time.time_ns() // 1_000_000 if now_ms is None else now_ms,
            retention_days=self.settings.audit_retention_days,
            keep=self.settings.audit_retention_count,
        )

    def readiness(self) -> dict[str, str]:
        """The checks of :meth:`readiness_report` (each "ok" or why not)."""
        return self.readiness_report()[0]

    def readiness_report(self) -> tuple[dict[str, str], dict[str, str]]:
        """What ``/readyz`` answers: (checks, details). Checks, each "ok" or why not: the database
        answers a query, and the data keys in memory open what they sealed (the sealed token-signing
        key) with the KEK source readable. A node that holds its data keys can serve, so a KEK source
        that holds another key than the one the database records *now* (its ``kek_fingerprint``
        setting, which a ``kluis kek rotate`` on any node sharing the database changes; read through
        the store's cached reads, kept fresh by its notifications) does not fail readiness: it is a
        detail (``kek``: both fingerprints, and that the next start needs the database's KEK), logged
        as a warning at most every ``_KEK_WARN_INTERVAL`` seconds. No detail when the source holds
        the database's KEK, or when a key file's staged ``NAME.*.new`` does (a rotation between its
        commit and moving the file into place; the next start rolls it forward). Cost per call: one
        read of the KEK source, two cached settings, one unseal of the signing key."""
        checks = {"database": "ok", "kek": "ok"}
        details: dict[str, str] = {}
        try:
            with self.store.read() as tx:
                sealed = tx.get_setting("token_signing_key")
                expected = tx.get_setting(KEK_CHECK_SETTING)
        except Exception as exc:
            return {"database": f"unreachable: {type(exc).__name__}", "kek": "unknown"}, details
        try:
            if sealed is None:
                checks["kek"] = "the database holds no sealed signing key"
            else:
                self.sealer.unseal(sealed, context=b"kluis/token-signing-key")
            now = self.kek.current_fingerprint()
            if expected is not None and now != expected.decode() and not self._kek_staged(expected.decode()):
                where = str(self.kek.path) if isinstance(self.kek, FileKek) else self.kek.label
                details["kek"] = (
                    f"{where} (fingerprint {now}) is not the database's key-encryption key "
                    f"(fingerprint {expected.decode()}, e.g. after a `kluis kek rotate`): this node serves on "
                    "the data keys it holds, but its next start needs the database's KEK: start it with that key"
                )
                self._warn_kek(details["kek"])
        except KekUnavailable as exc:
            checks["kek"] = f"unusable: {exc}"
        except (CryptoError, OSError) as exc:
            checks["kek"] = f"unusable: {type(exc).__name__}"
        return checks, details

    def _kek_staged(self, expected: str) -> bool:
        """True when this node's KEK is a key file and a rotation staged the database's KEK
        (fingerprint ``expected``) beside it, which the next start moves into place."""
        if not isinstance(self.kek, FileKek):
            return False
        return any(_file_fingerprint(p) == expected for p in _staged_files(self.kek.path))

    _KEK_WARN_INTERVAL = 600.0  # seconds between two log warnings about the KEK source
    _kek_warned = 0.0  # time.monotonic() of the last one (0: never)

    def _warn_kek(self, message: str) -> None:
        now = time.monotonic()
        if self._kek_warned and now - self._kek_warned < self._KEK_WARN_INTERVAL:
            return
        self._kek_warned = now
        log.warning("Readiness: %s.", message)

    def admin_object_id(self) -> str:
        with self.store.read() as tx:
            raw = tx.get_setting("admin_object_id")
        return raw.decode() if raw else ""

    def close(self) -> None:
        if self.pool is not None:
            self.pool.stop()
        if self.audit_log is not None:
            self.audit_log.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        self.store.close()

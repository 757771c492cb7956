"""Key-encryption keys (KEKs): the root of trust, and how data keys are wrapped under it.

A KEK only wraps and unwraps the data keys of :mod:`kluis.crypto.seal`; it never enters the
database, which keeps the wrapped data keys and the KEK's fingerprint. Sources, as one string
(``kluis serve --kek SOURCE`` / ``KLUIS_KEK_SOURCE``):

- ``file:PATH`` or a bare path (the default is ``kek.key`` in the data dir): 32 raw bytes, mode 0600.
- ``env:VAR``: the environment variable ``VAR`` holds the 32-byte key, base64 (standard or url-safe).
- ``pkcs11:token=LABEL;object=KEY?module-path=LIB&pin-source=env:VAR`` (RFC 7512 style; values
  percent-encoded; ``pin-source`` is ``env:VAR`` (default ``env:KLUIS_PKCS11_PIN``) or ``file:PATH``;
  ``serial=SERIAL`` picks one of several tokens with the same label; ``pin-value`` is refused, never printed):
  an AES key on a PKCS#11 token, via ``python-pkcs11``. Wrapping and unwrapping happen inside the
  token (``C_WrapKey`` / ``C_UnwrapKey``); the KEK never leaves it.

Every source wraps with AES Key Wrap (RFC 3394; ``CKM_AES_KEY_WRAP`` on a token), whose integrity
check makes a wrong KEK fail to unwrap rather than give wrong keys. Errors are
:class:`KekUnavailable` with one line for people that names the source. Any other ``scheme:`` prefix
is an error, not a file name; key file paths are kept absolute (:func:`canonical_source`).
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from kluis.crypto.seal import DEK_SIZE, KEK_SIZE, derive_key, new_kek

__all__ = [
    "DEFAULT_PIN_ENV",
    "FileKek",
    "KekMissing",
    "KekUnavailable",
    "KeyEncryptionKey",
    "Pkcs11Kek",
    "SoftwareKek",
    "canonical_source",
    "create_kek_file",
    "fingerprint_of",
    "init_pkcs11_kek",
    "open_kek",
    "parse_pkcs11_uri",
    "redact_source",
]

log = logging.getLogger("kluis.kek")
ACCEPTED_FORMS = "file:PATH, env:VAR, pkcs11:... or a path"
# A "scheme:" prefix (RFC 3986 scheme syntax) that is none of file:, env:, pkcs11: is a mistake, not a file name.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_PIN_VALUE = re.compile(r"(pin-value=)[^;&?]*", re.IGNORECASE)

DEFAULT_PIN_ENV = "KLUIS_PKCS11_PIN"
# What a token's KEK wraps to make its fingerprint: a fixed, public 32-byte value.
_PROBE = hashlib.sha256(b"kluis/kek-fingerprint/probe").digest()


class KekUnavailable(Exception):
    """The KEK cannot be had or used: the message (one line) names the source and why."""


class KekMissing(KekUnavailable):
    """The key file does not exist (``kluis serve`` may create one for a database with nothing sealed)."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def _format(digest: bytes) -> str:
    text = digest[:16].hex()
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def fingerprint_of(kek: bytes) -> str:
    """The public check value of a software KEK (file or env): 16 bytes of an HKDF sub-key, hex in
    colon-separated groups of four (HKDF is one-way: it names the key without revealing it)."""
    return _format(derive_key(kek, b"kek-fingerprint"))


class KeyEncryptionKey(Protocol):
    """One KEK, loaded. ``source`` is the canonical source string, ``label`` names it for people,
    ``fingerprint`` is its check value as of loading."""

    @property
    def source(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...

    def wrap(self, deks: Sequence[bytes]) -> list[bytes]:
        """Each 32-byte data key wrapped (40 bytes each); KekUnavailable if the source fails."""
        ...

    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes]:
        """Each wrapped data key, unwrapped; KekUnavailable when one was not wrapped by this KEK."""
        ...

    def current_fingerprint(self) -> str:
        """The fingerprint of what the source holds now (re-read); KekUnavailable when it cannot be read."""
        ...

    def raw(self) -> bytes | None:
        """The key's bytes for a software KEK (needed once, to adopt data sealed before data keys); None on a token."""
        ...


class SoftwareKek:
    """A KEK held in this process's memory (from a file or an environment variable)."""

    __slots__ = ("_key", "_reread", "fingerprint", "label", "source")

    def __init__(self, key: bytes, *, source: str, label: str, reread: Any = None) -> None:
        if len(key) != KEK_SIZE:
            raise KekUnavailable(f"{label} holds {len(key)} bytes, not the {KEK_SIZE} of a key-encryption key.")
        self._key = key
        self._reread = reread
        self.source = source
        self.label = label
        self.fingerprint = fingerprint_of(key)

    def __repr__(self) -> str:
        return f"SoftwareKek({self.label}, fingerprint {self.fingerprint})"

    def wrap(self, deks: Sequence[bytes]) -> list[bytes]:
        return [aes_key_wrap(self._key, dek) for dek in deks]

    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes]:
        try:
            return [aes_key_unwrap(self._key, w) for w in wrapped]
        except (InvalidUnwrap, ValueError):
            raise KekUnavailable(
                f"{self.label} (fingerprint {self.fingerprint}) cannot unwrap the data keys: it is not their KEK."
            ) from None

    def current_fingerprint(self) -> str:
        if self._reread is None:
            return self.fingerprint
        key: bytes = self._reread()
        if len(key) != KEK_SIZE:
            raise KekUnavailable(f"{self.label} holds {len(key)} bytes, not {KEK_SIZE}.")
        return fingerprint_of(key)

    def raw(self) -> bytes | None:
        return self._key


class FileKek(SoftwareKek):
    """The KEK in a key file (32 raw bytes)."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path
        label = f"the key-encryption key file {path}"
        if not path.exists():
            raise KekMissing(f"The key-encryption key file {path} is missing.", path)
        _tighten(path)
        try:
            key = path.read_bytes()
        except OSError as e:
            raise KekUnavailable(f"Cannot read the key-encryption key file {path}: {e.strerror or e}.") from None
        super().__init__(key, source=f"file:{path}", label=label, reread=self._read)

    def _read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except OSError as e:
            raise KekUnavailable(f"Cannot read the key-encryption key file {self.path}: {e.strerror or e}.") from None


def _tighten(path: Path) -> None:
    """A key file others may read or write is made 0600 (as kluis does for its database files), with a warning."""
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("The key-encryption key file %s had mode %o; kluis made it 0600.", path, mode & 0o777)
    except OSError as e:
        log.warning("The key-encryption key file %s is readable by others and cannot be made 0600: %s", path, e)


def create_kek_file(path: Path) -> None:
    """Write a new random KEK to ``path`` (mode 0600), flushed to disk. FileExistsError if it exists
    (never overwrites); KekUnavailable (one line) when its directory is missing or not writable."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise KekUnavailable(
                f"Cannot create the key-encryption key file {path}: the directory {path.parent} does not exist."
            ) from None
        raise KekUnavailable(f"Cannot create the key-encryption key file {path}: {e.strerror or e}.") from None
    with os.fdopen(fd, "wb") as f:
        f.write(new_kek())
        f.flush()
        os.fsync(f.fileno())


def redact_source(source: str) -> str:
    """``source`` fit to print: a ``pin-value=`` in a ``pkcs11:`` URI is replaced by ``***``."""
    return _PIN_VALUE.sub(r"\1***", source)


def canonical_source(source: str, *, default_file: Path) -> str:
    """The KEK source as kluis stores it (server.json): ``env:VAR`` and ``pkcs11:`` URIs as given,
    a key file as ``file:`` and an absolute path ("" stays "": the data dir's ``kek.key``, ``default_file``).
    KekUnavailable (one line naming the accepted forms) for any other ``scheme:`` prefix, so a typo
    is never taken for a relative file name."""
    text = source.strip()
    if not text:
        return ""
    if text.startswith(("env:", "pkcs11:")):
        return text
    if text.startswith("file:"):
        text = text[len("file:") :]
        if not text:
            return f"file:{default_file.absolute()}"
    else:
        match = _SCHEME.match(text)
        if match:
            raise KekUnavailable(
                f"The key-encryption key source {redact_source(text)!r} has an unknown scheme {match.group(1)!r}: "
                f"give {ACCEPTED_FORMS}."
            )
    return f"file:{Path(text).expanduser().absolute()}"


def _env_kek(var: str) -> SoftwareKek:
    label = f"the environment variable {var}"

    def read() -> bytes:
        text = os.environ.get(var)
        if text is None or not text.strip():
            raise KekUnavailable(f"The key-encryption key variable {var} is not set (it must hold 32 bytes, base64).")
        try:
            return base64.b64decode(text.strip().translate(str.maketrans("-_", "+/")), validate=True)
        except (binascii.Error, ValueError):
            raise KekUnavailable(f"The key-encryption key variable {var} is not base64.") from None

    return SoftwareKek(read(), source=f"env:{var}", label=label, reread=read)


# -- PKCS#11 ---------------------------------------------------------------------------------------


def parse_pkcs11_uri(uri: str) -> dict[str, str]:
    """The attributes of a ``pkcs11:`` URI (RFC 7512: path attributes split by ``;``, query attributes
    after ``?`` split by ``&``, values percent-decoded). Must name ``token``, ``object`` and
    ``module-path``; ``pin-source`` defaults to ``env:KLUIS_PKCS11_PIN``. ValueError otherwise."""
    if not uri.startswith("pkcs11:"):
        raise ValueError(f"{uri!r} is not a pkcs11: URI")
    path, _, query = uri[len("pkcs11:") :].partition("?")
    attrs: dict[str, str] = {}
    for part in [p for p in path.split(";") if p] + [q for q in query.split("&") if q]:
        name, eq, value = part.partition("=")
        if not eq or not name:
            raise ValueError(f"the pkcs11: URI attribute {part!r} is not NAME=VALUE")
        attrs[unquote(name)] = unquote(value)
    if "pin-value" in attrs:
        raise ValueError("put the PIN in an environment variable (pin-source=env:VAR), not in the pkcs11: URI")
    missing = [a for a in ("token", "object", "module-path") if not attrs.get(a)]
    if missing:
        raise ValueError(
            f"the pkcs11: URI needs {', '.join(missing)} (e.g. pkcs11:token=kluis;object=kluis-kek"
            "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:KLUIS_PKCS11_PIN)"
        )
    pin = attrs.setdefault("pin-source", f"env:{DEFAULT_PIN_ENV}")
    if not (pin.startswith("env:") or pin.startswith("file:")):
        raise ValueError(f"pin-source must be env:VAR or file:PATH, not {pin!r}")
    return attrs


_LIBS: dict[str, tuple[Any, int]] = {}  # module path -> (loaded module, pid that initialised it)
_LIBS_LOCK = threading.Lock()


def _library(path: str, label: str) -> Any:
    """The loaded PKCS#11 module, initialised in this process: a worker forked from the supervisor
    re-initialises it (PKCS#11 asks ``C_Initialize`` of a child before it uses the module)."""
    with _LIBS_LOCK:
        loaded = _LIBS.get(path)
        try:
            if loaded is None:
                import pkcs11

                _LIBS[path] = (pkcs11.lib(path), os.getpid())
            elif loaded[1] != os.getpid():
                loaded[0].reinitialize()
                _LIBS[path] = (loaded[0], os.getpid())
        except Exception as e:  # a missing file or not a PKCS#11 module: python-pkcs11 raises several kinds
            raise KekUnavailable(f"Cannot load the PKCS#11 module {path} for {label}: {e}.") from None
        return _LIBS[path][0]


class Pkcs11Kek:
    """An AES key on a PKCS#11 token. Each use opens a session and logs in (start-up, readiness,
    rotation: never per request); wrap and unwrap run inside the token."""

    __slots__ = ("_attrs", "fingerprint", "label", "source")

    def __init__(self, uri: str) -> None:
        try:
            self._attrs = parse_pkcs11_uri(uri)
        except ValueError as e:
            raise KekUnavailable(f"The key-encryption key source {redact_source(uri)!r}: {e}.") from None
        self.source = uri
        self.label = f"the key {self._attrs['object']!r} on the PKCS#11 token {self._attrs['token']!r}"
        self.fingerprint = self.current_fingerprint()

    def __repr__(self) -> str:
        return f"Pkcs11Kek({self.label})"

    def _pin(self) -> str:
        where = self._attrs["pin-source"]
        kind, _, name = where.partition(":")
        if kind == "env":
            pin = os.environ.get(name)
            if not pin:
                raise KekUnavailable(f"The PIN of the PKCS#11 token {self._attrs['token']!r}: {name} is not set.")
            return pin
        try:
            return Path(name).read_text().strip()
        except OSError as e:
            raise KekUnavailable(f"Cannot read the PIN file {name}: {e.strerror or e}.") from None

    @contextmanager
    def _session(self, *, rw: bool = False) -> Iterator[Any]:
        import pkcs11
        from pkcs11.exceptions import MultipleTokensReturned, NoSuchToken, PinIncorrect, PinLenRange, PKCS11Error

        lib = _library(self._attrs["module-path"], self.label)
        pin = self._pin()
        serial = self._attrs.get("serial")
        which = f" with serial {serial!r}" if serial else ""
        try:
            if serial:
                token = lib.get_token(token_label=self._attrs["token"], token_serial=serial.encode())
            else:
                token = lib.get_token(token_label=self._attrs["token"])
        except NoSuchToken:
            raise KekUnavailable(
                f"No PKCS#11 token labelled {self._attrs['token']!r}{which} in {self._attrs['module-path']}."
            ) from None
        except MultipleTokensReturned:
            serials = ", ".join(
                sorted(t.serial.decode(errors="replace") for t in lib.get_tokens(token_label=self._attrs["token"]))
            )
            raise KekUnavailable(
                f"Several PKCS#11 tokens are labelled {self._attrs['token']!r} in {self._attrs['module-path']} "
                f"(serials {serials}): add serial=SERIAL to the pkcs11: URI to say which."
            ) from None
        except PKCS11Error as e:
            raise KekUnavailable(f"Cannot reach the PKCS#11 token {self._attrs['token']!r}: {e!r}.") from None
        try:
            session = token.open(user_pin=pin, rw=rw)
        except (PinIncorrect, PinLenRange):
            raise KekUnavailable(f"The PIN for the PKCS#11 token {self._attrs['token']!r} is wrong.") from None
        except PKCS11Error as e:
            raise KekUnavailable(f"Cannot log in to the PKCS#11 token {self._attrs['token']!r}: {e!r}.") from None
        try:
            with session:
                yield session
        except pkcs11.exceptions.PKCS11Error as e:
            raise KekUnavailable(f"{self.label}: the token refused ({type(e).__name__}).") from None

    def _key(self, session: Any) -> Any:
        from pkcs11 import KeyType, ObjectClass
        from pkcs11.exceptions import MultipleObjectsReturned, NoSuchKey

        try:
            return session.get_key(
                object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=self._attrs["object"]
            )
        except NoSuchKey:
            raise KekUnavailable(
                f"The PKCS#11 token {self._attrs['token']!r} has no AES key labelled {self._attrs['object']!r} "
                "(create one with `kluis kek init-pkcs11`)."
            ) from None
        except MultipleObjectsReturned:
            raise KekUnavailable(
                f"The PKCS#11 token {self._attrs['token']!r} has several AES keys labelled {self._attrs['object']!r}."
            ) from None

    @staticmethod
    def _wrap_in(session: Any, kek: Any, dek: bytes) -> bytes:
        from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

        if len(dek) != DEK_SIZE:
            raise ValueError(f"a data key must be {DEK_SIZE} bytes")
        temp = session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: dek,
                Attribute.TOKEN: False,
                Attribute.EXTRACTABLE: True,
                Attribute.SENSITIVE: False,
            }
        )
        try:
            wrapped: bytes = kek.wrap_key(temp, mechanism=Mechanism.AES_KEY_WRAP)
        finally:
            temp.destroy()
        return wrapped

    def wrap(self, deks: Sequence[bytes]) -> list[bytes]:
        with self._session() as session:
            kek = self._key(session)
            return [self._wrap_in(session, kek, dek) for dek in deks]

    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes]:
        from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
        from pkcs11.exceptions import PKCS11Error

        template = {Attribute.TOKEN: False, Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False}
        out: list[bytes] = []
        with self._session() as session:
            kek = self._key(session)
            for w in wrapped:
                try:
                    key = kek.unwrap_key(
                        ObjectClass.SECRET_KEY, KeyType.AES, w, mechanism=Mechanism.AES_KEY_WRAP, template=template
                    )
                except PKCS11Error:
                    raise KekUnavailable(
                        f"{self.label} (fingerprint {self.fingerprint}) cannot unwrap the data keys: "
                        "it is not their KEK."
                    ) from None
                try:
                    out.append(bytes(key[Attribute.VALUE]))
                finally:
                    key.destroy()
        return out

    def current_fingerprint(self) -> str:
        with self._session() as session:
            return _format(
                hashlib.sha256(b"kluis/kek-fingerprint/" + self._wrap_in(session, self._key(session), _PROBE)).digest()
            )

    def raw(self) -> bytes | None:
        return None


def init_pkcs11_kek(uri: str) -> Pkcs11Kek:
    """Generate the AES-256 KEK the ``pkcs11:`` URI names on its token (sensitive, never extractable,
    for wrap/unwrap only, stored on the token) and return it loaded. KekUnavailable when a key with
    that label exists already, or the token/PIN/module is not usable."""
    from pkcs11 import Attribute, KeyType, MechanismFlag

    try:
        attrs = parse_pkcs11_uri(uri)
    except ValueError as e:
        raise KekUnavailable(f"The key-encryption key source {redact_source(uri)!r}: {e}.") from None
    probe = Pkcs11Kek.__new__(Pkcs11Kek)
    probe._attrs = attrs
    probe.source = uri
    probe.label = f"the key {attrs['object']!r} on the PKCS#11 token {attrs['token']!r}"
    with probe._session(rw=True) as session:
        try:
            probe._key(session)
        except KekUnavailable as e:
            if "has no AES key" not in str(e):
                raise
        else:
            raise KekUnavailable(
                f"The PKCS#11 token {attrs['token']!r} already has a key labelled {attrs['object']!r}."
            )
        session.generate_key(
            KeyType.AES,
            256,
            label=attrs["object"],
            store=True,
            capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP,
            template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True},
        )
    return Pkcs11Kek(uri)


def open_kek(source: str, *, default_file: Path) -> KeyEncryptionKey:
    """Load the KEK ``source`` names ("" for ``default_file``; a relative path is taken from the current
    directory, see :func:`canonical_source`). Raises :class:`KekMissing` for a key file that does not
    exist, :class:`KekUnavailable` (one line naming the source) for an unknown ``scheme:`` and anything else."""
    text = canonical_source(source, default_file=default_file)
    if text.startswith("env:"):
        return _env_kek(text[len("env:") :])
    if text.startswith("pkcs11:"):
        return Pkcs11Kek(text)
    return FileKek(Path(text[len("file:") :]) if text else default_file)

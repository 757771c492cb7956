"""Which vault object the addressing flags name: ``--vault-name``/``--name``/``--version`` or ``--id``, for any kind.

An identifier is ``https://VAULT-HOST/{keys|secrets}/NAME[/VERSION]`` (``/deletedkeys/NAME``,
``/deletedsecrets/NAME``, or the vault URL alone). The host decides the vault as the server does
(:func:`kluis.addressing.vault_label`): ``NAME.vault.azure.net``, ``NAME.localhost`` and
``NAME.<configured domain>`` are vault NAME; any other host (localhost, an IP) is the default vault,
reached directly rather than through the proxy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from kluis.addressing import DEFAULT_VAULT, vault_label
from kluis.cli.client import CliError

__all__ = ["KEY", "SECRET", "Kind", "ObjectRef", "parse_object_id", "resolve_ref"]


@dataclass(frozen=True)
class Kind:
    """One object kind as its identifiers and messages spell it: ``key`` -> ``.../keys/KEY``."""

    noun: str  # singular, lower case: "key", "secret"

    @property
    def collection(self) -> str:
        """The identifier's path segment: ``keys``."""
        return f"{self.noun}s"

    @property
    def example(self) -> str:
        """An identifier with placeholders, for messages: ``https://NAME.vault.azure.net/keys/KEY``."""
        return f"https://NAME.vault.azure.net/{self.collection}/{self.noun.upper()}"


KEY = Kind("key")
SECRET = Kind("secret")


@dataclass(frozen=True)
class ObjectRef:
    """A vault, and in it an object's name and version (None: not given)."""

    vault: str
    name: str | None = None
    version: str | None = None
    direct: bool = False  # the --id named localhost/an IP: talk to https://localhost:PORT

    @property
    def named(self) -> str:
        """The name, for verbs whose addressing required one (:func:`resolve_ref` with ``need_name``)."""
        assert self.name is not None, "resolve_ref(need_name=True) guarantees a name"
        return self.name


def parse_object_id(object_id: str, kind: Kind, domains: Sequence[str] = ()) -> ObjectRef:
    """``https://NAME.vault.azure.net/{collection}/N[/V]``, ``/deleted{collection}/N`` or the vault URL alone.

    Raises CliError for anything else (another scheme, another kind's path, too many segments).
    """
    parts = urlsplit(object_id.strip())
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme != "https" or not host:
        raise CliError(f"--id must be a {kind.noun} identifier like {kind.example}, not {object_id!r}.")
    label = vault_label(host, domains)
    vault, direct = (label[0], False) if label else (DEFAULT_VAULT, True)
    segs = [s for s in parts.path.split("/") if s]
    if not segs:
        return ObjectRef(vault, direct=direct)
    head = segs[0].lower()
    if head in (kind.collection, f"deleted{kind.collection}") and 2 <= len(segs) <= (
        3 if head == kind.collection else 2
    ):
        return ObjectRef(vault, segs[1], segs[2] if len(segs) == 3 else None, direct)
    raise CliError(
        f"--id is not a {kind.noun} identifier (expected .../{kind.collection}/NAME[/VERSION]): {object_id!r}."
    )


def resolve_ref(
    kind: Kind,
    vault_name: str | None,
    name: str | None,
    object_id: str | None,
    version: str | None = None,
    *,
    need_name: bool = True,
    domains: Sequence[str] = (),
) -> ObjectRef:
    """What the addressing flags point at (``--version`` wins over the one in ``--id``).

    Raises CliError saying which flags to give when they are missing or clash.
    """
    if object_id:
        if vault_name or name:
            raise CliError("--id cannot be combined with --vault-name or --name.")
        ref = parse_object_id(object_id, kind, domains)
        if need_name and ref.name is None:
            raise CliError(f"--id must name a {kind.noun}: {kind.example}[/VERSION].")
        return ObjectRef(ref.vault, ref.name, version or ref.version, ref.direct)
    if not vault_name:
        raise CliError("Give --vault-name" + (" and --name" if need_name else "") + ", or --id.")
    if need_name and not name:
        raise CliError("Give --name (-n) with --vault-name, or --id.")
    return ObjectRef(vault_name, name, version)

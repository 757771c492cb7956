"""az-style argument parsing for ``kluis keyvault key``: lists, three-state flags, dates, tags, policies, PEM."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kluis.cli.client import CliError
from kluis.cli.common import KluisCommand
from kluis.crypto import CryptoError
from kluis.crypto.pem import private_jwk_from_pem

__all__ = [
    "GREEDY_OPTIONS",
    "TRISTATE_OPTIONS",
    "AzCommand",
    "RotationAction",
    "expand_args",
    "parse_bool",
    "parse_datetime",
    "parse_ops",
    "parse_rotation_policy",
    "parse_tags",
    "pem_to_jwk",
]

# -- argument parsing like az (space-separated lists, three-state flags) ----------------------------
GREEDY_OPTIONS = frozenset(
    {"--ops", "--tags", "--key-permissions", "--secret-permissions", "--certificate-permissions"}
)
TRISTATE_OPTIONS = frozenset({"--disabled", "--enabled", "--exportable", "--immutable", "--include-managed"})
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def expand_args(args: Sequence[str]) -> list[str]:
    """Rewrite az-style arguments into what click parses.

    ``--ops a b c`` (one flag, several values) becomes ``--ops a --ops b --ops c``; a bare
    three-state flag such as ``--disabled`` becomes ``--disabled true`` (az accepts both
    ``--disabled`` and ``--disabled false``).
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        if arg in GREEDY_OPTIONS:
            j = i + 1
            while j < len(args) and not args[j].startswith("-"):
                out += [arg, args[j]]
                j += 1
            if j == i + 1:
                out.append(arg)  # no value: let click report it
            i = j
            continue
        if arg in TRISTATE_OPTIONS:
            nxt = args[i + 1] if i + 1 < len(args) else None
            if nxt is not None and nxt.lower() in _TRUE | _FALSE:
                out += [arg, nxt]
                i += 2
            else:
                out += [arg, "true"]
                i += 1
            continue
        out.append(arg)
        i += 1
    return out


class AzCommand(KluisCommand):
    """A command that accepts az's argument conventions (see :func:`expand_args`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_args(args))


def parse_bool(value: str | None, flag: str) -> bool | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise CliError(f"{flag} must be true or false, not {value!r}.")


def parse_tags(values: Sequence[str] | None) -> dict[str, str] | None:
    """az's ``--tags a=1 b`` (``b`` gets an empty value); ``--tags ""`` clears all tags."""
    if values is None:
        return None
    tags: dict[str, str] = {}
    for item in values:
        for token in item.split():
            key, _, value = token.partition("=")
            if key:
                tags[key] = value
    return tags


def parse_ops(values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [op for v in values for op in v.replace(",", " ").split()]


def parse_datetime(value: str | None) -> datetime | None:
    """A UTC date/time like az's ``2030-01-31T12:00:00Z``; naive values are taken as UTC."""
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CliError(f"Invalid date/time {value!r}: use UTC, e.g. 2030-01-31T12:00:00Z.") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _read_value(value: str) -> str:
    """az's ``@file``-less convention: a path to an existing file, or the text itself."""
    path = Path(value[1:] if value.startswith("@") else value).expanduser()
    try:
        if path.is_file():
            return path.read_text()
    except OSError:
        pass
    return value


def _load_json(value: str, what: str) -> Any:
    try:
        return json.loads(_read_value(value))
    except ValueError as e:
        raise CliError(f"{what} is neither a JSON file nor valid JSON: {e}") from None


def _b64decode(value: str, what: str) -> bytes:
    """Standard or URL-safe base64, padding optional."""
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise CliError(f"{what} is not valid base64.") from None


def _unhex(value: str | None, what: str) -> bytes | None:
    if value is None:
        return None
    try:
        return binascii.unhexlify(value.strip())
    except (binascii.Error, ValueError):
        raise CliError(f"{what} must be hexadecimal (as in az), e.g. 000102030405060708090a0b.") from None


_CAMEL = re.compile(r"((?<=[a-z0-9])[A-Z]|(?!^)[A-Z](?=[a-z]))")


def _snake(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {_CAMEL.sub(r"_\1", str(k)).lower(): _snake(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_snake(v) for v in obj]
    return obj


@dataclass(frozen=True)
class RotationAction:
    action: str
    time_after_create: str | None = None
    time_before_expiry: str | None = None


def parse_rotation_policy(value: str) -> tuple[list[RotationAction], str | None]:
    """``rotation-policy update --value``: a JSON file or string, camelCase (REST) or snake_case.

    Accepts az's shapes: ``{"lifetimeActions": [{"trigger": {"timeAfterCreate": "P30D"},
    "action": {"type": "Rotate"}}], "attributes": {"expiryTime": "P90D"}}`` as well as the flat SDK
    shape (``{"action": "Rotate", "timeAfterCreate": ...}``, ``expiresIn``).
    """
    policy = _snake(_load_json(value, "--value"))
    if not isinstance(policy, dict) or not policy:
        raise CliError("Please specify a valid policy (a non-empty JSON object).")
    actions: list[RotationAction] = []
    raw_actions = policy.get("lifetime_actions") or []
    if not isinstance(raw_actions, list):
        raise CliError("lifetimeActions must be a list.")
    for raw in raw_actions:
        if not isinstance(raw, dict):
            raise CliError("Each lifetime action must be an object.")
        kind = raw.get("action")
        if isinstance(kind, dict):
            kind = kind.get("type")
        if not isinstance(kind, str) or kind.lower() not in ("rotate", "notify"):
            raise CliError(f"Lifetime action must be Rotate or Notify, not {kind!r}.")
        trig = raw.get("trigger")
        trigger: dict[str, Any] = trig if isinstance(trig, dict) else raw
        actions.append(
            RotationAction(
                "Rotate" if kind.lower() == "rotate" else "Notify",
                trigger.get("time_after_create"),
                trigger.get("time_before_expiry"),
            )
        )
    expires_in = policy.get("expires_in") or policy.get("expiry_time")
    attributes = policy.get("attributes")
    if isinstance(attributes, dict):
        expires_in = attributes.get("expires_in") or attributes.get("expiry_time") or expires_in
    return actions, expires_in


# -- PEM private keys -> JWK ------------------------------------------------------------------------
def pem_to_jwk(pem: str, password: str | None = None) -> dict[str, Any]:
    """A PKCS#1, SEC1 or PKCS#8 private key (encrypted with ``password`` or not) as JsonWebKey fields."""
    try:
        return private_jwk_from_pem(pem.encode(), password.encode() if password else None)
    except CryptoError as e:
        raise CliError(f"Import failed: {e.message}") from None

"""A data-plane verb written once for any object kind: :class:`Verbs` adds the flags every verb shares.

A verb is a function ``fn(target, ...own flags) -> result``. :meth:`Verbs.command` registers it with
the flags laid out as az orders them: the verb's required flags, then the addressing flags
(``--vault-name``, ``--name``/``-n``, ``--id``, ``--version``/``-v`` as its :class:`Address` says), then
its optional flags, then ``--data-dir`` and ``--output``/``-o``. A parameter typed with a flag group
(a dataclass such as :class:`NewAttributes`) stands for the group's flags, in its place. The verb
runs inside :func:`~kluis.cli.common.run` (errors become one ``ERROR:`` line) and its result is printed
the kind's way. Help texts that name the kind (``Name of the key.``) come from the kind's table.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import typer

from kluis.cli.client import load_settings
from kluis.cli.common import DataDirOpt, KluisCommand, data_dir_of, run
from kluis.cli.key_args import AzCommand, parse_bool, parse_datetime, parse_tags
from kluis.cli.object_ref import Kind, ObjectRef, resolve_ref
from kluis.cli.output import Output
from kluis.cli.sdk_client import connect
from kluis.cli.sdk_output import Printer

__all__ = ["Address", "ChangedAttributes", "EnabledOpt", "NewAttributes", "Target", "Verbs"]

C = TypeVar("C")

VaultOpt = Annotated[str | None, typer.Option("--vault-name", help="Name of the vault.", show_default=False)]
NameOpt = Annotated[str | None, typer.Option("--name", "-n", help="Its name.", show_default=False)]
IdOpt = Annotated[str | None, typer.Option("--id", help="Its identifier.", show_default=False)]
VaultIdOpt = Annotated[
    str | None, typer.Option("--id", help="Vault URL, e.g. https://NAME.vault.azure.net.", show_default=False)
]
VersionOpt = Annotated[str | None, typer.Option("--version", "-v", help="Its version (default: latest).")]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="json, table, tsv or none.")]
EnabledOpt = Annotated[str | None, typer.Option("--enabled", help="true or false.")]
TagsOpt = Annotated[list[str] | None, typer.Option("--tags", help='Space-separated tags: key[=value]; "" clears.')]
NotBeforeOpt = Annotated[str | None, typer.Option("--not-before", help="Not usable before (UTC: Y-m-dTH:M:SZ).")]
ExpiresOpt = Annotated[str | None, typer.Option("--expires", help="Expiry (UTC: Y-m-dTH:M:SZ).")]
DisabledOpt = Annotated[str | None, typer.Option("--disabled", help="Create it disabled.")]


@dataclass(frozen=True)
class NewAttributes:
    """``--tags``, ``--disabled``, ``--not-before``, ``--expires``: a new object's (or version's) attributes."""

    tags: TagsOpt = None
    disabled: DisabledOpt = None
    not_before: NotBeforeOpt = None
    expires: ExpiresOpt = None

    def is_disabled(self) -> bool:
        """Whether ``--disabled`` was given (bare, or true); CliError for a value that is not a boolean."""
        return bool(parse_bool(self.disabled, "--disabled"))

    def dated(self) -> dict[str, Any]:
        """The SDK keywords ``tags``, ``not_before`` and ``expires_on``; CliError for a malformed tag/date."""
        return _dated(self.tags, self.not_before, self.expires)


@dataclass(frozen=True)
class ChangedAttributes:
    """``--tags``, ``--not-before``, ``--expires`` of ``set-attributes``: what is not given stays as it is."""

    tags: TagsOpt = None
    not_before: NotBeforeOpt = None
    expires: ExpiresOpt = None

    def dated(self) -> dict[str, Any]:
        """The SDK keywords ``tags``, ``not_before`` and ``expires_on`` (None: unchanged)."""
        return _dated(self.tags, self.not_before, self.expires)


def _dated(tags: list[str] | None, not_before: str | None, expires: str | None) -> dict[str, Any]:
    dates: dict[str, datetime | None] = {
        "not_before": parse_datetime(not_before),
        "expires_on": parse_datetime(expires),
    }
    return {"tags": parse_tags(tags), **dates}


def _is_group(annotation: Any) -> bool:
    """A flag group: a dataclass whose fields are the flags (see :class:`NewAttributes`)."""
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


class Address(Enum):
    """Which addressing flags a verb takes (their parameter names in the verb's command)."""

    VAULT = ("vault_name", "vault_id")  # --vault-name, or --id with the vault URL
    OBJECT = ("vault_name", "name", "object_id")  # --vault-name/--name, or --id naming the object
    VERSION = ("vault_name", "name", "object_id", "version")  # ... and --version


@dataclass(frozen=True)
class Target(Generic[C]):
    """What a verb's addressing flags name; :meth:`connect` resolves them and signs in (CliError if it cannot)."""

    kind: Kind
    sdk_client: Callable[[], Callable[..., C]]
    data_dir: Path | None
    vault_name: str | None
    name: str | None
    object_id: str | None
    version: str | None
    need_name: bool

    def connect(self) -> tuple[C, ObjectRef]:
        """The SDK client for the named vault, and the object's reference (name guaranteed if ``need_name``)."""
        d = data_dir_of(self.data_dir)
        domains = load_settings(d).domains
        ref = resolve_ref(
            self.kind,
            self.vault_name,
            self.name,
            self.object_id,
            self.version,
            need_name=self.need_name,
            domains=domains,
        )
        return connect(d, ref, self.sdk_client()), ref


def _param(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _flags(group: type) -> list[inspect.Parameter]:
    """A flag group's flags in field order, nested groups expanded in place; a required flag has no default."""
    hints = typing.get_type_hints(group, include_extras=True)
    flags: list[inspect.Parameter] = []
    for f in dataclasses.fields(group):
        if _is_group(hints[f.name]):
            flags += _flags(hints[f.name])
        else:
            default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
            flags.append(_param(f.name, hints[f.name], default))
    return flags


def _gather(group: type, values: dict[str, Any]) -> Any:
    """The ``group`` instance made of the command's ``values`` (its flags are taken out of ``values``)."""
    hints = typing.get_type_hints(group, include_extras=True)
    fields = dataclasses.fields(group)
    return group(
        **{f.name: _gather(hints[f.name], values) if _is_group(hints[f.name]) else values.pop(f.name) for f in fields}
    )


def _own_parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    """``fn``'s parameters after the Target, their annotations evaluated in ``fn``'s module.

    One by one, not ``typing.get_type_hints``: the Target's client type is often imported for type
    checking only.
    """
    params = list(inspect.signature(fn).parameters.values())[1:]
    return [
        p.replace(annotation=eval(p.annotation, fn.__globals__) if isinstance(p.annotation, str) else p.annotation)
        for p in params
    ]


class Verbs(Generic[C]):
    """The verbs of one object kind, registered on ``app``.

    ``sdk_client`` returns the SDK client class (imported only when a verb runs); ``show`` prints a
    verb's result. Help texts naming the kind (``Name of the key.``) are made from its noun; ``help`` gives
    the kind's own text for a parameter (``{"object_id": "Key identifier: ..."}``).
    """

    def __init__(
        self, app: typer.Typer, kind: Kind, sdk_client: Callable[[], Callable[..., C]], show: Printer,
        help: Mapping[str, str],
    ) -> None:  # fmt: skip
        self.app, self.kind, self.sdk_client, self.show = app, kind, sdk_client, show
        noun = kind.noun
        self._help = {
            "name": f"Name of the {noun}.", "version": f"{noun.capitalize()} version (default: latest).",
            "disabled": f"Create the {noun} disabled.", "include_managed": f"Include {noun}s managed by certificates.",
            **help,
        }  # fmt: skip
        shared = {"vault_name": VaultOpt, "name": NameOpt, "object_id": IdOpt, "vault_id": VaultIdOpt}
        shared |= {"version": VersionOpt, "data_dir": DataDirOpt}
        self._shared = {name: _param(name, self._own_help(name, a)) for name, a in shared.items()}
        self._shared["output"] = _param("output", self._own_help("output", OutputOpt), Output.json)

    def _own_help(self, name: str, annotation: Any) -> Any:
        """``annotation`` with the kind's help text for parameter ``name``, if the kind has one."""
        text = self._help.get(name)
        if text is None or typing.get_origin(annotation) is not Annotated:
            return annotation
        base, info = typing.get_args(annotation)
        info = copy.copy(info)
        info.help = text
        return Annotated[base, info]

    def _layout(self, own: list[inspect.Parameter], address: Address, prints: bool) -> list[inspect.Parameter]:
        """The command's parameters in az's order (see the module doc), flag groups expanded."""
        flags = [q for p in own for q in (_flags(p.annotation) if _is_group(p.annotation) else [p])]
        required = [_param(p.name, p.annotation, p.empty) for p in flags if p.default is p.empty]
        optional = [
            _param(p.name, self._own_help(p.name, p.annotation), p.default) for p in flags if p.default is not p.empty
        ]
        shared = [self._shared[n] for n in address.value]
        tail = [self._shared[n] for n in (("data_dir", "output") if prints else ("data_dir",))]
        return [*required, *shared, *optional, *tail]

    def command(
        self, verb: str, address: Address = Address.OBJECT, *, prints: bool = True, az_args: bool = False
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``fn(target, ...)`` as ``verb`` (``az_args``: parse az's lists and bare three-state flags)."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            own = _own_parameters(fn)
            groups = {p.name: p.annotation for p in own if _is_group(p.annotation)}

            def command(**values: Any) -> None:
                output = values.pop("output", Output.json)
                data_dir, vault_name, name = values.pop("data_dir"), values.pop("vault_name"), values.pop("name", None)
                object_id = values.pop("object_id", None) or values.pop("vault_id", None)  # a verb has one of them
                target = Target(self.kind, self.sdk_client, data_dir, vault_name, name, object_id,
                                values.pop("version", None), need_name=address is not Address.VAULT)  # fmt: skip
                for pname, group in groups.items():
                    values[pname] = _gather(group, values)
                result = run(fn, target, **values)
                if prints:
                    self.show(result, output)

            command.__signature__ = inspect.Signature(self._layout(own, address, prints))  # type: ignore[attr-defined]
            command.__doc__ = fn.__doc__
            self.app.command(verb, cls=AzCommand if az_args else KluisCommand)(command)
            return fn

        return register

"""The verbs every object kind has, each registered from the kind's SDK call and output shape.

``show``, ``show-deleted``, ``delete``, ``recover``, ``purge`` (:func:`by_name`), ``backup``,
``restore``, ``list``, ``list-versions`` and ``list-deleted`` (:func:`listings`) follow one pattern
for keys and secrets: address the object (or the vault), make one SDK call, shape the result as az
prints it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from kluis.cli.key_args import parse_bool
from kluis.cli.object_ref import ObjectRef
from kluis.cli.verbs import Address, Target, Verbs

__all__ = ["backup", "by_name", "limited", "listings", "restore"]

C = TypeVar("C")
R = TypeVar("R")
Shape = Callable[[Any], dict[str, Any]]  # an SDK object as az's JSON

BackupFileOpt = Annotated[Path, typer.Option("--file", "-f", help="Where to write the backup blob.")]
RestoreFileOpt = Annotated[Path, typer.Option("--file", "-f", help="A blob written by `backup`.")]
MaxResultsOpt = Annotated[int | None, typer.Option("--maxresults", help="Maximum number of results.")]
IncludeManagedOpt = Annotated[str | None, typer.Option("--include-managed", help="Include managed objects.")]


def limited(items: Iterable[R], maxresults: int | None) -> list[R]:
    """The first ``maxresults`` items (all of them when None or 0)."""
    return list(islice(items, maxresults) if maxresults else items)


def by_name(
    verbs: Verbs[C], verb: str, doc: str, call: Callable[[C, ObjectRef], Any], *,
    address: Address = Address.OBJECT, prints: bool = True,
) -> None:  # fmt: skip
    """Register ``verb``: address one object, print ``call(client, ref)`` (nothing when not ``prints``)."""

    def fn(target: Target[C]) -> Any:
        client, ref = target.connect()
        return call(client, ref)

    fn.__doc__ = doc
    verbs.command(verb, address, prints=prints)(fn)


def backup(verbs: Verbs[C], doc: str, call: Callable[[C, str], bytes]) -> None:
    """Register ``backup``: write ``call(client, name)`` (the backup blob) to ``--file``."""

    def fn(target: Target[C], file: BackupFileOpt) -> None:
        client, ref = target.connect()
        file.expanduser().write_bytes(call(client, ref.named))

    fn.__doc__ = doc
    verbs.command("backup", prints=False)(fn)


def restore(verbs: Verbs[C], doc: str, call: Callable[[C, bytes], Any], shape: Shape) -> None:
    """Register ``restore``: read ``--file`` (before connecting), print ``shape(call(client, blob))``."""

    def fn(target: Target[C], file: RestoreFileOpt) -> dict[str, Any]:
        blob = file.expanduser().read_bytes()
        client, _ = target.connect()
        return shape(call(client, blob))

    fn.__doc__ = doc
    verbs.command("restore", Address.VAULT)(fn)


def listings(verbs: Verbs[C], item: Shape, *, list_doc: str, versions_doc: str, deleted_doc: str) -> None:
    """Register ``list``, ``list-versions`` and ``list-deleted``, each SDK item printed as ``item`` shapes it.

    The SDK calls are found by the Azure SDK's naming, the same for every kind (for keys:
    ``list_properties_of_keys``, ``list_properties_of_key_versions``, ``list_deleted_keys``), each
    called with ``max_page_size=--maxresults``. ``list`` leaves out certificate-managed objects unless
    ``--include-managed``.
    """
    noun = verbs.kind.noun

    def list_all(target: Target[C], maxresults: MaxResultsOpt = None, include_managed: IncludeManagedOpt = None) -> Any:
        client, _ = target.connect()
        managed = bool(parse_bool(include_managed, "--include-managed"))
        found = getattr(client, f"list_properties_of_{noun}s")(max_page_size=maxresults)
        return [item(p) for p in limited((p for p in found if managed or not p.managed), maxresults)]

    def list_versions(target: Target[C], maxresults: MaxResultsOpt = None) -> Any:
        client, ref = target.connect()
        found = getattr(client, f"list_properties_of_{noun}_versions")(ref.named, max_page_size=maxresults)
        return [item(p) for p in limited(found, maxresults)]

    def list_deleted(target: Target[C], maxresults: MaxResultsOpt = None) -> Any:
        client, _ = target.connect()
        return [
            item(p) for p in limited(getattr(client, f"list_deleted_{noun}s")(max_page_size=maxresults), maxresults)
        ]

    list_all.__doc__, list_versions.__doc__, list_deleted.__doc__ = list_doc, versions_doc, deleted_doc
    verbs.command("list", Address.VAULT, az_args=True)(list_all)
    verbs.command("list-versions")(list_versions)
    verbs.command("list-deleted", Address.VAULT)(list_deleted)

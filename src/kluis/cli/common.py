"""What every ``kluis`` command shares: the one way to report an error, the shared options, the command classes.

Errors: a command's work runs inside :func:`run`; :class:`CliError`, Azure SDK errors and OS errors become
one ``ERROR: ...`` line on stderr (never wrapped, whatever the terminal width) and exit code 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from kluis.cli.client import AdminClient, CliError
from kluis.cli.output import Output
from kluis.config import DataDir, default_data_dir

__all__ = [
    "DataDirOpt",
    "KluisCommand",
    "KluisTyper",
    "NameOpt",
    "OutputOpt",
    "admin_call",
    "data_dir_of",
    "describe_error",
    "fail",
    "run",
]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="KLUIS_DATA_DIR", help="Where kluis keeps its state.", show_default=False),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="json, table, tsv or none.")]
NameOpt = Annotated[str, typer.Option("--name", "-n", help="Its name.")]


def data_dir_of(path: Path | None) -> DataDir:
    """``--data-dir`` (or ``KLUIS_DATA_DIR``), else the platform's default data directory."""
    return DataDir(path.expanduser() if path else default_data_dir())


def fail(message: str, code: int = 1) -> typer.Exit:
    """Write ``ERROR: message`` as exactly one line on stderr; return the Exit for the caller to raise."""
    sys.stderr.write(f"ERROR: {' '.join(message.split())}\n")
    sys.stderr.flush()
    return typer.Exit(code)


def describe_error(exc: BaseException) -> str:
    """One readable line for an SDK error: ``(Code) message`` like az."""
    error = getattr(exc, "error", None)
    code, message = getattr(error, "code", None), getattr(error, "message", None)
    if code and message:
        return f"({code}) {message}"
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _azure_message(exc: Exception) -> str | None:
    """The line to print for an Azure SDK error, or None if ``exc`` is not one."""
    if "azure.core.exceptions" not in sys.modules:  # never imported: cannot be one of its errors
        return None
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

    if isinstance(exc, ClientAuthenticationError):
        return f"Sign-in to kluis failed: {describe_error(exc)}"
    if isinstance(exc, HttpResponseError):
        return describe_error(exc)
    if isinstance(exc, ServiceRequestError):
        return f"Cannot reach kluis: {describe_error(exc)}. Is `kluis serve` running?"
    return None


def run(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)``; CliError, Azure SDK errors, ValueError and OSError become ``ERROR: ...``, exit 1."""
    try:
        return fn(*args, **kwargs)
    except CliError as e:
        raise fail(str(e)) from None
    except Exception as e:
        message = _azure_message(e)
        if message is None and isinstance(e, ValueError | OSError):
            message = str(e)
        if message is None:
            raise
        raise fail(message) from None


def admin_call(data_dir: Path | None, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
    """One management-API call as the administrator (see :class:`AdminClient`), errors as :func:`run` reports them."""
    return run(lambda: AdminClient(data_dir_of(data_dir)).call(method, path, body, **params))


def _no_flag_placeholder(params: list[Any]) -> list[Any]:
    """Flags take no value, so their help shows no ``<bool>`` placeholder."""
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    return params


class KluisCommand(TyperCommand):
    """A command whose help shows flags without a value placeholder."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _no_flag_placeholder(super().get_params(ctx))


class KluisGroup(TyperGroup):
    """A command group whose help shows flags without a value placeholder."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _no_flag_placeholder(super().get_params(ctx))


class KluisTyper(typer.Typer):
    """typer.Typer with kluis's defaults: help when called bare, no completion options, KluisCommand/KluisGroup."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("no_args_is_help", True)
        kwargs.setdefault("add_completion", False)
        kwargs.setdefault("cls", KluisGroup)
        super().__init__(**kwargs)

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
        kwargs.setdefault("cls", KluisCommand)
        decorator: Callable[[F], F] = super().command(name, **kwargs)
        return decorator

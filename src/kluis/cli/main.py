"""The ``kluis`` command: ``serve``, ``env``/``exec``, and az-shaped management verbs."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from kluis.cli.attestation import attestation_app
from kluis.cli.client import AdminClient, CliError
from kluis.cli.environment import build_env
from kluis.cli.key_args import AzCommand
from kluis.cli.keys import key_app
from kluis.cli.output import Output, emit
from kluis.config import DataDir, ServerSettings, StartupError, default_data_dir

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help="kluis: a self-hosted Azure Key Vault.")
group_app = typer.Typer(no_args_is_help=True, help="Resource groups (like `az group`).")
keyvault_app = typer.Typer(no_args_is_help=True, help="Vaults and access policies (like `az keyvault`).")
ad_app = typer.Typer(no_args_is_help=True, help="Identities (like `az ad`).")
sp_app = typer.Typer(no_args_is_help=True, help="Service principals (like `az ad sp`).")
app.add_typer(group_app, name="group")
app.add_typer(keyvault_app, name="keyvault")
keyvault_app.add_typer(key_app, name="key")
app.add_typer(ad_app, name="ad")
ad_app.add_typer(sp_app, name="sp")

console = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="KLUIS_DATA_DIR", help="Where kluis keeps its state.", show_default=False),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="json, table or tsv.")]


def _dir(path: Path | None) -> DataDir:
    return DataDir(path.expanduser() if path else default_data_dir())


def _run(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    try:
        return fn(*args, **kwargs)
    except CliError as e:
        console.print(f"[red]ERROR:[/] {e}")
        raise typer.Exit(1) from None


@app.command()
def serve(
    data_dir: DataDirOpt = None,
    host: Annotated[str, typer.Option(envvar="KLUIS_HOST", help="Address of the HTTPS listener.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="KLUIS_PORT", help="Port of the HTTPS listener.")] = 8443,
    proxy_port: Annotated[
        int,
        typer.Option("--proxy-port", envvar="KLUIS_PROXY_PORT", help="CONNECT proxy port; 0 turns it off."),
    ] = 8080,
    hostname: Annotated[
        list[str] | None, typer.Option("--hostname", help="Extra host name for the certificate (repeatable).")
    ] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option("--domain", help="Vault domain: NAME.DOMAIN addresses vault NAME (repeatable)."),
    ] = None,
    workers: Annotated[
        int, typer.Option(envvar="KLUIS_WORKERS", help="Worker processes (0: one per CPU core, at most 8).")
    ] = 0,
    proxy_passthrough: Annotated[
        bool, typer.Option("--proxy-passthrough", help="Tunnel other hosts instead of refusing them.")
    ] = False,
    scheduler_interval: Annotated[
        float, typer.Option(help="Seconds between rotation/purge checks.", envvar="KLUIS_SCHEDULER_INTERVAL")
    ] = 30.0,
    key_pool: Annotated[int, typer.Option(help="Pre-generated RSA-2048 keys per worker (0: off).")] = 16,
    throttle_limit: Annotated[
        int, typer.Option(envvar="KLUIS_THROTTLE_LIMIT", help="Requests per 10 s per vault before 429 (0: off).")
    ] = 100_000,
) -> None:
    """Start kluis: HTTPS on 127.0.0.1:8443, a CONNECT proxy on :8080, SQLite in the data dir."""
    from kluis.cli.serve import serve as run

    if workers <= 0:
        workers = min(os.cpu_count() or 1, 8)
    settings = ServerSettings(
        host=host,
        port=port,
        proxy_port=proxy_port,
        hostnames=list(hostname or []),
        domains=list(domain or []),
        workers=workers,
        proxy_passthrough=proxy_passthrough,
        scheduler_interval=scheduler_interval,
        key_pool=key_pool,
        throttle_limit=throttle_limit,
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run(_dir(data_dir), settings, console)
    except StartupError as e:
        console.print(f"[red]ERROR:[/] {e}")
        raise typer.Exit(1) from None


@app.command()
def env(
    data_dir: DataDirOpt = None,
    vault_name: Annotated[str, typer.Option("--vault-name", "-n", help="The vault programs should use.")] = "default",
    direct: Annotated[bool, typer.Option(help="https://localhost:PORT instead of the proxy.")] = False,
    managed_identity: Annotated[bool, typer.Option(help="Managed-identity variables instead of a secret.")] = False,
    client_id: Annotated[str | None, typer.Option(help="Service principal appId (default: administrator).")] = None,
    client_secret: Annotated[str | None, typer.Option(help="Its password.")] = None,
) -> None:
    """Print `export` lines that point Azure SDK programs at this kluis."""
    values = _run(
        build_env, _dir(data_dir), vault_name=vault_name, direct=direct, managed_identity=managed_identity,
        client_id=client_id, client_secret=client_secret,
    )  # fmt: skip
    for k, v in values.items():
        print(f"export {k}={shlex.quote(v)}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    vault_name: Annotated[str, typer.Option("--vault-name", "-n")] = "default",
    direct: Annotated[bool, typer.Option()] = False,
    managed_identity: Annotated[bool, typer.Option()] = False,
) -> None:
    """Run one command with the environment `kluis env` prints: kluis exec -- python app.py"""
    if not ctx.args:
        console.print("[red]ERROR:[/] give a command after --, e.g. kluis exec -- python app.py")
        raise typer.Exit(2)
    values = _run(build_env, _dir(data_dir), vault_name=vault_name, direct=direct, managed_identity=managed_identity)
    child = {**os.environ, **values}
    try:
        os.execvpe(ctx.args[0], ctx.args, child)
    except FileNotFoundError:
        console.print(f"[red]ERROR:[/] command not found: {ctx.args[0]}")
        raise typer.Exit(127) from None


# -- az group --------------------------------------------------------------------------------------
@group_app.command("create")
def group_create(
    name: Annotated[str, typer.Option("--name", "-n")],
    location: Annotated[str, typer.Option("--location", "-l")] = "local",
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Create a resource group."""
    emit(
        _run(lambda: AdminClient(_dir(data_dir)).call("PUT", f"/groups/{name}", {"location": location})),
        output,
    )


@group_app.command("list")
def group_list(data_dir: DataDirOpt = None, output: OutputOpt = Output.json) -> None:
    """List resource groups."""
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("GET", "/groups")["value"]), output)


@group_app.command("show")
def group_show(
    name: Annotated[str, typer.Option("--name", "-n")],
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Show a resource group."""
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("GET", f"/groups/{name}")), output)


@group_app.command("delete")
def group_delete(
    name: Annotated[str, typer.Option("--name", "-n")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt (accepted for az compatibility).")] = False,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Delete a resource group and every vault in it."""
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("DELETE", f"/groups/{name}")), output)


# -- az keyvault -----------------------------------------------------------------------------------
@keyvault_app.command("create")
def keyvault_create(
    name: Annotated[str, typer.Option("--name", "-n")],
    resource_group: Annotated[str, typer.Option("--resource-group", "-g")],
    location: Annotated[str | None, typer.Option("--location", "-l")] = None,
    retention_days: Annotated[int, typer.Option("--retention-days")] = 90,
    enable_purge_protection: Annotated[bool, typer.Option("--enable-purge-protection")] = False,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Create a vault; you (the administrator) get an access policy with every permission."""
    body = {
        "group": resource_group, "location": location, "retentionDays": retention_days,
        "purgeProtection": enable_purge_protection,
    }  # fmt: skip
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("PUT", f"/vaults/{name}", body)), output)


@keyvault_app.command("show")
def keyvault_show(
    name: Annotated[str, typer.Option("--name", "-n")],
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Show a vault and its access policies."""
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("GET", f"/vaults/{name}")), output)


@keyvault_app.command("list")
def keyvault_list(
    resource_group: Annotated[str | None, typer.Option("--resource-group", "-g")] = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """List vaults."""
    params: dict[str, Any] = {"group": resource_group} if resource_group else {}
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("GET", "/vaults", **params)["value"]), output)


@keyvault_app.command("delete")
def keyvault_delete(
    name: Annotated[str, typer.Option("--name", "-n")],
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Delete a vault and all its keys."""
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("DELETE", f"/vaults/{name}")), output)


def _perms(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [p for v in values for p in v.replace(",", " ").split()]


@keyvault_app.command("set-policy", cls=AzCommand)
def keyvault_set_policy(
    name: Annotated[str, typer.Option("--name", "-n")],
    spn: Annotated[str | None, typer.Option("--spn", help="Service principal appId or name.")] = None,
    object_id: Annotated[str | None, typer.Option("--object-id")] = None,
    key_permissions: Annotated[list[str] | None, typer.Option("--key-permissions")] = None,
    secret_permissions: Annotated[list[str] | None, typer.Option("--secret-permissions")] = None,
    certificate_permissions: Annotated[list[str] | None, typer.Option("--certificate-permissions")] = None,
    resource_group: Annotated[str | None, typer.Option("--resource-group", "-g")] = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Grant permissions, e.g. --key-permissions delete get list create (or all)."""
    who = spn or object_id
    if not who:
        console.print("[red]ERROR:[/] give --spn or --object-id")
        raise typer.Exit(2)
    # az takes space-separated values after one flag (`--key-permissions delete get list create`);
    # AzCommand turns them into repeated options before click parses them.
    body = {
        "keys": _perms(key_permissions),
        "secrets": _perms(secret_permissions),
        "certificates": _perms(certificate_permissions),
    }
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("PUT", f"/vaults/{name}/policies/{who}", body)), output)


@keyvault_app.command("delete-policy")
def keyvault_delete_policy(
    name: Annotated[str, typer.Option("--name", "-n")],
    spn: Annotated[str | None, typer.Option("--spn")] = None,
    object_id: Annotated[str | None, typer.Option("--object-id")] = None,
    resource_group: Annotated[str | None, typer.Option("--resource-group", "-g")] = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Remove a principal's access policy."""
    who = spn or object_id
    if not who:
        console.print("[red]ERROR:[/] give --spn or --object-id")
        raise typer.Exit(2)
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("DELETE", f"/vaults/{name}/policies/{who}")), output)


# -- az ad sp --------------------------------------------------------------------------------------
@sp_app.command("create-for-rbac")
def sp_create(
    name: Annotated[str, typer.Option("--name", "-n")],
    skip_assignment: Annotated[bool, typer.Option("--skip-assignment")] = False,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Create a service principal; prints appId, password and tenant once (only a hash is kept)."""
    res = _run(lambda: AdminClient(_dir(data_dir)).call("POST", "/principals", {"displayName": name}))
    emit({k: res[k] for k in ("appId", "displayName", "password", "tenant")}, output)


@sp_app.command("list")
def sp_list(data_dir: DataDirOpt = None, output: OutputOpt = Output.json) -> None:
    """List service principals."""
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("GET", "/principals")["value"]), output)


@sp_app.command("show")
def sp_show(
    sp_id: Annotated[str, typer.Option("--id")], data_dir: DataDirOpt = None, output: OutputOpt = Output.json
) -> None:
    """Show a service principal by appId or object id."""
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("GET", f"/principals/{sp_id}")), output)


@sp_app.command("delete")
def sp_delete(sp_id: Annotated[str, typer.Option("--id")], data_dir: DataDirOpt = None) -> None:
    """Delete a service principal and its access policies."""
    _run(lambda: AdminClient(_dir(data_dir)).call("DELETE", f"/principals/{sp_id}"))


app.add_typer(attestation_app, name="attestation")
time_app = typer.Typer(no_args_is_help=True, help="The server's clock (for testing expiry, retention, rotation).")
app.add_typer(time_app, name="time")


@time_app.command("show")
def time_show(data_dir: DataDirOpt = None, output: OutputOpt = Output.json) -> None:
    """Show the server's time and its offset from the wall clock."""
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("GET", "/time")), output)


@time_app.command("set")
def time_set(
    offset: Annotated[int, typer.Option("--offset", help="Seconds to add to the wall clock (0: real time).")],
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Move the server's clock; every worker sees it within a second."""
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("PUT", "/time", {"offsetSeconds": offset})), output)


@app.command()
def housekeeping(data_dir: DataDirOpt = None, output: OutputOpt = Output.json) -> None:
    """Run the scheduler once now: purge expired deleted keys, rotate keys that are due."""
    emit(_run(lambda: AdminClient(_dir(data_dir)).call("POST", "/housekeeping")), output)


def main() -> None:  # pragma: no cover - console script entry
    app()
    sys.exit(0)

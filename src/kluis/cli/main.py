"""The ``kluis`` command: ``serve``, ``env``/``exec``, and az-shaped management verbs."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import fields
from importlib.metadata import version as package_version
from typing import Annotated, Any

import typer
from rich.console import Console

from kluis.addressing import is_ip
from kluis.cli.attestation import attestation_app
from kluis.cli.audit import audit_app
from kluis.cli.backup import backup, restore
from kluis.cli.common import DataDirOpt, KluisTyper, NameOpt, OutputOpt, admin_call, data_dir_of, fail, run
from kluis.cli.db import db_app
from kluis.cli.environment import EnvFormat, build_env, render_env
from kluis.cli.kek import kek_app
from kluis.cli.key_args import AzCommand
from kluis.cli.keys import key_app
from kluis.cli.output import Output, emit
from kluis.cli.secrets import secret_app
from kluis.cli.seed import export_command, seed_command
from kluis.config import DataDir, ServerSettings, StartupError

__all__ = ["app"]

app = KluisTyper(help="kluis: a self-hosted Azure Key Vault.")
group_app = KluisTyper(help="Resource groups (like `az group`).")
keyvault_app = KluisTyper(help="Vaults and access policies (like `az keyvault`).")
ad_app = KluisTyper(help="Identities (like `az ad`).")
sp_app = KluisTyper(help="Service principals (like `az ad sp`).")
time_app = KluisTyper(help="The server's clock (for testing expiry, retention, rotation).")
app.add_typer(group_app, name="group")
app.add_typer(keyvault_app, name="keyvault")
keyvault_app.add_typer(key_app, name="key")
keyvault_app.add_typer(secret_app, name="secret")
app.add_typer(ad_app, name="ad")
ad_app.add_typer(sp_app, name="sp")
app.add_typer(attestation_app, name="attestation")
app.add_typer(time_app, name="time")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(kek_app, name="kek")
app.command("backup")(backup)
app.command("restore")(restore)
app.command("seed")(seed_command)
app.command("export")(export_command)

# The serve banner is for people: never wrapped, so a long path stays one line in a log.
console = Console(stderr=True, soft_wrap=True)

ResourceGroupOpt = Annotated[str | None, typer.Option("--resource-group", "-g", help="Accepted for az compatibility.")]
SpnOpt = Annotated[str | None, typer.Option("--spn", help="Service principal appId or display name.")]
ObjectIdOpt = Annotated[str | None, typer.Option("--object-id", help="Service principal object id.")]
SpIdOpt = Annotated[str, typer.Option("--id", help="Service principal appId or object id.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt (accepted for az compatibility).")]


def _version(value: bool) -> None:
    if value:
        print(f"kluis {package_version('kluis')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """kluis: a self-hosted Azure Key Vault."""


# Every serve option that has an environment variable reads KLUIS_<OPTION NAME> (`auto_envvar_prefix`),
# but for those marked `_NO_ENV`: they read none, or (--kek: KLUIS_KEK_SOURCE) only the one they name.
# An option named like a ServerSettings field sets that field (see `serve`).
_NO_ENV: dict[str, Any] = {"allow_from_autoenv": False}
_SETTINGS_FIELDS = frozenset(f.name for f in fields(ServerSettings))
# Ranges click checks (a usage error, exit 2, naming the option): a port out of range used to end in
# an OverflowError traceback, and a scheduler interval of 0 or less in a busy loop.
_PORT: dict[str, Any] = {"min": 1, "max": 65535}
_PORT_OR_OFF: dict[str, Any] = {"min": 0, "max": 65535}
MAX_WORKERS = 64  # an explicit count; 0 (one per core) stops at 8
MAX_KEY_POOL = 1024
MIN_SCHEDULER_INTERVAL = 0.1  # seconds


@app.command(context_settings={"auto_envvar_prefix": "KLUIS"})
def serve(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    host: Annotated[str, typer.Option(help="Address of the HTTPS listener.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the HTTPS listener.", **_PORT)] = 8443,
    proxy_port: Annotated[int, typer.Option(help="CONNECT proxy port; 0 turns it off.", **_PORT_OR_OFF)] = 8080,
    hostname: Annotated[
        list[str] | None, typer.Option(help="Extra host name for the certificate (repeatable).", **_NO_ENV)
    ] = None,
    domain: Annotated[
        list[str] | None, typer.Option(help="Vault domain: NAME.DOMAIN addresses vault NAME (repeatable).", **_NO_ENV)
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Worker processes (0: one per CPU core, at most 8).", min=0, max=MAX_WORKERS)
    ] = 0,
    proxy_passthrough: Annotated[
        bool, typer.Option("--proxy-passthrough", help="Tunnel other hosts instead of refusing them.", **_NO_ENV)
    ] = False,
    scheduler_interval: Annotated[
        float, typer.Option(help="Seconds between rotation/purge checks.", min=MIN_SCHEDULER_INTERVAL)
    ] = 30.0,
    key_pool: Annotated[
        int, typer.Option(help="Pre-generated RSA-2048 keys per worker (0: off).", min=0, max=MAX_KEY_POOL)
    ] = 16,
    throttle_limit: Annotated[
        int, typer.Option(help="Requests per 10 s per vault before 429 (0: off).", min=0)
    ] = 100_000,
    audit: Annotated[str, typer.Option(help="Audit log: on or off.")] = "on",
    audit_retention_days: Annotated[int, typer.Option(help="Delete audit records older than this (0: never).")] = 90,
    audit_retention_count: Annotated[int, typer.Option(help="Keep at most this many audit records (0: all).")] = 0,
    audit_flush_ms: Annotated[
        int, typer.Option(help="Milliseconds between batched audit writes.", min=1, max=60_000)
    ] = 200,
    metrics_port: Annotated[
        int, typer.Option(help="Prometheus metrics port, plain HTTP (0: off).", **_PORT_OR_OFF)
    ] = 0,
    metrics_host: Annotated[str, typer.Option(help="Address of the metrics listener.")] = "127.0.0.1",
    log_format: Annotated[str, typer.Option(help="text, or json (one object per line, with request ids).")] = "text",
    access_log: Annotated[bool, typer.Option("--access-log", help="Log one line per request.")] = False,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Run in the background (log and pid file in the data dir); return once it answers.",
            **_NO_ENV,
        ),
    ] = False,
    database: Annotated[
        str,
        typer.Option(
            help="postgresql://user:password@host:port/db to share one PostgreSQL database between several "
            "kluis nodes (each with the same kek.key); default: SQLite in the data dir.",
        ),
    ] = "",
    kek: Annotated[
        str,
        typer.Option(
            "--kek",
            envvar="KLUIS_KEK_SOURCE",
            **_NO_ENV,  # not KLUIS_KEK as well
            help="The key-encryption key: file:PATH, env:VAR (base64 key) or pkcs11:token=...;object=..."
            "?module-path=...&pin-source=env:VAR; default: kek.key in the data dir.",
        ),
    ] = "",
) -> None:
    """Start kluis: HTTPS on 127.0.0.1:8443, a CONNECT proxy on :8080, SQLite in the data dir."""
    if workers <= 0:
        workers = min(os.cpu_count() or 1, 8)
    if kek:  # a typo'd scheme is an error, and a relative key file path is stored absolute
        from kluis.api.runtime import kek_source_of

        try:
            kek = kek_source_of(kek, data_dir_of(data_dir))
        except StartupError as e:
            raise fail(str(e)) from None
    # The options are the settings, by name; these are read (or named) otherwise.
    derived = {
        "hostnames": _host_names(hostname or [], "--hostname", ip_ok=True),
        "domains": _host_names(domain or [], "--domain", ip_ok=False),
        "workers": workers,
        "audit": _on_off(audit, "--audit"),
        "kek": kek,
    }
    given = {name: value for name, value in ctx.params.items() if name in _SETTINGS_FIELDS}
    settings = ServerSettings(**(given | derived))
    if log_format not in ("text", "json"):
        raise fail(f"--log-format must be text or json, not {log_format!r}", 2)
    database = settings.database = database.strip()
    if database and not database.startswith(("postgresql://", "postgres://")):
        # A bare value was taken for a SQLite file path, stored relative in server.json (a tester's find).
        what = f"{database.split('://', 1)[0]}://" if "://" in database else "a file path"
        raise fail(
            f"--database must be a postgresql:// URL (or empty: SQLite in the data dir, which --data-dir "
            f"places), not {what}",
            2,
        )
    # A negative limit used to mean "no limit" silently; usage errors are one line (exit 2) like the one above.
    if audit_retention_days < 0:
        raise fail(f"--audit-retention-days must be 0 (never delete) or more, not {audit_retention_days}", 2)
    if audit_retention_count < 0:
        raise fail(f"--audit-retention-count must be 0 (keep all) or more, not {audit_retention_count}", 2)
    if detach:
        from kluis.cli.daemon import detach as start_detached

        started = run(start_detached, data_dir_of(data_dir), settings)
        print("\n".join(started.lines()))
        return
    from kluis.cli.serve import serve as serve_forever

    try:
        with contextlib.suppress(KeyboardInterrupt):
            run(serve_forever, data_dir_of(data_dir), settings, console)
    except StartupError as e:  # a missing or wrong root key: one line naming the file and fingerprint
        raise fail(str(e) + _last_kek_hint(data_dir_of(data_dir), kek)) from None


_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)


def _host_names(values: list[str], flag: str, *, ip_ok: bool) -> list[str]:
    """``values`` as host names (RFC 1123: dot-separated labels of 1-63 letters, digits and inner
    hyphens, 253 characters at most), each without the trailing dot of a fully qualified name
    (``kv.corp.test.`` is ``kv.corp.test`` to DNS; kept, it broke the SDK's challenge check); IP
    addresses too when ``ip_ok``. Raises a usage error (exit 2) naming ``flag`` for anything else."""
    names: list[str] = []
    for value in values:
        name = value.strip()
        if is_ip(name):
            if ip_ok:
                names.append(name.strip("[]"))
                continue
            raise fail(f"{flag} must be a DNS domain name, not the IP address {value!r}", 2)
        if name.endswith(".") and not name.endswith(".."):
            name = name[:-1]
        if not name or len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in name.split(".")):
            what = "a DNS host name or an IP address" if ip_ok else "a DNS domain name"
            raise fail(f"{flag} must be {what} (letters, digits, hyphens and dots), not {value!r}", 2)
        names.append(name)
    return names


def _last_kek_hint(data_dir: DataDir, kek: str) -> str:
    """ " (last started with --kek SOURCE ...)" when the data dir's recorded KEK source (server.json)
    is not the one this start used, else "": a start that forgot ``--kek`` / ``KLUIS_KEK_SOURCE``
    otherwise reads as a lost kek.key."""
    try:
        last = data_dir.read_server()
    except (OSError, ValueError):
        return ""
    recorded = last.kek if last is not None else ""
    if not recorded or recorded == kek:
        return ""
    return f" (this data dir was last started with --kek {recorded}: pass the same source, or set KLUIS_KEK_SOURCE)"


def _on_off(value: str, flag: str) -> bool:
    if value.lower() not in ("on", "off"):
        raise fail(f"{flag} must be on or off, not {value!r}", 2)
    return value.lower() == "on"


StopTimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for a clean shutdown before SIGKILL.")
]


@app.command()
def stop(data_dir: DataDirOpt = None, timeout: StopTimeoutOpt = 15.0) -> None:
    """Stop the server `kluis serve --detach` started from this data dir (SIGINT to its process group)."""
    from kluis.cli.daemon import stop as stop_detached

    pid = run(stop_detached, data_dir_of(data_dir), timeout=timeout)
    print(f"kluis stopped (pid {pid})")


@app.command()
def status(data_dir: DataDirOpt = None, output: OutputOpt = Output.json) -> None:
    """Is kluis running from this data dir and answering? Exit code 0 if so, 3 if not (as `systemctl status`)."""
    from kluis.cli.daemon import status as server_status

    found = run(server_status, data_dir_of(data_dir))
    emit(found.as_dict(), output)
    if not found.running:
        raise typer.Exit(3)


@app.command()
def env(
    data_dir: DataDirOpt = None,
    vault_name: Annotated[str, typer.Option("--vault-name", "-n", help="The vault programs should use.")] = "default",
    direct: Annotated[bool, typer.Option(help="https://localhost:PORT instead of the proxy.")] = False,
    managed_identity: Annotated[bool, typer.Option(help="Managed-identity variables instead of a secret.")] = False,
    client_id: Annotated[str | None, typer.Option(help="Service principal appId (default: administrator).")] = None,
    client_secret: Annotated[str | None, typer.Option(help="Its password.")] = None,
    fmt: Annotated[
        EnvFormat, typer.Option("--format", "-f", help="sh, dotenv (compose, IDEs), json, fish or powershell.")
    ] = EnvFormat.sh,
) -> None:
    """Print the variables (`export` lines by default) that point Azure SDK programs at this kluis."""
    values = run(
        build_env, data_dir_of(data_dir), vault_name=vault_name, direct=direct, managed_identity=managed_identity,
        client_id=client_id, client_secret=client_secret,
    )  # fmt: skip
    _warn_unless_served(data_dir_of(data_dir), vault_name)
    print(render_env(values, fmt), end="")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    options_metavar="[OPTIONS] -- CMD [ARGS]...",
)
def exec(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    vault_name: Annotated[str, typer.Option("--vault-name", "-n", help="The vault CMD should use.")] = "default",
    direct: Annotated[bool, typer.Option(help="https://localhost:PORT instead of the proxy.")] = False,
    managed_identity: Annotated[bool, typer.Option(help="Managed-identity variables instead of a secret.")] = False,
) -> None:
    """Run CMD with the environment `kluis env` prints, e.g. kluis exec -n myvault -- python app.py

    Everything after -- is the command and its own arguments, passed on unchanged; kluis exec
    replaces itself with CMD, so CMD's exit code is kluis exec's.
    """
    if not ctx.args:
        raise fail("give a command after --, e.g. kluis exec -- python app.py", 2)
    values = run(
        build_env, data_dir_of(data_dir), vault_name=vault_name, direct=direct, managed_identity=managed_identity
    )
    _warn_unless_served(data_dir_of(data_dir), vault_name)
    try:
        os.execvpe(ctx.args[0], ctx.args, {**os.environ, **values})
    except FileNotFoundError:
        raise fail(f"command not found: {ctx.args[0]}", 127) from None


def _warn_unless_served(data_dir: DataDir, vault_name: str) -> None:
    """Exit 1 when the running kluis has no such vault; a warning on stderr when kluis does not answer
    (``kluis env -n nosuchvault`` and ``kluis exec`` against a stopped server exited 0 silently)."""
    from kluis.cli.environment import check_target

    warning = run(check_target, data_dir, vault_name)
    if warning:
        print(warning, file=sys.stderr)


# -- management verbs: one call to the management API, its answer printed --------------------------
def _admin_verb(app: typer.Typer, verb: str, doc: str, method: str, path: str, *, field: str | None = None) -> None:
    """Register ``verb``: ``method path`` as the administrator, print the answer (or its ``field``)."""

    def command(data_dir: DataDirOpt = None, output: OutputOpt = Output.json) -> None:
        answer = admin_call(data_dir, method, path)
        emit(answer[field] if field else answer, output)

    command.__doc__ = doc
    app.command(verb)(command)


def _named_admin_verb(app: typer.Typer, verb: str, doc: str, method: str, path: str) -> None:
    """Register ``verb --name NAME``: ``method path`` (``{name}`` filled in), print the answer."""

    def command(name: NameOpt, data_dir: DataDirOpt = None, output: OutputOpt = Output.json) -> None:
        emit(admin_call(data_dir, method, path.format(name=name)), output)

    command.__doc__ = doc
    app.command(verb)(command)


# -- az group --------------------------------------------------------------------------------------
@group_app.command("create")
def group_create(
    name: NameOpt,
    location: Annotated[str, typer.Option("--location", "-l", help="Its location (a label).")] = "local",
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Create a resource group."""
    emit(admin_call(data_dir, "PUT", f"/groups/{name}", {"location": location}), output)


_admin_verb(group_app, "list", "List resource groups.", "GET", "/groups", field="value")
_named_admin_verb(group_app, "show", "Show a resource group.", "GET", "/groups/{name}")


@group_app.command("delete")
def group_delete(
    name: NameOpt, yes: YesOpt = False, data_dir: DataDirOpt = None, output: OutputOpt = Output.json
) -> None:
    """Delete a resource group and every vault in it."""
    emit(admin_call(data_dir, "DELETE", f"/groups/{name}"), output)


# -- az keyvault -----------------------------------------------------------------------------------
@keyvault_app.command("create")
def keyvault_create(
    name: NameOpt,
    resource_group: Annotated[str, typer.Option("--resource-group", "-g", help="The group it belongs to.")],
    location: Annotated[str | None, typer.Option("--location", "-l", help="Default: the group's.")] = None,
    retention_days: Annotated[int, typer.Option("--retention-days", help="Soft-delete retention, 7-90.")] = 90,
    enable_purge_protection: Annotated[
        bool, typer.Option("--enable-purge-protection", help="Deleted keys cannot be purged early.")
    ] = False,
    sku: Annotated[
        str, typer.Option("--sku", help="standard (software keys) or premium (adds the -HSM key types), as az.")
    ] = "standard",
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Create a vault; you (the administrator) get an access policy with every permission."""
    body = {
        "group": resource_group, "location": location, "retentionDays": retention_days,
        "purgeProtection": enable_purge_protection, "sku": sku,
    }  # fmt: skip
    emit(admin_call(data_dir, "PUT", f"/vaults/{name}", body), output)


_named_admin_verb(keyvault_app, "show", "Show a vault and its access policies.", "GET", "/vaults/{name}")


@keyvault_app.command("list")
def keyvault_list(
    resource_group: Annotated[str | None, typer.Option("--resource-group", "-g", help="Only this group's.")] = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """List vaults."""
    params: dict[str, Any] = {"group": resource_group} if resource_group else {}
    emit(admin_call(data_dir, "GET", "/vaults", **params)["value"], output)


_named_admin_verb(keyvault_app, "delete", "Delete a vault and all its keys.", "DELETE", "/vaults/{name}")


def _perms(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [p for v in values for p in v.replace(",", " ").split()]


def _principal(spn: str | None, object_id: str | None) -> str:
    who = spn or object_id
    if not who:
        raise fail("give --spn or --object-id", 2)
    return who


PermissionsHelp = "Space-separated permissions, or all."


@keyvault_app.command("set-policy", cls=AzCommand)
def keyvault_set_policy(
    name: NameOpt,
    spn: SpnOpt = None,
    object_id: ObjectIdOpt = None,
    key_permissions: Annotated[list[str] | None, typer.Option("--key-permissions", help=PermissionsHelp)] = None,
    secret_permissions: Annotated[list[str] | None, typer.Option("--secret-permissions", help=PermissionsHelp)] = None,
    certificate_permissions: Annotated[
        list[str] | None, typer.Option("--certificate-permissions", help=PermissionsHelp)
    ] = None,
    resource_group: ResourceGroupOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Grant permissions, e.g. --key-permissions delete get list create (or all)."""
    who = _principal(spn, object_id)
    # az takes space-separated values after one flag (`--key-permissions delete get list create`);
    # AzCommand turns them into repeated options before click parses them.
    body = {
        "keys": _perms(key_permissions),
        "secrets": _perms(secret_permissions),
        "certificates": _perms(certificate_permissions),
    }
    emit(admin_call(data_dir, "PUT", f"/vaults/{name}/policies/{who}", body), output)


@keyvault_app.command("delete-policy")
def keyvault_delete_policy(
    name: NameOpt,
    spn: SpnOpt = None,
    object_id: ObjectIdOpt = None,
    resource_group: ResourceGroupOpt = None,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Remove a principal's access policy."""
    emit(admin_call(data_dir, "DELETE", f"/vaults/{name}/policies/{_principal(spn, object_id)}"), output)


# -- az ad sp --------------------------------------------------------------------------------------
@sp_app.command("create-for-rbac")
def sp_create(
    name: Annotated[str, typer.Option("--name", "-n", help="Display name; an existing one gets a new password.")],
    skip_assignment: Annotated[
        bool, typer.Option("--skip-assignment", help="Accepted for az compatibility (kluis uses access policies).")
    ] = False,
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Create a service principal; prints appId, password and tenant once (only a hash is kept).

    Like az, a name that already exists is reused: same appId, a new password (the old one stops working).
    """
    res = admin_call(data_dir, "POST", "/principals", {"displayName": name})
    if res.get("reused"):
        # az prints this warning on stderr when it patches an existing application (azure-cli
        # role/custom.py, create_application): "Found an existing application instance: (id) <object id>.
        # We will patch it." -- then it removes the application's passwords and adds a new one.
        print(
            f"WARNING: Found an existing application instance: (id) {res['objectId']}. We will patch it.",
            file=sys.stderr,
        )
    emit({k: res[k] for k in ("appId", "displayName", "password", "tenant")}, output)


_admin_verb(sp_app, "list", "List service principals.", "GET", "/principals", field="value")


@sp_app.command("show")
def sp_show(sp_id: SpIdOpt, data_dir: DataDirOpt = None, output: OutputOpt = Output.json) -> None:
    """Show a service principal by appId or object id."""
    emit(admin_call(data_dir, "GET", f"/principals/{sp_id}"), output)


@sp_app.command("delete")
def sp_delete(sp_id: SpIdOpt, data_dir: DataDirOpt = None) -> None:
    """Delete a service principal and its access policies."""
    admin_call(data_dir, "DELETE", f"/principals/{sp_id}")


# -- kluis's own: the clock and housekeeping -------------------------------------------------------
_admin_verb(time_app, "show", "Show the server's time and its offset from the wall clock.", "GET", "/time")


@time_app.command("set")
def time_set(
    offset: Annotated[
        int,
        typer.Option("--offset", help="Seconds to add to the wall clock (0: real time; at most 100 years either way)."),
    ],
    data_dir: DataDirOpt = None,
    output: OutputOpt = Output.json,
) -> None:
    """Move the server's clock; every worker uses it from its next request."""
    emit(admin_call(data_dir, "PUT", "/time", {"offsetSeconds": offset}), output)


_admin_verb(
    app, "housekeeping", "Run the scheduler once now: purge expired deleted keys, rotate keys that are due.",
    "POST", "/housekeeping",
)  # fmt: skip

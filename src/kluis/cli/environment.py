"""``kluis env`` / ``kluis exec``: the environment that points unmodified SDK programs at kluis.

Zero-change mode (default): ``HTTPS_PROXY`` sends ``*.vault.azure.net`` and ``login.microsoftonline.com``
to kluis, whose certificate covers those names. Every TLS stack must then trust the kluis CA *and*
the roots it trusted before (so the same process still reaches real hosts), hence one bundle
(``ca-bundle.pem``: the system trust store, or certifi's roots, plus the kluis CA) named by each
stack's own variable:

* ``SSL_CERT_FILE``: OpenSSL's default verify file, so Python's ``ssl`` defaults (``urllib``,
  ``aiohttp``, hence the async Azure SDK), ``httpx`` (which honours it before certifi), Go's
  ``crypto/x509`` and other OpenSSL-based tools;
* ``REQUESTS_CA_BUNDLE``: ``requests`` (the sync Azure SDK) ignores ``SSL_CERT_FILE``;
* ``CURL_CA_BUNDLE``: curl;
* ``NODE_EXTRA_CA_CERTS``: Node *adds* these to its built-in roots, so it names the kluis CA alone;
* ``JAVA_TOOL_OPTIONS``: ``-Djavax.net.ssl.trustStore`` (the same certificates as PKCS#12,
  ``ca-bundle.p12``) and, in proxy mode, ``-Dhttps.proxyHost``/``-Dhttps.proxyPort`` (the Java SDK
  ignores ``HTTPS_PROXY`` by default), read by every JVM at start.

Direct mode: ``https://localhost:PORT`` with ``AZURE_AUTHORITY_HOST`` pointing at kluis and the
``adfs`` tenant (which makes MSAL skip instance discovery); needs ``verify_challenge_resource=False``.
"""

from __future__ import annotations

import json
import re
import shlex
from enum import StrEnum
from urllib.parse import urlsplit

from kluis.cli.client import CliError, Credentials, load_credentials, load_settings
from kluis.config import DataDir
from kluis.domain.management import vault_name_problem
from kluis.identity.pki import java_truststore_path, write_ca_bundle

__all__ = ["EnvFormat", "build_env", "render_env"]


class EnvFormat(StrEnum):
    """How ``kluis env`` prints the variables."""

    sh = "sh"  # export K='v' (bash, zsh, dash): eval "$(kluis env)"
    dotenv = "dotenv"  # K=v (docker compose env_file, IDE run configurations, python-dotenv)
    json = "json"  # one JSON object of strings
    fish = "fish"  # set -gx K 'v': kluis env --format fish | source
    powershell = "powershell"  # $env:K = 'v': kluis env --format powershell | Invoke-Expression


def build_env(
    data_dir: DataDir,
    *,
    vault_name: str,
    direct: bool = False,
    managed_identity: bool = False,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> dict[str, str]:
    """The variables, in print order. Raises :class:`CliError` when kluis has not been started here.
    With the CONNECT proxy off (``--proxy-port 0``) they are direct mode's whatever ``direct`` says:
    proxy mode's ``HTTPS_PROXY=http://127.0.0.1:0`` left every program unable to connect."""
    problem = vault_name_problem(vault_name)
    if problem is not None:  # a VAULT_URL of https://.vault.azure.net helps nobody
        raise CliError(problem)
    settings = load_settings(data_dir)
    proxy_off = not settings.proxy_port
    direct = direct or proxy_off
    admin = load_credentials(data_dir)
    creds = Credentials(admin.tenant, client_id, client_secret or "") if client_id else admin
    bundle = str(data_dir.ca_bundle)
    _ensure_trust_files(data_dir)
    env: dict[str, str] = {
        "SSL_CERT_FILE": bundle,
        "REQUESTS_CA_BUNDLE": bundle,
        "CURL_CA_BUNDLE": bundle,
        "NODE_EXTRA_CA_CERTS": str(data_dir.tls / "ca.pem"),
        "JAVA_TOOL_OPTIONS": _java_options(data_dir, None if direct else settings.proxy_url),
        "KEY_VAULT_NAME": vault_name,
    }
    local = settings.url
    if direct:
        if settings.domains:
            env["VAULT_URL"] = f"https://{vault_name}.{settings.domains[0]}:{settings.port}"
        elif vault_name != "default":
            why = "kluis runs without its CONNECT proxy (--proxy-port 0), so " if proxy_off else ""
            instead = "start kluis with a --proxy-port" if proxy_off else "use the proxy mode (drop --direct)"
            raise CliError(
                f"{why}direct mode reaches only the default vault (https://localhost:PORT). For vault "
                f"'{vault_name}' {instead} or start kluis with --domain."
            )
        else:
            env["VAULT_URL"] = local
        env["AZURE_AUTHORITY_HOST"] = local
        env["AZURE_TENANT_ID"] = "adfs"
        # kluis's own names bypass any proxy the caller has set (else it would carry localhost's traffic)
        bypass = ",".join(["localhost", "127.0.0.1", "::1", *(f".{d}" for d in settings.domains)])
        env["NO_PROXY"] = env["no_proxy"] = bypass
    else:
        # Emptied: a caller's NO_PROXY (".vault.azure.net", "*") let the program skip kluis's proxy and
        # take kluis's credentials to the real login.microsoftonline.com and Azure (a tester's find).
        env["NO_PROXY"] = env["no_proxy"] = ""
        env["HTTPS_PROXY"] = settings.proxy_url
        env["VAULT_URL"] = f"https://{vault_name}.vault.azure.net"
        env["AZURE_TENANT_ID"] = creds.tenant
    if managed_identity:
        env["IDENTITY_ENDPOINT"] = f"{local}/msi/token"
        env["IDENTITY_HEADER"] = f"{creds.app_id}:{creds.password}"
        env["AZURE_CLIENT_ID"] = creds.app_id
    else:
        env["AZURE_CLIENT_ID"] = creds.app_id
        env["AZURE_CLIENT_SECRET"] = creds.password
    return env


def check_target(data_dir: DataDir, vault_name: str) -> str | None:
    """Whether the variables lead anywhere: None when kluis answers and serves ``vault_name``; a warning
    (for stderr) when kluis does not answer (the variables are still right once it runs); CliError
    when it answers without such a vault (programs would get VaultNotFound on every call)."""
    from kluis.cli.client import AdminClient
    from kluis.cli.daemon import health

    settings = load_settings(data_dir)
    if health(settings, data_dir.tls / "ca.pem") is None:
        return (
            f"warning: kluis is not answering at {settings.url}; the variables point there "
            "(start it with `kluis serve`, or `kluis serve --detach`)"
        )
    try:
        AdminClient(data_dir).call("GET", f"/vaults/{vault_name}")
    except CliError as e:
        if "VaultNotFound" in str(e) or "(404)" in str(e) or "NotFound" in str(e):
            raise CliError(
                f"kluis has no vault '{vault_name}'; create it with `kluis keyvault create -n {vault_name}`, "
                "or name another with -n (`kluis keyvault list` lists them)."
            ) from None
        raise
    return None


def render_env(values: dict[str, str], fmt: EnvFormat = EnvFormat.sh) -> str:
    """``values`` as text a shell, compose file or IDE reads back unchanged; ends with a newline.

    Raises ``ValueError`` for a value no format can hold (a NUL byte) or a name that is not a
    variable name (``[A-Za-z_][A-Za-z0-9_]*``).
    """
    for key, value in values.items():
        if not _NAME.fullmatch(key):
            raise ValueError(f"not an environment variable name: {key!r}")
        if "\0" in value:
            raise ValueError(f"{key} contains a NUL byte")
    if fmt is EnvFormat.json:
        return json.dumps(values, indent=2) + "\n"
    return "".join(_line(fmt, k, v) + "\n" for k, v in values.items())


# --- internals -------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]*")


def _line(fmt: EnvFormat, key: str, value: str) -> str:
    if fmt is EnvFormat.sh:
        return f"export {key}={shlex.quote(value)}"
    if fmt is EnvFormat.dotenv:
        return f"{key}={_dotenv_quote(value)}"
    if fmt is EnvFormat.fish:
        return f"set -gx {key} {_fish_quote(value)}"
    return f"$env:{key} = {_powershell_quote(value)}"


def _ensure_trust_files(data_dir: DataDir) -> None:
    """(Re)write the PEM bundle and its PKCS#12 twin when missing or older than the kluis CA.

    ``kluis serve`` writes both at every start; this covers data dirs from before the trust store
    existed. Raises :class:`CliError` when they cannot be written.
    """
    ca = data_dir.tls / "ca.pem"
    bundle = data_dir.ca_bundle
    wanted = (bundle, java_truststore_path(bundle))
    try:
        if ca.exists() and any(not p.exists() or p.stat().st_mtime < ca.stat().st_mtime for p in wanted):
            write_ca_bundle(ca, bundle)
    except (OSError, ValueError) as e:
        raise CliError(f"cannot write the CA bundle in {data_dir.path}: {e}") from None


def _java_options(data_dir: DataDir, proxy_url: str | None) -> str:
    """JVM flags: the PKCS#12 trust store (no password) replaces the JDK's cacerts; the proxy, if any.

    azure-core reads ``HTTPS_PROXY`` only when ``java.net.useSystemProxies=true``; before that it reads
    ``https.proxyHost``/``https.proxyPort`` (``ProxyOptions.fromConfiguration``, azure-core 1.58), which
    the JDK's own HTTP clients honour too, so those are what the proxy mode sets.
    """
    options = [
        f"-Djavax.net.ssl.trustStore={java_truststore_path(data_dir.ca_bundle)}",
        "-Djavax.net.ssl.trustStoreType=PKCS12",
    ]
    if proxy_url:
        proxy = urlsplit(proxy_url)
        options += [f"-Dhttps.proxyHost={proxy.hostname}", f"-Dhttps.proxyPort={proxy.port}"]
    return " ".join(_jvm_quote(option) for option in options)


def _jvm_quote(option: str) -> str:
    # HotSpot splits JAVA_TOOL_OPTIONS on whitespace but honours '...' and "..." around a word.
    return option if not any(c.isspace() for c in option) else "'" + option + "'"


def _dotenv_quote(value: str) -> str:
    """Bare if safe; else '...' (literal in compose and python-dotenv); else "..." with backslash escapes."""
    if _PLAIN.fullmatch(value):
        return value
    if "'" not in value and "\n" not in value and "\\" not in value:
        return "'" + value + "'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("\n", "\\n")
    return '"' + escaped + '"'


def _fish_quote(value: str) -> str:
    # Inside fish single quotes only \' and \\ are escapes.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _powershell_quote(value: str) -> str:
    # PowerShell single-quoted strings are verbatim; a quote is written twice. Curly quotes count as quotes too.
    return "'" + re.sub(r"(['\u2018\u2019\u201a\u201b])", r"\1\1", value) + "'"

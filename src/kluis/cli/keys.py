"""``kluis keyvault key``: az's data-plane key verbs, built on the official ``azure-keyvault-keys`` SDK.

Every verb goes through :class:`~azure.keyvault.keys.KeyClient` (or the CryptographyClient it hands
out), so the CLI dogfoods the same SDK path applications use (``kluis.cli.sdk_client`` connects it).
The verbs keys share with secrets come from ``kluis.cli.lifecycle_verbs``; the flags every verb takes
from ``kluis.cli.verbs``. Output is shaped like az's: camelCase keys, bytes as standard base64.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer

from kluis.cli import lifecycle_verbs
from kluis.cli.client import CliError
from kluis.cli.common import KluisTyper
from kluis.cli.key_args import (
    _b64decode,
    _load_json,
    _unhex,
    parse_bool,
    parse_ops,
    parse_rotation_policy,
    pem_to_jwk,
)
from kluis.cli.key_output import key_bundle, key_item, rotation_policy_dict, show
from kluis.cli.object_ref import KEY, ObjectRef
from kluis.cli.sdk_output import plain
from kluis.cli.verbs import Address, ChangedAttributes, EnabledOpt, NewAttributes, Target, Verbs

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.keys.crypto import CryptographyClient


__all__ = ["key_app"]

key_app = KluisTyper(help="Keys in a vault (like `az keyvault key`).")
rotation_app = KluisTyper(help="A key's rotation policy.")
key_app.add_typer(rotation_app, name="rotation-policy")


def _key_client() -> Callable[..., KeyClient]:
    from azure.keyvault.keys import KeyClient

    return KeyClient


_HELP = {"object_id": "Key identifier: https://NAME.vault.azure.net/keys/KEY, optionally /VERSION."}
verbs = Verbs(key_app, KEY, _key_client, show, _HELP)
rotation_verbs = Verbs(rotation_app, KEY, _key_client, show, _HELP)

OpsOpt = Annotated[
    list[str] | None,
    typer.Option("--ops", help="Space-separated operations: encrypt decrypt sign verify wrapKey unwrapKey import."),
]
ExportableOpt = Annotated[str | None, typer.Option("--exportable", help="Whether the private key can be exported.")]
PolicyOpt = Annotated[str | None, typer.Option("--policy", help="Release policy: JSON, or a file containing it.")]
ImmutableOpt = Annotated[str | None, typer.Option("--immutable", help="Make the release policy immutable.")]


class Protection(StrEnum):
    software = "software"
    hsm = "hsm"


class DataType(StrEnum):
    base64 = "base64"
    plaintext = "plaintext"


_KTYS = {k.lower(): k for k in ("EC", "EC-HSM", "RSA", "RSA-HSM", "oct", "oct-HSM")}


def _kty(value: str, protection: Protection | None) -> str:
    kty = _KTYS.get(value.lower())
    if kty is None:
        raise CliError(f"--kty must be one of {', '.join(_KTYS.values())}, not {value!r}.")
    if protection is Protection.hsm and not kty.endswith("-HSM"):
        kty += "-HSM"
    return kty


ProtectionOpt = Annotated[Protection | None, typer.Option("--protection", "-p")]


def _release_policy_arg(policy: str | None, immutable: str | None) -> Any:
    if policy is None:
        if immutable is not None:
            raise CliError("--immutable needs --policy.")
        return None
    from azure.keyvault.keys import KeyReleasePolicy

    doc = _load_json(policy, "--policy")
    return KeyReleasePolicy(
        json.dumps(doc, separators=(",", ":")).encode(),
        content_type="application/json; charset=utf-8",
        immutable=parse_bool(immutable, "--immutable"),
    )


def _crypto(client: KeyClient, ref: ObjectRef) -> CryptographyClient:
    return client.get_cryptography_client(ref.named, key_version=ref.version)


E = TypeVar("E", bound=Enum)


def _algorithm(enum: type[E], value: str) -> E | str:
    """The SDK's enum member when it knows the name (its local crypto needs it), else the string for the
    server to judge."""
    try:
        return enum(value)
    except ValueError:
        return value


@dataclass(frozen=True)
class ReleasePolicyFlags:
    """``--policy`` and ``--immutable``: a key's release policy (``create``, ``import``, ``set-attributes``)."""

    policy: PolicyOpt = None
    immutable: ImmutableOpt = None

    def release_policy(self) -> Any:
        """The SDK's KeyReleasePolicy, or None when not given (see :func:`_release_policy_arg`)."""
        return _release_policy_arg(self.policy, self.immutable)


@dataclass(frozen=True)
class NewKeyFlags:
    """What ``create`` and ``import`` both take besides the key: operations, exportability, release policy."""

    ops: OpsOpt = None
    exportable: ExportableOpt = None
    release: ReleasePolicyFlags = ReleasePolicyFlags()
    attributes: NewAttributes = field(default_factory=NewAttributes)

    def sdk_kwargs(self) -> dict[str, Any]:
        """The SDK keywords but the key operations: enabled, tags, dates, exportable, release_policy."""
        return {
            "enabled": not self.attributes.is_disabled(), **self.attributes.dated(),
            "exportable": parse_bool(self.exportable, "--exportable"), "release_policy": self.release.release_policy(),
        }  # fmt: skip


@verbs.command("create", az_args=True)
def key_create(
    target: Target[KeyClient],
    *,
    kty: Annotated[str, typer.Option("--kty", help="EC, EC-HSM, RSA, RSA-HSM, oct or oct-HSM.")] = "RSA",
    size: Annotated[int | None, typer.Option("--size", help="Key size in bits (RSA, oct).")] = None,
    curve: Annotated[str | None, typer.Option("--curve", help="P-256, P-256K, P-384 or P-521.")] = None,
    protection: ProtectionOpt = None,
    key: NewKeyFlags,
) -> dict[str, Any]:
    """Create a key (or a new version of it)."""
    client, ref = target.connect()
    made = client.create_key(
        ref.named, _kty(kty, protection), size=size, curve=curve, key_operations=parse_ops(key.ops),
        **key.sdk_kwargs(),
    )  # fmt: skip
    return key_bundle(made)


@verbs.command("import", az_args=True)
def key_import(
    target: Target[KeyClient],
    *,
    pem_file: Annotated[Path | None, typer.Option("--pem-file", help="PEM file with the private key.")] = None,
    pem_string: Annotated[str | None, typer.Option("--pem-string", help="The PEM private key itself.")] = None,
    pem_password: Annotated[str | None, typer.Option("--pem-password", help="Password of an encrypted PEM.")] = None,
    kty: Annotated[str, typer.Option("--kty", help="Accepted for az compatibility (BYOK only).")] = "RSA",
    curve: Annotated[str | None, typer.Option("--curve", help="Accepted for az compatibility (BYOK only).")] = None,
    protection: ProtectionOpt = None,
    key: NewKeyFlags,
) -> dict[str, Any]:
    """Import an RSA or EC private key from a PEM file or string."""
    from azure.keyvault.keys import JsonWebKey

    if (pem_file is None) == (pem_string is None):
        raise CliError("Give exactly one of --pem-file or --pem-string.")
    pem = pem_file.expanduser().read_text() if pem_file is not None else pem_string or ""
    fields = pem_to_jwk(pem, pem_password)
    client, ref = target.connect()
    imported = client.import_key(
        ref.named, JsonWebKey(key_ops=parse_ops(key.ops), **fields),
        hardware_protected=protection is Protection.hsm if protection else None,
        **key.sdk_kwargs(),
    )  # fmt: skip
    return key_bundle(imported)


lifecycle_verbs.by_name(
    verbs, "show", "Show a key (its public part) and its attributes.",
    lambda c, r: key_bundle(c.get_key(r.named, r.version)), address=Address.VERSION,
)  # fmt: skip
lifecycle_verbs.listings(
    verbs,
    key_item,
    list_doc="List keys (versionless identifiers).",
    versions_doc="List a key's versions.",
    deleted_doc="List deleted (recoverable) keys.",
)
lifecycle_verbs.by_name(
    verbs, "show-deleted", "Show a deleted key.", lambda c, r: key_bundle(c.get_deleted_key(r.named))
)


@verbs.command("set-attributes", Address.VERSION, az_args=True)
def key_set_attributes(
    target: Target[KeyClient],
    *,
    enabled: EnabledOpt = None,
    ops: OpsOpt = None,
    attributes: ChangedAttributes,
    release: ReleasePolicyFlags,
) -> dict[str, Any]:
    """Change a key's attributes (not its material)."""
    client, ref = target.connect()
    key = client.update_key_properties(
        ref.named, ref.version, key_operations=parse_ops(ops), enabled=parse_bool(enabled, "--enabled"),
        **attributes.dated(), release_policy=release.release_policy(),
    )  # fmt: skip
    return key_bundle(key)


lifecycle_verbs.by_name(
    verbs, "delete", "Delete a key (recoverable until purged).",
    lambda c, r: key_bundle(c.begin_delete_key(r.named).result()),
)  # fmt: skip
lifecycle_verbs.by_name(
    verbs, "recover", "Recover a deleted key.", lambda c, r: key_bundle(c.begin_recover_deleted_key(r.named).result())
)
lifecycle_verbs.by_name(
    verbs, "purge", "Permanently delete a deleted key.", lambda c, r: c.purge_deleted_key(r.named), prints=False
)
lifecycle_verbs.backup(
    verbs, "Back up a key (all versions) to a file only a kluis/Key Vault can restore.", lambda c, n: c.backup_key(n)
)
lifecycle_verbs.restore(
    verbs, "Restore a backed-up key into a vault.", lambda c, blob: c.restore_key_backup(blob), key_bundle
)


AlgorithmOpt = Annotated[str, typer.Option("--algorithm", "-a", help="e.g. RSA-OAEP-256, A256GCM, ES256, PS256.")]
DataTypeOpt = Annotated[
    DataType, typer.Option("--data-type", help="How --value (encrypt) / the result (decrypt) is given.")
]
IvOpt = Annotated[str | None, typer.Option("--iv", help="Initialization vector, hex (AES-CBC/GCM).")]
AadOpt = Annotated[str | None, typer.Option("--aad", help="Additional authenticated data, hex (AES-GCM).")]


def _hex(data: bytes | None) -> str | None:
    return data.hex() if data else None


@dataclass(frozen=True)
class CipherFlags:
    """``--algorithm``, ``--data-type``, ``--iv``, ``--aad``: what ``encrypt`` and ``decrypt`` share."""

    algorithm: AlgorithmOpt
    data_type: DataTypeOpt = DataType.base64
    iv: IvOpt = None
    aad: AadOpt = None

    def apply(
        self, target: Target[KeyClient], operation: Literal["encrypt", "decrypt"], data: bytes, **tag: Any
    ) -> Any:
        """``operation`` on ``data`` with the addressed key, ``--iv``/``--aad`` (hex) and ``tag`` passed on.

        The flags are checked before connecting: CliError when ``--iv`` or ``--aad`` is not hexadecimal.
        """
        from azure.keyvault.keys.crypto import EncryptionAlgorithm

        iv, aad = _unhex(self.iv, "--iv"), _unhex(self.aad, "--aad")
        client, ref = target.connect()
        call = getattr(_crypto(client, ref), operation)
        return call(
            _algorithm(EncryptionAlgorithm, self.algorithm), data, iv=iv, additional_authenticated_data=aad, **tag
        )


@verbs.command("encrypt", Address.VERSION)
def key_encrypt(
    target: Target[KeyClient],
    cipher: CipherFlags,
    value: Annotated[str, typer.Option("--value", help="The data to encrypt (see --data-type).")],
) -> dict[str, Any]:
    """Encrypt with a key: prints kid, result (base64), algorithm, iv/tag/aad (hex)."""
    plaintext = value.encode() if cipher.data_type is DataType.plaintext else _b64decode(value, "--value")
    res = cipher.apply(target, "encrypt", plaintext)
    return {
        "aad": _hex(res.aad),
        "algorithm": plain(res.algorithm),
        "iv": _hex(res.iv),
        "kid": res.key_id,
        "result": base64.b64encode(res.ciphertext).decode(),
        "tag": _hex(res.tag),
    }


@verbs.command("decrypt", Address.VERSION)
def key_decrypt(
    target: Target[KeyClient],
    cipher: CipherFlags,
    value: Annotated[str, typer.Option("--value", help="The ciphertext, base64.")],
    tag: Annotated[str | None, typer.Option("--tag", help="Authentication tag, hex (AES-GCM).")] = None,
) -> dict[str, Any]:
    """Decrypt with a key: prints kid, result (base64, or text with --data-type plaintext), algorithm."""
    ciphertext = _b64decode(value, "--value")
    res = cipher.apply(target, "decrypt", ciphertext, authentication_tag=_unhex(tag, "--tag"))
    if cipher.data_type is DataType.plaintext:
        try:
            result = res.plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise CliError("The plaintext is not UTF-8 text; use --data-type base64.") from None
    else:
        result = base64.b64encode(res.plaintext).decode()
    return {"algorithm": plain(res.algorithm), "kid": res.key_id, "result": result}


DigestOpt = Annotated[str, typer.Option("--digest", help="The digest to sign/verify, base64.")]


@verbs.command("sign", Address.VERSION)
def key_sign(target: Target[KeyClient], algorithm: AlgorithmOpt, digest: DigestOpt) -> dict[str, Any]:
    """Sign a digest: prints keyId, signature (base64), algorithm."""
    from azure.keyvault.keys.crypto import SignatureAlgorithm

    digest_b = _b64decode(digest, "--digest")
    client, ref = target.connect()
    res = _crypto(client, ref).sign(_algorithm(SignatureAlgorithm, algorithm), digest_b)  # type: ignore[arg-type]
    return {
        "algorithm": plain(res.algorithm),
        "keyId": res.key_id,
        "signature": base64.b64encode(res.signature).decode(),
    }


@verbs.command("verify", Address.VERSION)
def key_verify(
    target: Target[KeyClient],
    algorithm: AlgorithmOpt,
    digest: DigestOpt,
    signature: Annotated[str, typer.Option("--signature", help="The signature, base64.")],
) -> dict[str, Any]:
    """Verify a signature: prints isValid (plus keyId and algorithm)."""
    from azure.keyvault.keys.crypto import SignatureAlgorithm

    digest_b, sig_b = _b64decode(digest, "--digest"), _b64decode(signature, "--signature")
    client, ref = target.connect()
    res = _crypto(client, ref).verify(_algorithm(SignatureAlgorithm, algorithm), digest_b, sig_b)  # type: ignore[arg-type]
    return {"algorithm": plain(res.algorithm), "isValid": res.is_valid, "keyId": res.key_id}


lifecycle_verbs.by_name(
    verbs, "rotate", "Create a new version of a key now, as its rotation policy would.",
    lambda c, r: key_bundle(c.rotate_key(r.named)),
)  # fmt: skip


@verbs.command("random", Address.VAULT)
def key_random(
    target: Target[KeyClient], count: Annotated[int, typer.Option("--count", help="How many random bytes (1-128).")]
) -> dict[str, Any]:
    """Random bytes from the vault, base64."""
    client, _ = target.connect()
    return {"value": base64.b64encode(client.get_random_bytes(count)).decode()}


lifecycle_verbs.by_name(
    rotation_verbs, "show", "Show a key's rotation policy.",
    lambda c, r: rotation_policy_dict(c.get_key_rotation_policy(r.named)),
)  # fmt: skip


@rotation_verbs.command("update")
def rotation_update(
    target: Target[KeyClient],
    value: Annotated[str, typer.Option("--value", help="The policy: JSON, or a file containing it (az's shape).")],
) -> dict[str, Any]:
    """Set a key's rotation policy."""
    from azure.keyvault.keys import KeyRotationLifetimeAction, KeyRotationPolicy

    actions, expires_in = parse_rotation_policy(value)
    client, ref = target.connect()
    policy = KeyRotationPolicy(
        lifetime_actions=[
            KeyRotationLifetimeAction(
                a.action, time_after_create=a.time_after_create, time_before_expiry=a.time_before_expiry
            )
            for a in actions
        ],
        expires_in=expires_in,
    )
    return rotation_policy_dict(client.update_key_rotation_policy(ref.named, policy))

"""Algorithm names, key types and the single capability table.

Every string that arrives from the wire (``kty``, ``crv``, ``alg``, key
operation) is parsed here, once, into an enum.  :func:`supports` is the one
place that decides whether a key family may perform an operation with an
algorithm, so the rest of the package (and the API layer) never re-derives
those rules and every misuse gets the same precise message.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Self, TypeAlias, TypeVar

from cryptography.hazmat.primitives import hashes

from kluis.crypto.errors import InvalidParameter, UnsupportedAlgorithm

__all__ = [
    "AesMode",
    "Curve",
    "EncryptionAlgorithm",
    "KeyFamily",
    "KeyOperation",
    "KeyType",
    "SignatureAlgorithm",
    "aes_key_bits_for",
    "algorithms_for",
    "curve_for",
    "digest_size_for",
    "family_of",
    "hash_for",
    "parse_algorithm",
    "supports",
]


_EnumT = TypeVar("_EnumT", bound=StrEnum)


def _parse(enum: type[_EnumT], value: str, what: str, exc: type[Exception]) -> _EnumT:
    """Exact match first, then case-insensitive (clients disagree on ``oct`` vs ``OCT``)."""
    try:
        return enum(value)
    except ValueError:
        pass
    if isinstance(value, str):
        folded = value.casefold()
        for member in enum:
            if member.value.casefold() == folded:
                return member
    allowed = ", ".join(m.value for m in enum)
    raise exc(f"Unknown {what} {value!r} (allowed: {allowed})")


class _AzureNames(StrEnum):
    """A set of Azure's names, read from the wire with ``parse``; :data:`_PARSED_AS` says what each set is
    called in messages and the error an unknown name raises."""

    @classmethod
    def parse(cls, value: str) -> Self:
        """The member named ``value`` (see :func:`_parse`); the set's error if there is none."""
        what, error = _PARSED_AS[cls]
        return _parse(cls, value, what, error)


# `duplicates` pairs these enums by shape: each spells out Azure's own names, which is the point of them.
class KeyFamily(StrEnum):
    """What the key *is*, independent of where it is protected (software or "HSM")."""

    RSA = "RSA"
    EC = "EC"
    OCT = "oct"


class KeyType(_AzureNames):
    """Azure ``kty``.  The ``-HSM`` variants use the same software implementation."""

    RSA = "RSA"
    RSA_HSM = "RSA-HSM"
    EC = "EC"
    EC_HSM = "EC-HSM"
    OCT = "oct"
    OCT_HSM = "oct-HSM"

    @property
    def family(self) -> KeyFamily:
        return _KTY_FAMILY[self]


_KTY_FAMILY: Mapping[KeyType, KeyFamily] = MappingProxyType(
    {
        KeyType.RSA: KeyFamily.RSA,
        KeyType.RSA_HSM: KeyFamily.RSA,
        KeyType.EC: KeyFamily.EC,
        KeyType.EC_HSM: KeyFamily.EC,
        KeyType.OCT: KeyFamily.OCT,
        KeyType.OCT_HSM: KeyFamily.OCT,
    }
)


def family_of(value: str) -> KeyFamily:
    """Accept a family ("RSA"/"EC"/"oct") or any ``kty`` ("RSA-HSM", ...) and return the family."""
    if isinstance(value, KeyFamily):
        return value
    return KeyType.parse(value).family


class Curve(_AzureNames):
    """Azure ``crv`` names.  ``P-256K`` is secp256k1."""

    P_256 = "P-256"
    P_384 = "P-384"
    P_521 = "P-521"
    P_256K = "P-256K"

    @property
    def bits(self) -> int:
        """Size of the curve order in bits (what Azure reports as the EC key size)."""
        return _CURVE_BITS[self]

    @property
    def byte_length(self) -> int:
        """Length of one coordinate / one half of a raw ``r||s`` signature."""
        return (self.bits + 7) // 8


_CURVE_BITS: Mapping[Curve, int] = MappingProxyType(
    {Curve.P_256: 256, Curve.P_384: 384, Curve.P_521: 521, Curve.P_256K: 256}
)


class EncryptionAlgorithm(_AzureNames):
    """Algorithms for encrypt / decrypt / wrapKey / unwrapKey."""

    RSA_OAEP = "RSA-OAEP"
    RSA_OAEP_256 = "RSA-OAEP-256"
    RSA1_5 = "RSA1_5"
    A128GCM = "A128GCM"
    A192GCM = "A192GCM"
    A256GCM = "A256GCM"
    A128KW = "A128KW"
    A192KW = "A192KW"
    A256KW = "A256KW"
    A128CBC = "A128CBC"
    A192CBC = "A192CBC"
    A256CBC = "A256CBC"
    A128CBCPAD = "A128CBCPAD"
    A192CBCPAD = "A192CBCPAD"
    A256CBCPAD = "A256CBCPAD"
    CKM_AES_KEY_WRAP = "CKM_AES_KEY_WRAP"
    CKM_AES_KEY_WRAP_PAD = "CKM_AES_KEY_WRAP_PAD"

    @property
    def aes_mode(self) -> AesMode | None:
        """How an AES algorithm uses its key; None for the RSA ones."""
        return _AES_MODES.get(self)


class AesMode(StrEnum):
    """The AES modes, spelt as the algorithm names end: ``A256GCM`` is GCM."""

    GCM = "GCM"
    CBC = "CBC"  # without padding: data must be block aligned
    CBC_PAD = "CBCPAD"  # PKCS#7 padding
    KEY_WRAP = "KW"  # RFC 3394 / RFC 5649 AES key wrap, as are CKM_AES_KEY_WRAP and CKM_AES_KEY_WRAP_PAD


class SignatureAlgorithm(_AzureNames):
    """Algorithms for sign / verify."""

    PS256 = "PS256"
    PS384 = "PS384"
    PS512 = "PS512"
    RS256 = "RS256"
    RS384 = "RS384"
    RS512 = "RS512"
    RSNULL = "RSNULL"
    ES256 = "ES256"
    ES256K = "ES256K"
    ES384 = "ES384"
    ES512 = "ES512"
    HS256 = "HS256"
    HS384 = "HS384"
    HS512 = "HS512"


class KeyOperation(_AzureNames):
    """Azure ``key_ops`` values."""

    ENCRYPT = "encrypt"
    DECRYPT = "decrypt"
    SIGN = "sign"
    VERIFY = "verify"
    WRAP_KEY = "wrapKey"
    UNWRAP_KEY = "unwrapKey"
    IMPORT = "import"
    EXPORT = "export"


_E = EncryptionAlgorithm
_S = SignatureAlgorithm
#: The AES algorithms' modes: A<bits><mode> by name, and the two PKCS#11 key-wrap mechanisms.
_AES_MODES: Mapping[EncryptionAlgorithm, AesMode] = MappingProxyType(
    {alg: AesMode(alg.value[4:]) for alg in EncryptionAlgorithm if alg.value[1:4].isdigit()}
    | {_E.CKM_AES_KEY_WRAP: AesMode.KEY_WRAP, _E.CKM_AES_KEY_WRAP_PAD: AesMode.KEY_WRAP}
)


def _in_mode(mode: AesMode) -> frozenset[EncryptionAlgorithm]:
    return frozenset(alg for alg, its in _AES_MODES.items() if its is mode)


_GCM, _CBC, _CBC_PAD, _KW = map(_in_mode, (AesMode.GCM, AesMode.CBC, AesMode.CBC_PAD, AesMode.KEY_WRAP))
_RSA_CIPHER = frozenset({_E.RSA1_5, _E.RSA_OAEP, _E.RSA_OAEP_256})
_RSA_SIGN = frozenset({_S.PS256, _S.PS384, _S.PS512, _S.RS256, _S.RS384, _S.RS512, _S.RSNULL})
_EC_SIGN = frozenset({_S.ES256, _S.ES256K, _S.ES384, _S.ES512})
_HMAC_SIGN = frozenset({_S.HS256, _S.HS384, _S.HS512})
_AES_CIPHER = _GCM | _CBC | _CBC_PAD

#: What each set of names is called in an unknown name's message, and the error that raises.
_PARSED_AS: Mapping[type[_AzureNames], tuple[str, type[Exception]]] = MappingProxyType(
    {
        KeyType: ("key type", InvalidParameter),
        Curve: ("curve", InvalidParameter),
        EncryptionAlgorithm: ("encryption algorithm", UnsupportedAlgorithm),
        SignatureAlgorithm: ("signature algorithm", UnsupportedAlgorithm),
        KeyOperation: ("key operation", InvalidParameter),
    }
)

Algorithm: TypeAlias = EncryptionAlgorithm | SignatureAlgorithm

_OP = KeyOperation

#: THE capability table: family -> operation -> algorithms allowed.
#: Operations absent for a family (e.g. EC encrypt) are not supported at all.
#: ``import``/``export`` are key-level operations without an algorithm.
CAPABILITIES: Mapping[KeyFamily, Mapping[KeyOperation, frozenset[Algorithm]]] = MappingProxyType(
    {
        KeyFamily.RSA: MappingProxyType(
            {
                _OP.ENCRYPT: _RSA_CIPHER,
                _OP.DECRYPT: _RSA_CIPHER,
                _OP.WRAP_KEY: _RSA_CIPHER,
                _OP.UNWRAP_KEY: _RSA_CIPHER,
                _OP.SIGN: _RSA_SIGN,
                _OP.VERIFY: _RSA_SIGN,
            }
        ),
        KeyFamily.EC: MappingProxyType({_OP.SIGN: _EC_SIGN, _OP.VERIFY: _EC_SIGN}),
        KeyFamily.OCT: MappingProxyType(
            {
                _OP.ENCRYPT: _AES_CIPHER,
                _OP.DECRYPT: _AES_CIPHER,
                _OP.WRAP_KEY: _KW | _AES_CIPHER,
                _OP.UNWRAP_KEY: _KW | _AES_CIPHER,
                _OP.SIGN: _HMAC_SIGN,
                _OP.VERIFY: _HMAC_SIGN,
            }
        ),
    }
)

_SIGNING_OPS = frozenset({_OP.SIGN, _OP.VERIFY})
_CIPHER_OPS = frozenset({_OP.ENCRYPT, _OP.DECRYPT, _OP.WRAP_KEY, _OP.UNWRAP_KEY})

_HASHES: Mapping[Algorithm, type[hashes.HashAlgorithm]] = MappingProxyType(
    {
        _S.PS256: hashes.SHA256,
        _S.PS384: hashes.SHA384,
        _S.PS512: hashes.SHA512,
        _S.RS256: hashes.SHA256,
        _S.RS384: hashes.SHA384,
        _S.RS512: hashes.SHA512,
        _S.ES256: hashes.SHA256,
        _S.ES256K: hashes.SHA256,
        _S.ES384: hashes.SHA384,
        _S.ES512: hashes.SHA512,
        _S.HS256: hashes.SHA256,
        _S.HS384: hashes.SHA384,
        _S.HS512: hashes.SHA512,
        _E.RSA_OAEP: hashes.SHA1,
        _E.RSA_OAEP_256: hashes.SHA256,
    }
)

_EC_CURVES: Mapping[SignatureAlgorithm, Curve] = MappingProxyType(
    {_S.ES256: Curve.P_256, _S.ES256K: Curve.P_256K, _S.ES384: Curve.P_384, _S.ES512: Curve.P_521}
)

_AES_BITS: Mapping[EncryptionAlgorithm, int] = MappingProxyType(
    {alg: int(alg.value[1:4]) for alg in EncryptionAlgorithm if alg.value[0] == "A" and alg.value[1:4].isdigit()}
)


def _lookup(algorithm: str) -> Algorithm | None:
    """Find ``algorithm`` in either namespace (the names never collide)."""
    for enum in (SignatureAlgorithm, EncryptionAlgorithm):
        try:
            return enum.parse(algorithm)
        except UnsupportedAlgorithm:
            continue
    return None


def _ordered(algs: frozenset[Algorithm]) -> str:
    order = [*SignatureAlgorithm, *EncryptionAlgorithm]
    return ", ".join(a for a in order if a in algs)


def parse_algorithm(operation: KeyOperation | str, algorithm: str) -> Algorithm:
    """Parse ``algorithm`` in the namespace that ``operation`` uses (signature or encryption)."""
    op = KeyOperation.parse(operation)
    if op not in _SIGNING_OPS | _CIPHER_OPS:
        raise UnsupportedAlgorithm(f"Operation {op} does not use an algorithm")
    alg = _lookup(algorithm)
    if alg is None:
        raise UnsupportedAlgorithm(f"Unknown algorithm {algorithm!r}")
    if isinstance(alg, SignatureAlgorithm) != (op in _SIGNING_OPS):
        raise UnsupportedAlgorithm(f"Algorithm {alg} cannot be used for operation {op}")
    return alg


def hash_for(algorithm: str) -> hashes.HashAlgorithm:
    """The hash an algorithm is defined over (signature hash, or the OAEP hash)."""
    alg = _lookup(algorithm)
    if alg is None:
        raise UnsupportedAlgorithm(f"Unknown algorithm {algorithm!r}")
    try:
        return _HASHES[alg]()
    except KeyError:
        raise UnsupportedAlgorithm(f"Algorithm {alg} does not use a hash function") from None


def digest_size_for(algorithm: str) -> int:
    """Length in bytes of the digest a signature algorithm expects (32/48/64)."""
    return hash_for(algorithm).digest_size


def curve_for(algorithm: str) -> Curve:
    """The one curve an ES* algorithm is defined on."""
    alg = SignatureAlgorithm.parse(algorithm)
    try:
        return _EC_CURVES[alg]
    except KeyError:
        raise UnsupportedAlgorithm(f"Algorithm {alg} is not an ECDSA algorithm") from None


def aes_key_bits_for(algorithm: str) -> int | None:
    """Key size an AES algorithm pins (A128* -> 128), or None for CKM_* (any AES key)."""
    return _AES_BITS.get(EncryptionAlgorithm.parse(algorithm))


def algorithms_for(family: str, operation: KeyOperation | str) -> frozenset[Algorithm]:
    """All algorithms the table allows for ``family`` and ``operation`` (empty if none)."""
    return CAPABILITIES[family_of(family)].get(KeyOperation.parse(operation), frozenset())


def supports(
    family: str,
    operation: KeyOperation,
    algorithm: str,
    *,
    curve: Curve | None = None,
    key_size: int | None = None,
) -> None:
    """Raise unless a ``family`` key may ``operation`` with ``algorithm``; return None when it fits.

    ``curve`` (EC) and ``key_size`` (oct, in bits) are checked when given, so a
    P-384 key asked for ES256, or a 256-bit AES key asked for A128GCM, fails
    with :class:`InvalidParameter` before any crypto runs.
    """
    fam = family_of(family)
    op = KeyOperation.parse(operation)
    if op not in _SIGNING_OPS | _CIPHER_OPS:
        raise UnsupportedAlgorithm(f"Operation {op} does not use an algorithm")
    allowed = CAPABILITIES[fam].get(op)
    if not allowed:
        raise UnsupportedAlgorithm(f"Operation {op} is not supported by key type {fam}")
    alg = _lookup(algorithm)
    if alg is None:
        raise UnsupportedAlgorithm(
            f"Unknown algorithm {algorithm!r}; key type {fam} supports {_ordered(allowed)} for {op}"
        )
    if alg not in allowed:
        if any(alg in algs for algs in CAPABILITIES[fam].values()):
            raise UnsupportedAlgorithm(f"Algorithm {alg} cannot be used for operation {op}")
        raise UnsupportedAlgorithm(f"Algorithm {alg} is not supported by key type {fam}")

    if fam is KeyFamily.EC and curve is not None:
        assert isinstance(alg, SignatureAlgorithm)
        expected = _EC_CURVES[alg]
        if Curve.parse(curve) is not expected:
            raise InvalidParameter(
                f"Key size is incorrect for algorithm {alg}: it requires curve {expected}, "
                f"but the key uses curve {curve}"
            )
    if fam is KeyFamily.OCT and key_size is not None and isinstance(alg, EncryptionAlgorithm):
        bits = _AES_BITS.get(alg)
        if bits is not None and bits != key_size:
            raise InvalidParameter(
                f"Key size is incorrect for algorithm {alg}: it requires a {bits}-bit key, "
                f"but the key is {key_size} bits"
            )

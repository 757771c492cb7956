"""Shared, session-scoped keys: RSA generation is slow, so each size is made once."""

from __future__ import annotations

import pytest

from kluis.crypto import Curve, KeyMaterial, KeyType, generate


@pytest.fixture(scope="session")
def rsa2048() -> KeyMaterial:
    return generate(KeyType.RSA, size=2048)


@pytest.fixture(scope="session")
def rsa2048_other() -> KeyMaterial:
    return generate(KeyType.RSA, size=2048)


@pytest.fixture(scope="session")
def rsa3072() -> KeyMaterial:
    return generate(KeyType.RSA, size=3072)


@pytest.fixture(scope="session")
def ec_keys() -> dict[Curve, KeyMaterial]:
    return {curve: generate(KeyType.EC, curve=curve) for curve in Curve}


@pytest.fixture(scope="session")
def oct_keys() -> dict[int, KeyMaterial]:
    return {bits: generate(KeyType.OCT, size=bits) for bits in (128, 192, 256)}

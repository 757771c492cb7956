from __future__ import annotations

import pytest

from kluis.crypto.errors import (
    CryptoError,
    InvalidKey,
    InvalidParameter,
    OperationFailed,
    UnsupportedAlgorithm,
)


@pytest.mark.parametrize("cls", [InvalidKey, UnsupportedAlgorithm, InvalidParameter, OperationFailed])
def test_flat_hierarchy_with_message(cls: type[CryptoError]) -> None:
    err = cls("something human")
    assert isinstance(err, CryptoError)
    assert cls.__mro__[1] is CryptoError
    assert err.message == "something human"
    assert str(err) == "something human"

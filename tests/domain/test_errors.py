"""Domain errors carry Azure's code (overridable), a message and an optional inner code; no HTTP here."""

from __future__ import annotations

import pytest

from kluis.domain.errors import (
    BadParameter,
    Conflict,
    Forbidden,
    NotFound,
    VaultError,
)


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (VaultError, "InternalError"),
        (BadParameter, "BadParameter"),
        (Forbidden, "Forbidden"),
        (NotFound, "NotFound"),
        (Conflict, "Conflict"),
    ],
)
def test_default_codes(cls: type[VaultError], code: str) -> None:
    err = cls("went wrong")
    assert err.code == code and err.message == "went wrong" and str(err) == "went wrong" and err.inner_code is None
    assert isinstance(err, VaultError)


def test_code_and_inner_code_are_per_instance() -> None:
    err = NotFound("m", code="KeyNotFound", inner_code="Inner")
    assert (err.code, err.inner_code) == ("KeyNotFound", "Inner")
    assert NotFound("m").code == "NotFound"  # the override did not leak into the class

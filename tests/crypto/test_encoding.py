from __future__ import annotations

import pytest

from kluis.crypto.encoding import b64url_decode, b64url_decode_int, b64url_encode, b64url_encode_int
from kluis.crypto.errors import InvalidParameter


def test_encode_is_urlsafe_without_padding() -> None:
    assert b64url_encode(b"\xfb\xff\xfe") == "-__-"
    assert b64url_encode(b"a") == "YQ"
    assert b64url_encode(b"") == ""


@pytest.mark.parametrize("text", ["-__-", "+//+", "-__-\n", "YQ", "YQ==", "YQ="])
def test_decode_is_tolerant(text: str) -> None:
    expected = b"\xfb\xff\xfe" if text.strip("\n") in ("-__-", "+//+") else b"a"
    assert b64url_decode(text) == expected


@pytest.mark.parametrize("text", ["!!!!", "a", "abcde", "ä", "YQ==YQ"])
def test_decode_rejects_garbage(text: str) -> None:
    with pytest.raises(InvalidParameter):
        b64url_decode(text)


def test_decode_rejects_non_string() -> None:
    with pytest.raises(InvalidParameter):
        b64url_decode(b"YQ")  # type: ignore[arg-type]


def test_integers() -> None:
    assert b64url_encode_int(65537) == "AQAB"
    assert b64url_encode_int(0) == "AA"
    assert b64url_encode_int(1, 4) == "AAAAAQ"
    assert b64url_decode_int("AQAB") == 65537
    with pytest.raises(ValueError):
        b64url_encode_int(-1)

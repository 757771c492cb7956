from __future__ import annotations

import pytest

from kluis.domain.durations import parse_duration
from kluis.domain.errors import BadParameter


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("P90D", 90 * 86400), ("P1Y", 365 * 86400), ("P3M", 90 * 86400), ("PT48H", 48 * 3600),
     ("P1Y10D", 375 * 86400), ("P2W", 14 * 86400), ("PT1M30S", 90), ("p7d", 7 * 86400)],
)  # fmt: skip
def test_valid(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "90D", "P1.5D", "P0D", "P1DT", "-P1D", "PXD"])
def test_invalid(text: str) -> None:
    with pytest.raises(BadParameter):
        parse_duration(text)

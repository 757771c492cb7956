from __future__ import annotations

import pytest

from kluis.api.versions import LATEST_API_VERSION, PUBLISHED, check_api_version
from kluis.domain.errors import BadParameter


@pytest.mark.parametrize(
    "version",
    ["7.0", "7.4", "7.6-preview.2", "2016-10-01", "2025-07-01", "2026-04-01", "2026-05-01-preview", "7.5-preview.1"],
)
def test_published_versions_are_accepted(version: str) -> None:
    assert check_api_version(version) == version


@pytest.mark.parametrize(
    "version",
    [None, "", "abc", "1999-01-01", "8", "7.6.1", "7.7", "7.9", "7.6-preview.9", "2031-02-30", "2026-04-02", "7.4 "],
)
def test_anything_else_is_bad_parameter_in_azures_words(version: str | None) -> None:
    with pytest.raises(BadParameter) as err:
        check_api_version(version)
    if version:
        assert err.value.message == (
            f"The specified version ({version}) is not recognized. Consider using the latest supported version "
            f"({LATEST_API_VERSION})."
        )


def test_the_latest_is_published() -> None:
    assert LATEST_API_VERSION in PUBLISHED

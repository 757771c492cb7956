"""The data-plane api-versions kluis serves: Azure's published set, in one table.

``api-version`` is a required query parameter on every operation (REST spec,
``ApiVersionParameter``). Azure answers a version it does not serve with 400 ``BadParameter``
"The specified version (X) is not recognized. Consider using the latest supported version (Y)."
(the wording quoted in public reports; see ../shared/reference/rest-contract.md section 0).

Sources for the set: the stable and preview folders of the Key Vault data-plane specs
(7.0 ... 7.6, 2025-07-01, 2026-04-01, and their previews), the ``ApiVersion`` enums of the SDKs
(azure-keyvault-keys 4.11 defaults to 2025-07-01, -secrets / -certificates 4.12 to 2026-04-01),
and what ``az`` 2.91 sends (7.6-preview.2 for keys, 7.4 for secrets). When a new SDK release sends
a version that is not here, add it to ``PUBLISHED`` (one line).
"""

from __future__ import annotations

from kluis.domain.errors import BadParameter

__all__ = ["LATEST_API_VERSION", "PUBLISHED", "check_api_version"]

LATEST_API_VERSION = "2026-04-01"

# fmt: off
PUBLISHED: frozenset[str] = frozenset({
    "2015-06-01", "2016-10-01",
    "7.0-preview", "7.0", "7.1-preview", "7.1", "7.2-preview", "7.2", "7.3-preview", "7.3",
    "7.4-preview.1", "7.4", "7.5-preview.1", "7.5", "7.6-preview.1", "7.6-preview.2", "7.6",
    "2025-07-01",
    "2026-01-01-preview", "2026-04-01", "2026-05-01-preview", "2026-07-01-preview",
})
# fmt: on


def check_api_version(value: str | None) -> str:
    """``value`` if Azure publishes it for the data plane; BadParameter (400) otherwise."""
    if not value:
        raise BadParameter(
            f"The 'api-version' query parameter is missing. The latest supported version is {LATEST_API_VERSION}."
        )
    if value not in PUBLISHED:
        raise BadParameter(
            f"The specified version ({value}) is not recognized. Consider using the latest supported "
            f"version ({LATEST_API_VERSION})."
        )
    return value

"""ISO-8601 durations as rotation policies use them (``P90D``, ``P1Y10D``, ``PT48H``).

Key Vault computes with calendar-free lengths; a year is 365 days and a month 30 days here.
"""

from __future__ import annotations

import re

from kluis.domain.errors import BadParameter

__all__ = ["parse_duration"]

_DURATION = re.compile(
    r"^P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)
_SECONDS = {"y": 365 * 86400, "mo": 30 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "mi": 60, "s": 1}


def parse_duration(text: str) -> int:
    """Seconds in ``text``; BadParameter for anything that is not a positive ISO-8601 duration."""
    m = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if m is None or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
        raise BadParameter(f"'{text}' is not a valid ISO-8601 duration (for example P90D, P1Y, PT48H).")
    total = sum(int(v) * _SECONDS[k] for k, v in m.groupdict().items() if v)
    if total <= 0:
        raise BadParameter(f"Duration '{text}' must be greater than zero.")
    return total

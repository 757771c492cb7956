"""ISO-8601 durations as rotation policies use them (``P90D``, ``P1Y10D``, ``PT48H``).

Key Vault computes with calendar-free lengths; a year is 365 days and a month 30 days here.
Every duration is range-checked where it enters: at most ``MAX_DURATION`` seconds (1,000 years),
so adding one to any time kluis accepts (up to 9999-12-31) stays a 64-bit integer, and at most 20
digits per component, so no client string makes an unbounded integer. Azure documents no upper
bound; 1,000 years admits every policy that can ever fire.
"""

from __future__ import annotations

import re

from kluis.domain.errors import BadParameter

__all__ = ["MAX_DURATION", "parse_duration"]

_DURATION = re.compile(
    r"^P(?:(?P<y>\d{1,20})Y)?(?:(?P<mo>\d{1,20})M)?(?:(?P<w>\d{1,20})W)?(?:(?P<d>\d{1,20})D)?"
    r"(?:T(?:(?P<h>\d{1,20})H)?(?:(?P<mi>\d{1,20})M)?(?:(?P<s>\d{1,20})S)?)?$"
)
_SECONDS = {"y": 365 * 86400, "mo": 30 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "mi": 60, "s": 1}
MAX_DURATION = 1000 * 365 * 86400  # seconds: P1000Y
_MAX_TEXT = 64  # characters; longer strings are refused before any parsing


def parse_duration(text: object) -> int:
    """Seconds in ``text`` (1 .. MAX_DURATION); BadParameter for anything that is not a positive
    ISO-8601 duration of at most 1,000 years (P1000Y)."""
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        shown = text if isinstance(text, str) and len(text) <= _MAX_TEXT else f"{str(text)[:20]}..."
        raise BadParameter(f"'{shown}' is not a valid ISO-8601 duration (for example P90D, P1Y, PT48H).")
    upper = text.strip().upper()
    m = _DURATION.match(upper)
    if m is None or upper in ("P", "PT") or upper.endswith("T"):
        raise BadParameter(f"'{text}' is not a valid ISO-8601 duration (for example P90D, P1Y, PT48H).")
    total = sum(int(v) * _SECONDS[k] for k, v in m.groupdict().items() if v)
    if total <= 0:
        raise BadParameter(f"Duration '{text}' must be greater than zero.")
    if total > MAX_DURATION:
        raise BadParameter(f"Duration '{text}' is too long: at most 1000 years (P1000Y) is accepted.")
    return total

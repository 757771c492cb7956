from __future__ import annotations

from typing import Any

import pytest

from kluis.domain.errors import BadParameter
from kluis.domain.keys.rotation import RotationPolicy, parse_policy

DAY = 86400


def _rotate(trigger: dict[str, str], expiry: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"lifetimeActions": [{"trigger": trigger, "action": {"type": "Rotate"}}], "attributes": {}}
    if expiry:
        body["attributes"]["expiryTime"] = expiry
    return body


def test_time_after_create_schedules_from_creation() -> None:
    p = parse_policy(_rotate({"timeAfterCreate": "P30D"}, "P90D"))
    assert p.next_rotation(created=1000, exp=None) == 1000 + 30 * DAY
    assert p.expiry_time == 90 * DAY
    assert RotationPolicy.from_json(p.to_json()).rotate_after_create == 30 * DAY


def test_time_before_expiry_needs_an_expiry() -> None:
    p = parse_policy(_rotate({"timeBeforeExpiry": "P10D"}, "P60D"))
    assert p.next_rotation(created=0, exp=None) is None
    assert p.next_rotation(created=0, exp=100 * DAY) == 90 * DAY


def test_action_type_is_case_insensitive_and_normalised() -> None:
    body = {"lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "notify"}}]}
    assert parse_policy(body).document["lifetimeActions"][0]["action"]["type"] == "Notify"


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"lifetimeActions": "x"},
        _rotate({"timeAfterCreate": "P1D"}),
        _rotate({"timeAfterCreate": "P30D"}, "P7D"),
        _rotate({"timeAfterCreate": "P30D", "timeBeforeExpiry": "P30D"}),
        _rotate({}),
        {"lifetimeActions": [{"trigger": {"timeAfterCreate": "P30D"}, "action": {"type": "Notify"}}]},
        {"lifetimeActions": [{"trigger": {"timeAfterCreate": "P30D"}, "action": {"type": "Explode"}}]},
        {"lifetimeActions": [{"trigger": {"timeAfterCreate": "P30D"}, "action": {"type": "Rotate"}}] * 2},
        {"lifetimeActions": [{}, {}, {}]},
        _rotate({"timeAfterCreate": "banana"}),
    ],
)
def test_invalid_policies_are_bad_parameter(body: Any) -> None:
    with pytest.raises(BadParameter):
        parse_policy(body)

"""Rotation policies: validation of what a caller sends, and when the next rotation is due."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kluis.domain.durations import parse_duration
from kluis.domain.errors import BadParameter

__all__ = ["DEFAULT_POLICY", "RotationPolicy", "parse_policy"]

_DAY = 86400
# What Key Vault answers for a key that never had a policy set: notify 30 days before expiry.
DEFAULT_POLICY: dict[str, Any] = {
    "lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}],
    "attributes": {},
}


@dataclass
class RotationPolicy:
    """A validated policy; ``document`` is what GET returns (without id and timestamps)."""

    document: dict[str, Any]
    rotate_after_create: int | None = None
    rotate_before_expiry: int | None = None
    expiry_time: int | None = None

    def next_rotation(self, *, created: int, exp: int | None) -> int | None:
        """When the current version (created at ``created``, expiring at ``exp``) must be rotated."""
        if self.rotate_after_create is not None:
            return created + self.rotate_after_create
        if self.rotate_before_expiry is not None and exp is not None:
            return exp - self.rotate_before_expiry
        return None

    def to_json(self) -> str:
        return json.dumps(self.document, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RotationPolicy:
        return parse_policy(json.loads(text))


def parse_policy(body: Any) -> RotationPolicy:
    """Validate a KeyRotationPolicy body as Key Vault does; BadParameter names the first problem."""
    if not isinstance(body, dict):
        raise BadParameter("The rotation policy must be a JSON object.")
    actions = body.get("lifetimeActions") or []
    attributes = body.get("attributes") or {}
    if not isinstance(actions, list) or not isinstance(attributes, dict):
        raise BadParameter("lifetimeActions must be an array and attributes an object.")
    if len(actions) > 2:
        raise BadParameter("A rotation policy can have at most two lifetime actions: one rotate, one notify.")
    policy = RotationPolicy(document={"lifetimeActions": [], "attributes": {}})
    expiry = attributes.get("expiryTime")
    if expiry is not None:
        if not isinstance(expiry, str):
            raise BadParameter("attributes.expiryTime must be an ISO-8601 duration string.")
        policy.expiry_time = parse_duration(expiry)
        if policy.expiry_time < 28 * _DAY:
            raise BadParameter("attributes.expiryTime must be at least 28 days (P28D).")
        policy.document["attributes"]["expiryTime"] = expiry
    seen: set[str] = set()
    for action in actions:
        if not isinstance(action, dict):
            raise BadParameter("Each lifetime action must be an object with trigger and action.")
        action_body = action.get("action") or {}
        if not isinstance(action_body, dict):
            raise BadParameter("action must be an object with a type.")
        kind_raw = action_body.get("type")
        if not isinstance(kind_raw, str) or kind_raw.lower() not in ("rotate", "notify"):
            shown = kind_raw if isinstance(kind_raw, str) and len(kind_raw) <= 40 else "<other>"
            raise BadParameter(f"Lifetime action type must be Rotate or Notify, not {shown!r}.")
        kind = "Rotate" if kind_raw.lower() == "rotate" else "Notify"
        if kind in seen:
            raise BadParameter(f"A rotation policy can have only one {kind} action.")
        seen.add(kind)
        trigger = action.get("trigger") or {}
        if not isinstance(trigger, dict):
            raise BadParameter("trigger must be an object.")
        after = trigger.get("timeAfterCreate")
        before = trigger.get("timeBeforeExpiry")
        if (after is None) == (before is None):
            raise BadParameter("Each trigger needs exactly one of timeAfterCreate or timeBeforeExpiry.")
        out_trigger: dict[str, Any] = {}
        if after is not None:
            if kind != "Rotate":
                raise BadParameter("timeAfterCreate applies only to the Rotate action.")
            seconds = parse_duration(after)
            if seconds < 7 * _DAY:
                raise BadParameter("The rotation time must be at least 7 days after creation (P7D).")
            if policy.expiry_time is not None and policy.expiry_time - seconds < 7 * _DAY:
                raise BadParameter("The rotation time must be at least 7 days before the expiry time.")
            policy.rotate_after_create = seconds
            out_trigger["timeAfterCreate"] = after
        else:
            seconds = parse_duration(before)
            if seconds < 7 * _DAY:
                raise BadParameter("timeBeforeExpiry must be at least 7 days (P7D).")
            if kind == "Rotate":
                if policy.expiry_time is not None and policy.expiry_time - seconds < 7 * _DAY:
                    raise BadParameter("Rotation must happen at least 7 days after creation.")
                policy.rotate_before_expiry = seconds
            out_trigger["timeBeforeExpiry"] = before
        policy.document["lifetimeActions"].append({"trigger": out_trigger, "action": {"type": kind}})
    if "Notify" not in seen:  # Key Vault adds its default notification when the caller names none
        policy.document["lifetimeActions"].append(json.loads(json.dumps(DEFAULT_POLICY["lifetimeActions"][0])))
    return policy

"""Property tests: every parser of client numbers, durations and times either returns a value in
its documented range or raises the client error (BadParameter / InvalidToken), never anything else."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kluis.api.wire import MAX_UNIX_TIME, attribute_changes, int_field
from kluis.domain.durations import MAX_DURATION, parse_duration
from kluis.domain.errors import BadParameter
from kluis.domain.keys.operations import KeyOperations
from kluis.domain.keys.rotation import parse_policy
from kluis.domain.lifecycle import page_size
from kluis.domain.views import Changes
from kluis.identity.tokens import InvalidToken, TokenVerifier

NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
)
DURATION_TEXT = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"\AP(\d{1,30}Y)?(\d{1,30}M)?(\d{1,30}W)?(\d{1,30}D)?(T(\d{1,30}H)?(\d{1,30}M)?(\d{1,30}S)?)?\Z"),
    st.builds(lambda n, u: f"P{n}{u}", st.integers(min_value=0, max_value=10**25), st.sampled_from("YMWD")),
    st.builds(lambda n: "P" + "9" * n + "D", st.integers(min_value=1, max_value=5000)),
)


@settings(max_examples=400, deadline=None)
@given(DURATION_TEXT)
def test_durations_are_bounded_or_refused(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except BadParameter as e:
        assert len(e.message) < 200
        return
    assert 1 <= seconds <= MAX_DURATION


@settings(max_examples=200, deadline=None)
@given(NUMBERS)
def test_durations_refuse_non_strings(value: Any) -> None:
    if isinstance(value, str):
        return
    with pytest.raises(BadParameter):
        parse_duration(value)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["nbf", "exp", "enabled"]), NUMBERS, max_size=3))
def test_attribute_times_are_in_range_or_refused(attrs: dict[str, Any]) -> None:
    changes = Changes()
    try:
        attribute_changes({"attributes": attrs}, changes)
    except BadParameter:
        return
    for name in ("nbf", "exp"):
        value = getattr(changes, name)
        if name in attrs and attrs[name] is not None:
            assert isinstance(value, int) and 0 <= value <= MAX_UNIX_TIME


@settings(max_examples=200, deadline=None)
@given(NUMBERS)
def test_int_fields_are_ints_or_refused(value: Any) -> None:
    try:
        out = int_field({"key_size": value}, "key_size")
    except BadParameter:
        return
    assert out is None or (isinstance(out, int) and not isinstance(out, bool))


@settings(max_examples=200, deadline=None)
@given(NUMBERS)
def test_random_byte_counts(value: Any) -> None:
    try:
        out = KeyOperations.random_bytes(value)
    except BadParameter:
        return
    assert 1 <= len(out) <= 128


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.integers(min_value=-(10**30), max_value=10**30)))
def test_page_sizes(value: int | None) -> None:
    try:
        size = page_size(value)
    except BadParameter:
        return
    assert 1 <= size <= 25


POLICY_VALUES = st.one_of(DURATION_TEXT, NUMBERS)


@settings(max_examples=300, deadline=None)
@given(
    expiry=POLICY_VALUES,
    trigger=st.sampled_from(["timeAfterCreate", "timeBeforeExpiry", "other"]),
    when=POLICY_VALUES,
    action=st.one_of(st.sampled_from(["Rotate", "notify", "x"]), NUMBERS),
)
def test_rotation_policies_are_bounded_or_refused(expiry: Any, trigger: str, when: Any, action: Any) -> None:
    body = {
        "attributes": {"expiryTime": expiry},
        "lifetimeActions": [{"trigger": {trigger: when}, "action": {"type": action}}],
    }
    try:
        policy = parse_policy(body)
    except BadParameter:
        return
    for seconds in (policy.expiry_time, policy.rotate_after_create, policy.rotate_before_expiry):
        assert seconds is None or 1 <= seconds <= MAX_DURATION
    due = policy.next_rotation(created=MAX_UNIX_TIME, exp=MAX_UNIX_TIME)
    assert due is None or abs(due) < 2**63  # always storable as a SQLite integer


@pytest.fixture(scope="module")
def verifier() -> TokenVerifier:
    from kluis.identity.tokens import new_signing_key

    return TokenVerifier.from_signing_key(new_signing_key(), tenant_id="t", key_id="k")


@settings(max_examples=300, deadline=None)
@given(exp=NUMBERS, nbf=NUMBERS, iat=NUMBERS)
def test_token_times_are_bounded_or_refused(verifier: TokenVerifier, exp: Any, nbf: Any, iat: Any) -> None:
    payload = {
        "aud": "a",
        "iss": verifier.issuer,
        "tid": "t",
        "oid": "o",
        "appid": "p",
        "exp": exp,
        "nbf": nbf,
        "iat": iat,
    }
    try:
        claims = verifier._claims_from_payload(payload)
    except InvalidToken:
        return
    for value in (claims.expires_at, claims.not_before, claims.issued_at):
        assert 0 <= value <= 253402300799
    assert not any(isinstance(v, float) and math.isnan(v) for v in (exp, nbf, iat))

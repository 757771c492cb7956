from __future__ import annotations

import pytest

from kluis.domain.errors import BadParameter
from kluis.domain.keys.release import policy_allows

A = "https://attest.example"
POLICY = {
    "version": "1.0.0",
    "anyOf": [{"authority": A, "allOf": [{"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
                                         {"claim": "x-ms-runtime.debug", "equals": False}]}],
}  # fmt: skip


def test_policy_matches_issuer_and_claims() -> None:
    claims = {"iss": A, "x-ms-attestation-type": "sevsnpvm", "x-ms-runtime": {"debug": False}}
    assert policy_allows(POLICY, claims)
    assert not policy_allows(POLICY, {**claims, "iss": "https://other.example"})
    assert not policy_allows(POLICY, {**claims, "x-ms-runtime": {"debug": True}})
    assert not policy_allows(POLICY, {"iss": A})


def test_malformed_policy_is_bad_parameter() -> None:
    with pytest.raises(BadParameter):
        policy_allows({"version": "1.0.0"}, {"iss": A})
    with pytest.raises(BadParameter):
        policy_allows({"anyOf": [{"authority": A, "allOf": [{"equals": 1}]}]}, {"iss": A})

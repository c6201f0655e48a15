"""N-tier decisions and the escalation that trades cost for safety on unfamiliar or unsure prompts."""

from __future__ import annotations

import pytest

from gearshift.errors import ConfigError
from gearshift.routers.base import RoutingScore
from gearshift.routers.policy import TierPolicy

THREE = TierPolicy(tiers=("small", "medium", "large"), thresholds=(0.3, 0.7))


def score(p: float, confidence: float = 1.0, ood: float | None = None) -> RoutingScore:
    return RoutingScore(p_strong=p, confidence=confidence, reason="test", ood=ood)


@pytest.mark.parametrize(
    ("p", "tier"), [(0.0, "small"), (0.29, "small"), (0.3, "medium"), (0.69, "medium"), (0.7, "large"), (1.0, "large")]
)
def test_three_tiers(p: float, tier: str) -> None:
    d = THREE.decide(score(p))
    assert d.tier == tier and not d.escalated
    assert THREE.tiers[d.tier_index] == tier
    assert int(THREE.tier_indices([p])[0]) == d.tier_index


def test_ood_escalates_one_tier_and_says_why() -> None:
    policy = TierPolicy(tiers=THREE.tiers, thresholds=THREE.thresholds, ood_escalate=2.0)
    d = policy.decide(score(0.1, ood=3.5))
    assert (d.tier, d.escalated) == ("medium", True) and "out of distribution" in d.reason
    assert not policy.decide(score(0.1, ood=1.0)).escalated
    assert not policy.decide(score(0.1, ood=None)).escalated  # routers without an OOD notion
    top = policy.decide(score(0.9, ood=9.0))
    assert (top.tier, top.escalated) == ("large", False)


def test_low_confidence_escalates() -> None:
    policy = TierPolicy(min_confidence=0.5)
    d = policy.decide(score(0.2, confidence=0.1))
    assert (d.tier, d.escalated) == ("strong", True) and "low confidence" in d.reason
    assert policy.decide(score(0.2, confidence=0.9)).tier == "cheap"


def test_both_signals_escalate_only_once() -> None:
    policy = TierPolicy(tiers=THREE.tiers, thresholds=THREE.thresholds, ood_escalate=1.5, min_confidence=0.5)
    assert policy.decide(score(0.1, confidence=0.0, ood=5.0)).tier == "medium"


@pytest.mark.parametrize(
    ("tiers", "thresholds"),
    [(("only",), ()), (("a", "a"), (0.5,)), (("a", "b", "c"), (0.5,)), (("a", "b", "c"), (0.7, 0.3))],
)
def test_invalid_policies(tiers: tuple[str, ...], thresholds: tuple[float, ...]) -> None:
    with pytest.raises(ConfigError):
        TierPolicy(tiers=tiers, thresholds=thresholds)

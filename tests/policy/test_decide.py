"""`Policy.decide`: one immutable decision whose propensity is that of the served tier, caps and fit included."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest

from gearshift.policy.decide import CAP_RULE, Decision, Policy, PolicyRequest
from gearshift.policy.route import Route
from gearshift.policy.settings import ExperimentSettings, ExplorationSettings, RouterSettings
from gearshift.policy.share_cap import StrongShareCap
from gearshift.providers.base import Deployment
from gearshift.routers.base import PromptLike, Router, RoutingScore
from gearshift.routers.policy import TierPolicy

SMALL = Deployment("cheap-small", "openai", "small", context_window=1000)
BIG = Deployment("cheap-big", "openai", "big", context_window=100_000)
STRONG = Deployment("strong", "openai", "strong", context_window=100_000)
LONG = "summarise: " + "lorem ipsum " * 500  # ~1500 tokens: more than cheap-small holds


class Hard(Router):
    name = "hard"

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        return [RoutingScore(0.99, 0.99, "looks hard") for _ in prompts]


@dataclasses.dataclass(frozen=True)
class Config:
    router: RouterSettings = dataclasses.field(default_factory=RouterSettings)
    exploration: ExplorationSettings = dataclasses.field(default_factory=ExplorationSettings)
    experiment: ExperimentSettings = dataclasses.field(default_factory=ExperimentSettings)


def _decide(cap: StrongShareCap, text: str, exploration: ExplorationSettings | None = None,
            request_id: str = "r1") -> tuple[Policy, Decision]:
    policy = Policy(Config(exploration=exploration or ExplorationSettings()), [[SMALL, BIG], [STRONG]],
                    ("cheap", "strong"), share_cap=cap)
    route = Route("auto", router=Hard(), policy=TierPolicy(tiers=("cheap", "strong"), thresholds=(0.5,)))
    req = PolicyRequest(request_id, {"messages": [{"role": "user", "content": text}]},
                        [{"role": "user", "content": text}], api_key_id="k")
    return policy, asyncio.run(policy.decide(route, req))


def test_a_decision_cannot_be_changed_after_it_is_made() -> None:
    _, d = _decide(StrongShareCap({}), "prove it")
    assert d.tier_name == "strong" and d.deployments == (STRONG,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.tier = 0  # type: ignore[misc]


def test_the_cap_moves_a_strong_request_to_a_cheap_deployment_that_fits() -> None:
    cap = StrongShareCap({"k": (0.25, 4)})  # one strong answer per four requests
    asyncio.run(cap.decide("k", 1, 2))  # the key's strong share is used up
    _, d = _decide(cap, LONG)
    assert (d.tier_name, d.deployments, d.rule) == ("cheap", (BIG,), None)
    assert CAP_RULE in d.flags and "strong-tier share cap of key k" in d.reason
    assert d.events == (("key_alert", CAP_RULE),)


def test_with_exploration_the_propensity_is_that_of_the_served_tier_after_the_cap() -> None:
    uniform = ExplorationSettings(epsilon=0.5)
    _, free = _decide(StrongShareCap({}), "prove it", uniform)
    assert free.probabilities == pytest.approx((0.25, 0.75))
    cap = StrongShareCap({"k": (0.25, 4)})
    asyncio.run(cap.decide("k", 1, 2))
    _, capped = _decide(cap, "prove it", uniform)
    # every draw ends on the cheap tier once the cap holds: the logged policy says so
    assert capped.tier_name == "cheap" and capped.probabilities == (1.0, 0.0)
    assert capped.propensity == 1.0

"""The gateway side of exploration: draw each routed request's tier from `ExplorationPolicy`, honestly logged.

The draw is seeded by (`[exploration] seed`, request id) so a request's exploration is replayable. Later
steps may move the drawn tier (conversation stickiness, context-window fit); they are deterministic
given the request, so the logged propensity is the total probability of every draw that ends on the
served tier (`remap`), not the probability of the draw alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gearshift.gateway.settings import ExplorationSettings
from gearshift.learning.exploration import ExplorationPolicy, request_rng
from gearshift.routers.base import RoutingScore
from gearshift.routers.policy import TierDecision, TierPolicy


def enabled(settings: ExplorationSettings) -> bool:
    segments = settings.epsilon_by_segment.values()
    return settings.epsilon > 0 or settings.min_propensity > 0 or any(v > 0 for v in segments)


def decide(settings: ExplorationSettings, policy: TierPolicy, score: RoutingScore, request_id: str,
           segment: Mapping[str, Any]) -> tuple[TierDecision, tuple[float, ...] | None, bool]:
    """(decision, the policy's probabilities over tiers or None when deterministic, explored?)."""
    if not enabled(settings):
        return policy.decide(score), None, False
    explorer = ExplorationPolicy(policy, epsilon=settings.epsilon, mode=settings.mode,
                                 epsilon_by_segment=settings.epsilon_by_segment, min_propensity=settings.min_propensity)
    seg = segment.get(settings.segment_key)
    d = explorer.decide(score, request_rng(settings.seed, request_id), None if seg is None else str(seg))
    return d.tier_decision(), d.probabilities, d.explored


def remap(probabilities: Sequence[float], move: Callable[[int], int]) -> tuple[float, ...]:
    """The distribution of the served tier when a drawn tier j is served as `move(j)`."""
    out = [0.0] * len(probabilities)
    for j, p in enumerate(probabilities):
        out[move(j)] += p
    return tuple(out)


def sticky_move(prior: int | None, allow_downgrade: bool) -> Callable[[int], int]:
    """Conversation stickiness: never below the conversation's previous tier (unless downgrades are allowed)."""
    if prior is None or allow_downgrade:
        return lambda j: j
    return lambda j: max(j, prior)

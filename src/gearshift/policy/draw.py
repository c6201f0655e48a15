"""The tier draw: each routed request's tier from `ExplorationPolicy`, honestly logged.

The draw is seeded by (`[exploration] seed`, request id) so a request's exploration is replayable. Later
steps may move the drawn tier (conversation stickiness, context-window fit, the strong-share cap); they are
deterministic given the request, so the logged propensity is the total probability of every draw that ends
on the served tier (`remap`), not the probability of the draw alone.

`decide_for` is what `Policy.decide` (policy/decide.py) calls: per-segment thresholds (`[router]
segment_thresholds`, "auto" routes only), then the exploration draw, then the misroute experiment
(`[experiment]`, policy/experiment.py).
With both off it costs two attribute checks over `decide`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from gearshift.data.segments import yes_no
from gearshift.policy.exploration import ExplorationPolicy, request_rng
from gearshift.policy.settings import ExperimentSettings, ExplorationSettings, PolicyConfig
from gearshift.routers.base import RoutingScore
from gearshift.routers.policy import TierDecision, TierPolicy

if TYPE_CHECKING:
    from gearshift.policy.experiment import MisrouteExperiment

Decision = tuple[TierDecision, tuple[float, ...] | None, bool]


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
    label = None if seg is None else yes_no(seg) if isinstance(seg, bool) else str(seg)
    d = explorer.decide(score, request_rng(settings.seed, request_id), label)
    return d.tier_decision(), d.probabilities, d.explored


def decide_for(settings: PolicyConfig, policy: TierPolicy, route_kind: str, score: RoutingScore,
               request_id: str, rec: dict[str, Any]) -> Decision:
    """`decide` with the gateway's whole configuration; sets rec["thresholds"] when a segment's apply and
    rec["experiment_arm"] when the misroute experiment forced the tier."""
    segment = rec.get("segment") or {}
    if settings.router.segment_thresholds and route_kind == "auto" and _thresholded(settings, rec):
        thresholds = segment_thresholds(settings.router.segment_thresholds, segment)
        if thresholds is not None and len(thresholds) == len(policy.thresholds):
            policy = with_thresholds(policy, thresholds)
            rec["thresholds"] = list(thresholds)
    if settings.experiment.misroute_fraction <= 0.0:
        return decide(settings.exploration, policy, score, request_id, segment)
    return decide_experiment(settings.experiment, settings.exploration, policy, score, request_id, segment, rec)


def _thresholded(settings: PolicyConfig, rec: Mapping[str, Any]) -> bool:
    """Segment thresholds stand in for `[router] thresholds` on the configured router's score only: not on a
    gate's decision, nor on an LLM router's tier labels (policy/decide.py)."""
    return rec.get("rule") != "gate" and settings.router.kind == "model"


def segment_thresholds(by_segment: Mapping[str, Sequence[float]], segment: Mapping[str, Any],
                       ) -> tuple[float, ...] | None:
    """The first configured segment's thresholds that the request's segment row matches, else None."""
    from gearshift.policy.experiment import first_match

    key = first_match(by_segment, segment)
    return None if key is None else tuple(float(t) for t in by_segment[key])


@lru_cache(maxsize=256)
def with_thresholds(policy: TierPolicy, thresholds: tuple[float, ...]) -> TierPolicy:
    return replace(policy, thresholds=thresholds)


def decide_experiment(experiment: ExperimentSettings, exploration: ExplorationSettings, policy: TierPolicy,
                      score: RoutingScore, request_id: str, segment: Mapping[str, Any],
                      rec: dict[str, Any]) -> Decision:
    """The live decision, overridden by a forced arm for the experiment's share of the slice; either way the
    probabilities are those of the whole mixed policy."""
    from gearshift.policy.experiment import arm_tier, onehot

    live, probs, explored = decide(exploration, policy, score, request_id, segment)
    exp = _experiment(experiment.misroute_fraction, tuple(experiment.arms), experiment.segment, experiment.seed)
    if not exp.in_slice(segment):
        return live, probs, explored
    k = len(policy.tiers)
    full = exp.mix(probs if probs is not None else onehot(live.tier_index, k))
    arm = exp.draw(request_id)
    if arm is None:
        return replace(live, propensity=full[live.tier_index]), full, explored
    idx = arm_tier(arm, k)
    rec["experiment_arm"] = arm
    reason = f"{live.reason}; misroute experiment arm {arm} -> {policy.tiers[idx]}"
    return TierDecision(tier_index=idx, tier=policy.tiers[idx], reason=reason, propensity=full[idx]), full, True


@lru_cache(maxsize=16)
def _experiment(fraction: float, arms: tuple[str, ...], segment: str | None, seed: int) -> MisrouteExperiment:
    from gearshift.policy.experiment import MisrouteExperiment

    return MisrouteExperiment(fraction, arms, segment, seed)


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

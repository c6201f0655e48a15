"""Exploration: a stochastic wrapper over a `TierPolicy` that logs honest propensities.

A deterministic policy only ever shows the outcome of the tier it picked, so logs from it cannot say
what another router would have achieved. Spending a small budget on random tiers (ε of traffic, or
probability matching on the router's p_strong) gives every tier support, and the propensity recorded
with each decision, the probability of the chosen tier under the *whole* stochastic policy, is what
off-policy evaluation and retraining divide by.

The full policy for one request is

    π = (1 - K·m) · [(1 - ε) · onehot(base tier) + ε · q] + m

with q uniform over the K tiers (mode "uniform") or randomised rounding of p_strong·(K-1) (mode
"matching": for two tiers, strong with probability p_strong), and m a per-tier floor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from gearshift.errors import ConfigError
from gearshift.routers.base import RoutingScore
from gearshift.routers.policy import TierDecision, TierPolicy

ExplorationMode = Literal["uniform", "matching"]
MODES: tuple[str, ...] = ("uniform", "matching")


def request_rng(seed: int, request_id: str) -> np.random.Generator:
    """A generator fixed by (seed, request id): replaying a request replays its exploration draw."""
    digest = hashlib.sha256(f"{seed}:{request_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True, slots=True)
class ExploredDecision:
    """The tier actually used, its propensity under the full policy, and whether the random branch chose it.

    `explored` is True when the tier came from the exploration draw (even if it equals the base tier),
    so the explored slice is a sample whose tier does not depend on the router.
    """

    tier_index: int
    tier: str
    propensity: float
    explored: bool
    base_tier_index: int
    probabilities: tuple[float, ...]
    reason: str
    escalated: bool = False

    def tier_decision(self) -> TierDecision:
        """The same decision in the shape the gateway already records."""
        return TierDecision(tier_index=self.tier_index, tier=self.tier, reason=self.reason,
                            escalated=self.escalated, propensity=self.propensity)


@dataclass(frozen=True)
class ExplorationPolicy:
    """`epsilon`: exploration share (overridden per segment by `epsilon_by_segment`); `min_propensity`: floor
    every tier gets, so off-policy estimates never meet a zero propensity."""

    policy: TierPolicy
    epsilon: float = 0.05
    mode: ExplorationMode = "uniform"
    epsilon_by_segment: Mapping[str, float] = field(default_factory=dict)
    min_propensity: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"exploration mode must be one of {MODES}, got {self.mode!r}")
        for where, eps in [("epsilon", self.epsilon), *self.epsilon_by_segment.items()]:
            if not 0.0 <= eps <= 1.0:
                raise ConfigError(f"exploration {where}: epsilon must be within [0, 1], got {eps}")
        k = len(self.policy.tiers)
        if not 0.0 <= self.min_propensity <= 1.0 / k:
            raise ConfigError(f"min_propensity must be within [0, 1/{k}], got {self.min_propensity}")

    @property
    def n_tiers(self) -> int:
        return len(self.policy.tiers)

    def epsilon_for(self, segment: str | None) -> float:
        if segment is not None and segment in self.epsilon_by_segment:
            return float(self.epsilon_by_segment[segment])
        return float(self.epsilon)

    def exploration_distribution(self, p_strong: np.ndarray | Sequence[float]) -> np.ndarray:
        """q, shape (n, K): where the exploration branch sends each prompt."""
        p = np.clip(np.asarray(p_strong, dtype=np.float64), 0.0, 1.0)
        k = self.n_tiers
        q = np.zeros((p.size, k))
        if self.mode == "uniform":
            q[:] = 1.0 / k
            return q
        pos = p * (k - 1)
        lo = np.minimum(np.floor(pos).astype(np.int64), k - 2)
        frac = pos - lo
        rows = np.arange(p.size)
        q[rows, lo] = 1.0 - frac
        q[rows, lo + 1] += frac
        return q

    def probabilities_batch(self, p_strong: np.ndarray | Sequence[float],
                            base_index: np.ndarray | Sequence[int] | None = None,
                            segments: Sequence[str | None] | None = None) -> np.ndarray:
        """Full policy π, shape (n, K), rows summing to 1. `base_index` defaults to the thresholds alone
        (no ood/confidence escalation); pass the escalated tiers when the scores carried them."""
        p = np.asarray(p_strong, dtype=np.float64)
        base = self.policy.tier_indices(p) if base_index is None else np.asarray(base_index, dtype=np.int64)
        if base.shape != p.shape or np.any((base < 0) | (base >= self.n_tiers)):
            raise ConfigError("base tier indices must match the scores and lie within the tiers")
        if segments is None:
            eps = np.full(p.size, float(self.epsilon))
        else:
            if len(segments) != p.size:
                raise ConfigError(f"{p.size} scores but {len(segments)} segments")
            eps = np.array([self.epsilon_for(s) for s in segments], dtype=np.float64)
        pi = eps[:, None] * self.exploration_distribution(p)
        pi[np.arange(p.size), base] += 1.0 - eps
        m = self.min_propensity
        out: np.ndarray = (1.0 - self.n_tiers * m) * pi + m
        return out

    def probabilities(self, score: RoutingScore, segment: str | None = None) -> np.ndarray:
        """π over the tiers for one request (escalation included in the base tier)."""
        base = self.policy.decide(score).tier_index
        out: np.ndarray = self.probabilities_batch([score.p_strong], [base], [segment])[0]
        return out

    def decide(self, score: RoutingScore, rng: np.random.Generator, segment: str | None = None) -> ExploredDecision:
        """One draw from the full policy. The generator is injected so the gateway can seed it per request."""
        base = self.policy.decide(score)
        pi = self.probabilities_batch([score.p_strong], [base.tier_index], [segment])[0]
        k, m, eps = self.n_tiers, self.min_propensity, self.epsilon_for(segment)
        u = rng.random()
        if u < k * m:  # floor component: uniform
            idx, explored = int(rng.integers(k)), True
        elif u < k * m + (1.0 - k * m) * eps:  # exploration branch
            q = self.exploration_distribution([score.p_strong])[0]
            idx, explored = int(rng.choice(k, p=q)), True
        else:
            idx, explored = base.tier_index, False
        reason = base.reason
        if explored:
            reason += f"; explored ({self.mode}, epsilon={eps:g}) -> {self.policy.tiers[idx]}"
        return ExploredDecision(
            tier_index=idx, tier=self.policy.tiers[idx], propensity=float(pi[idx]), explored=explored,
            base_tier_index=base.tier_index, probabilities=tuple(float(x) for x in pi), reason=reason,
            escalated=base.escalated and idx == base.tier_index,
        )

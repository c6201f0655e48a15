"""Turning a routing score into one of N ordered tiers.

Quality loss (a hard prompt sent cheap) usually costs more than cost inflation, so the policy can
escalate prompts the router is unsure about or has never seen anything like.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gearshift.errors import ConfigError
from gearshift.routers.base import RoutingScore


@dataclass(frozen=True, slots=True)
class TierDecision:
    tier_index: int
    tier: str
    reason: str
    escalated: bool = False
    propensity: float = 1.0


@dataclass(frozen=True)
class TierPolicy:
    """`tiers` ordered cheap to strong; `thresholds[i]` is the p_strong needed to reach tier i+1.

    `ood_escalate`: escalate one tier when the score's `ood` exceeds it. `min_confidence`: escalate one
    tier when the router's confidence is below it. Either may be None (off).
    """

    tiers: tuple[str, ...] = ("cheap", "strong")
    thresholds: tuple[float, ...] = (0.5,)
    ood_escalate: float | None = None
    min_confidence: float | None = None

    def __post_init__(self) -> None:
        if len(self.tiers) < 2:
            raise ConfigError("a policy needs at least two tiers")
        if len(set(self.tiers)) != len(self.tiers):
            raise ConfigError("tier names must be unique")
        if len(self.thresholds) != len(self.tiers) - 1:
            raise ConfigError(
                f"{len(self.tiers)} tiers need {len(self.tiers) - 1} thresholds, "
                f"got {len(self.thresholds)}"
            )
        if any(b < a for a, b in zip(self.thresholds, self.thresholds[1:], strict=False)):
            raise ConfigError("thresholds must be non-decreasing")

    def tier_indices(self, p_strong: np.ndarray | Sequence[float]) -> np.ndarray:
        """Vectorised base decision (no escalation): tier = number of thresholds reached."""
        p = np.asarray(p_strong, dtype=np.float64)
        return np.searchsorted(np.asarray(self.thresholds), p, side="right").astype(np.int64)

    def decide(self, score: RoutingScore) -> TierDecision:
        idx = bisect_right(self.thresholds, float(score.p_strong))  # == tier_indices([p])[0], without numpy
        reason = f"p_strong={score.p_strong:.3f}"
        escalated = False
        top = len(self.tiers) - 1
        if idx < top and self.ood_escalate is not None and score.ood is not None \
                and score.ood > self.ood_escalate:
            idx += 1
            escalated = True
            reason += f"; out of distribution (ood={score.ood:.2f} > {self.ood_escalate})"
        elif idx < top and self.min_confidence is not None \
                and score.confidence < self.min_confidence:
            idx += 1
            escalated = True
            reason += f"; low confidence ({score.confidence:.2f} < {self.min_confidence})"
        return TierDecision(tier_index=idx, tier=self.tiers[idx], reason=reason,
                            escalated=escalated)

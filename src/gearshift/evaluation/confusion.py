"""The routing confusion matrix, with its two errors named by what they cost the user.

- cost inflation: sent to the strong model although the cheap one was enough (money wasted);
- quality loss: sent to the cheap model although the strong one was needed (a worse answer).
They are rarely equally bad, so `weighted_loss` weighs them separately (quality loss 2x by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gearshift.errors import DataError

DEFAULT_COST_WEIGHT = 1.0
DEFAULT_QUALITY_WEIGHT = 2.0


@dataclass(frozen=True)
class Confusion:
    strong_needed_sent_strong: int
    cost_inflation: int
    quality_loss: int
    cheap_enough_sent_cheap: int
    cost_weight: float = DEFAULT_COST_WEIGHT
    quality_weight: float = DEFAULT_QUALITY_WEIGHT

    @property
    def n(self) -> int:
        return (self.strong_needed_sent_strong + self.cost_inflation + self.quality_loss
                + self.cheap_enough_sent_cheap)

    def _rate(self, count: int, base: int | None = None) -> float:
        d = self.n if base is None else base
        return count / d if d else float("nan")

    @property
    def strong_share(self) -> float:
        return self._rate(self.strong_needed_sent_strong + self.cost_inflation)

    @property
    def cost_inflation_rate(self) -> float:
        """Share of all prompts sent strong needlessly."""
        return self._rate(self.cost_inflation)

    @property
    def quality_loss_rate(self) -> float:
        """Share of all prompts sent cheap that needed strong: what a user of this traffic would see."""
        return self._rate(self.quality_loss)

    @property
    def miss_rate(self) -> float:
        """Share of the prompts that needed strong which were sent cheap."""
        return self._rate(self.quality_loss, self.quality_loss + self.strong_needed_sent_strong)

    @property
    def accuracy(self) -> float:
        return self._rate(self.strong_needed_sent_strong + self.cheap_enough_sent_cheap)

    @property
    def weighted_loss(self) -> float:
        """(cost_weight * cost inflations + quality_weight * quality losses) / n."""
        if not self.n:
            return float("nan")
        return (self.cost_weight * self.cost_inflation + self.quality_weight * self.quality_loss) / self.n

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "strong_needed_sent_strong": self.strong_needed_sent_strong,
            "cost_inflation": self.cost_inflation,
            "quality_loss": self.quality_loss,
            "cheap_enough_sent_cheap": self.cheap_enough_sent_cheap,
            "strong_share": self.strong_share,
            "cost_inflation_rate": self.cost_inflation_rate,
            "quality_loss_rate": self.quality_loss_rate,
            "miss_rate": self.miss_rate,
            "accuracy": self.accuracy,
            "cost_weight": self.cost_weight,
            "quality_weight": self.quality_weight,
            "weighted_loss": self.weighted_loss,
        }


def routing_confusion(
    needs_strong: np.ndarray,
    sent_strong: np.ndarray,
    *,
    cost_weight: float = DEFAULT_COST_WEIGHT,
    quality_weight: float = DEFAULT_QUALITY_WEIGHT,
) -> Confusion:
    need = np.asarray(needs_strong, dtype=bool)
    sent = np.asarray(sent_strong, dtype=bool)
    if need.shape != sent.shape:
        raise DataError(f"labels and decisions differ in shape: {need.shape} vs {sent.shape}")
    if min(cost_weight, quality_weight) < 0:
        raise DataError("confusion weights must be >= 0")
    return Confusion(
        strong_needed_sent_strong=int(np.sum(need & sent)),
        cost_inflation=int(np.sum(~need & sent)),
        quality_loss=int(np.sum(need & ~sent)),
        cheap_enough_sent_cheap=int(np.sum(~need & ~sent)),
        cost_weight=float(cost_weight),
        quality_weight=float(quality_weight),
    )

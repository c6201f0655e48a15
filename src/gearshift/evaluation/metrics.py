"""One bundle of routing metrics for one set of prompts, and the reference routers to read it against.

Used for the whole test set and for every segment, so both report exactly the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gearshift.data.records import Dataset
from gearshift.evaluation.confusion import (
    DEFAULT_COST_WEIGHT,
    DEFAULT_QUALITY_WEIGHT,
    Confusion,
    routing_confusion,
)
from gearshift.evaluation.curves import CPT_LEVELS, Curve, apgr_cpt, build_curve, check_scores, curve_aiq
from gearshift.evaluation.labels import needs_strong


@dataclass(frozen=True)
class Outcomes:
    """Per-prompt scores and costs (USD; NaN if unknown) of the strong and the weak model."""

    s_strong: np.ndarray
    s_weak: np.ndarray
    c_strong: np.ndarray
    c_weak: np.ndarray

    @classmethod
    def from_dataset(cls, dataset: Dataset, strong: str, weak: str) -> Outcomes:
        return cls(dataset.scores(strong), dataset.scores(weak), dataset.costs(strong), dataset.costs(weak))

    def __len__(self) -> int:
        return len(self.s_strong)

    @property
    def gaps(self) -> np.ndarray:
        out: np.ndarray = self.s_strong - self.s_weak
        return out

    def has_costs(self) -> bool:
        return bool(np.all(np.isfinite(self.c_strong)) and np.all(np.isfinite(self.c_weak)))

    def subset(self, idx: np.ndarray) -> Outcomes:
        return Outcomes(self.s_strong[idx], self.s_weak[idx], self.c_strong[idx], self.c_weak[idx])

    def curve(self, p_strong: np.ndarray) -> Curve:
        if self.has_costs():
            return build_curve(p_strong, self.s_strong, self.s_weak, self.c_strong, self.c_weak)
        return build_curve(p_strong, self.s_strong, self.s_weak)


@dataclass(frozen=True)
class MetricSettings:
    """How decisions and labels are derived: threshold on p_strong, gap tolerance, error weights.

    `target_strong_share`, when set, replaces `threshold` by the one that sends that share of the scored prompts
    strong (label-free, so it may be fitted on the test prompts themselves, as a deployment would on its own
    unlabelled traffic): trained routers' p_strong is not on one scale, so one fixed threshold says little.
    """

    threshold: float = 0.5
    target_strong_share: float | None = None
    eps: float = 0.0
    cost_weight: float = DEFAULT_COST_WEIGHT
    quality_weight: float = DEFAULT_QUALITY_WEIGHT


@dataclass(frozen=True)
class RoutingMetrics:
    n: int
    apgr: float
    cpt: dict[float, float]
    aiq: float
    aiq_axis: str  # "cost" or "strong_share"
    confusion: Confusion
    quality: float  # mean score at the operating threshold
    cost: float  # mean USD per prompt at the operating threshold (NaN if unknown)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "apgr": clean(self.apgr)}
        out.update({f"cpt{round(t * 100)}": clean(v) for t, v in self.cpt.items()})
        out.update({
            "aiq": clean(self.aiq),
            "aiq_axis": self.aiq_axis,
            "strong_share": clean(self.confusion.strong_share),
            "quality": clean(self.quality),
            "cost": clean(self.cost),
            "quality_loss_rate": clean(self.confusion.quality_loss_rate),
            "cost_inflation_rate": clean(self.confusion.cost_inflation_rate),
            "confusion": {k: clean(v) if isinstance(v, float) else v for k, v in self.confusion.to_json().items()},
        })
        return out


def clean(x: float) -> float | None:
    """JSON has no NaN: undefined figures become null."""
    return float(x) if np.isfinite(x) else None


def compute_metrics(p_strong: np.ndarray, outcomes: Outcomes, settings: MetricSettings) -> RoutingMetrics:
    p = check_scores(p_strong, len(outcomes))
    apgr, cpt = apgr_cpt(p, outcomes.s_strong, outcomes.s_weak, CPT_LEVELS)
    value, axis = curve_aiq(outcomes.curve(p))
    sent = p >= settings.threshold
    conf = routing_confusion(needs_strong(outcomes.gaps, settings.eps), sent,
                             cost_weight=settings.cost_weight, quality_weight=settings.quality_weight)
    n = len(p)
    quality = float(np.mean(np.where(sent, outcomes.s_strong, outcomes.s_weak))) if n else float("nan")
    cost = float(np.mean(np.where(sent, outcomes.c_strong, outcomes.c_weak))) if n else float("nan")
    return RoutingMetrics(n=n, apgr=apgr, cpt=cpt, aiq=value, aiq_axis=axis, confusion=conf,
                          quality=quality, cost=cost)


@dataclass(frozen=True)
class Reference:
    """A reference router: a fixed point (all-cheap, all-strong, oracle) and, where defined, a curve."""

    name: str
    strong_share: float
    quality: float
    cost: float
    pgr: float
    apgr: float = float("nan")
    cpt: dict[float, float] | None = None
    aiq: float = float("nan")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"strong_share": clean(self.strong_share), "quality": clean(self.quality),
                               "cost": clean(self.cost), "pgr": clean(self.pgr), "apgr": clean(self.apgr)}
        for t in CPT_LEVELS:
            out[f"cpt{round(t * 100)}"] = clean(self.cpt[t]) if self.cpt else None
        out["aiq"] = clean(self.aiq)
        return out


def references(outcomes: Outcomes) -> dict[str, Reference]:
    """all_cheap, all_strong, oracle (strong exactly where gap > 0; its curve sorts by gap), random.

    The random router's figures are analytic expectations: PGR(x) = x, so APGR = 0.5 and CPT(t) = t.
    """
    n = len(outcomes)
    if n == 0:
        return {}
    gaps = outcomes.gaps
    q_w, q_s = float(outcomes.s_weak.mean()), float(outcomes.s_strong.mean())
    c_w, c_s = float(outcomes.c_weak.mean()), float(outcomes.c_strong.mean())
    gain = q_s - q_w

    def pgr(q: float) -> float:
        return (q - q_w) / gain if gain > 1e-12 else float("nan")

    oracle_sent = gaps > 0
    q_o = float(np.mean(np.maximum(outcomes.s_strong, outcomes.s_weak)))
    c_o = float(np.mean(np.where(oracle_sent, outcomes.c_strong, outcomes.c_weak)))
    o_apgr, o_cpt = apgr_cpt(gaps, outcomes.s_strong, outcomes.s_weak)
    o_aiq, _ = curve_aiq(outcomes.curve(gaps))
    both = np.array([0.0, 1.0])
    r_aiq, _ = curve_aiq(Curve(share=both, quality=np.array([q_w, q_s]), cost=np.array([c_w, c_s])))
    valid = gain > 1e-12
    return {
        "all_cheap": Reference("all_cheap", 0.0, q_w, c_w, pgr(q_w)),
        "all_strong": Reference("all_strong", 1.0, q_s, c_s, pgr(q_s)),
        "oracle": Reference("oracle", float(oracle_sent.mean()), q_o, c_o, pgr(q_o), o_apgr, o_cpt, o_aiq),
        "random": Reference("random", 0.5, (q_w + q_s) / 2, (c_w + c_s) / 2, pgr((q_w + q_s) / 2),
                            0.5 if valid else float("nan"),
                            {t: (t if valid else float("nan")) for t in CPT_LEVELS}, r_aiq),
    }

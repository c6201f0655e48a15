"""Deliberate-misroute bounds: what the router is worth on a slice, against forcing it all-cheap or all-strong.

On recorded outcomes (every prompt answered by both models) the three policies are read off directly.
On logged outcomes (production: only the served model's answer is known) they are self-normalised
inverse-propensity estimates, so the online experiment that occasionally serves the other tier on a
tagged slice, logging the propensity, feeds the same report.

The money check prices quality: dollars the router saves against all-strong, minus the extra bad
answers it causes (all-strong quality minus router quality, per prompt) at `cost_per_bad_answer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gearshift.errors import DataError


@dataclass(frozen=True, slots=True)
class PolicyValue:
    """Mean quality and mean cost (USD) per prompt of one policy on the slice; `n` decisions behind it."""

    name: str
    quality: float
    cost_usd: float
    strong_share: float
    n: int


@dataclass(frozen=True, slots=True)
class MoneyCheck:
    cost_per_bad_answer: float
    dollars_saved: float
    extra_bad_answers: float
    downstream_cost: float

    @property
    def net_usd(self) -> float:
        return self.dollars_saved - self.downstream_cost

    @property
    def worth_it(self) -> bool:
        return self.net_usd > 0


@dataclass(frozen=True)
class BoundsReport:
    slice_name: str
    n: int
    source: str  # "recorded" | "logged"
    router: PolicyValue
    all_cheap: PolicyValue
    all_strong: PolicyValue
    money: MoneyCheck

    @property
    def quality_headroom(self) -> float:
        """Quality the router leaves on the table against all-strong."""
        return self.all_strong.quality - self.router.quality

    @property
    def quality_gain_over_cheap(self) -> float:
        return self.router.quality - self.all_cheap.quality

    def to_json(self) -> dict[str, Any]:
        money = {**asdict(self.money), "net_usd": self.money.net_usd, "worth_it": self.money.worth_it}
        return {"slice": self.slice_name, "n": self.n, "source": self.source, "router": asdict(self.router),
                "all_cheap": asdict(self.all_cheap), "all_strong": asdict(self.all_strong), "money": money,
                "quality_headroom": self.quality_headroom, "quality_gain_over_cheap": self.quality_gain_over_cheap}


def _money(router: PolicyValue, strong: PolicyValue, n: int, cost_per_bad_answer: float) -> MoneyCheck:
    if not np.isfinite(cost_per_bad_answer) or cost_per_bad_answer < 0:
        raise DataError(f"cost per bad answer must be a finite number >= 0, got {cost_per_bad_answer}")
    saved = (strong.cost_usd - router.cost_usd) * n
    extra_bad = (strong.quality - router.quality) * n
    return MoneyCheck(cost_per_bad_answer, float(saved), float(extra_bad), float(extra_bad * cost_per_bad_answer))


def _costs(costs: np.ndarray, per_call: float | None, role: str) -> np.ndarray:
    if per_call is not None:
        return np.full(costs.shape, float(per_call))
    if not np.all(np.isfinite(costs)):
        raise DataError(f"{role} model costs are missing; pass a per-call {role} cost")
    return costs


def misroute_bounds(s_strong: np.ndarray, s_weak: np.ndarray, c_strong: np.ndarray, c_weak: np.ndarray,
                    routed_strong: np.ndarray, slice_mask: np.ndarray | None = None, *,
                    cost_per_bad_answer: float = 0.01, slice_name: str = "all",
                    strong_cost: float | None = None, weak_cost: float | None = None) -> BoundsReport:
    """Recorded outcomes: per-prompt scores and costs of both models, and the router's decision.

    `strong_cost` / `weak_cost` replace per-prompt costs (USD per call) where the data has none.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (s_strong, s_weak, c_strong, c_weak)]
    routed = np.asarray(routed_strong, dtype=bool)
    mask = np.ones(routed.shape, dtype=bool) if slice_mask is None else np.asarray(slice_mask, dtype=bool)
    if any(a.shape != routed.shape for a in arrays) or mask.shape != routed.shape:
        raise DataError("scores, costs, decisions and slice mask must all have one entry per prompt")
    if not mask.any():
        raise DataError(f"slice {slice_name!r} is empty")
    ss, sw = arrays[0][mask], arrays[1][mask]
    cs, cw = _costs(arrays[2], strong_cost, "strong")[mask], _costs(arrays[3], weak_cost, "weak")[mask]
    r = routed[mask]
    n = int(mask.sum())
    router = PolicyValue("router", float(np.where(r, ss, sw).mean()), float(np.where(r, cs, cw).mean()),
                         float(r.mean()), n)
    cheap = PolicyValue("all_cheap", float(sw.mean()), float(cw.mean()), 0.0, n)
    strong = PolicyValue("all_strong", float(ss.mean()), float(cs.mean()), 1.0, n)
    return BoundsReport(slice_name, n, "recorded", router, cheap, strong,
                        _money(router, strong, n, cost_per_bad_answer))


@dataclass(frozen=True, slots=True)
class LoggedOutcome:
    """One served request: which tier served it, what the router wanted, the observed quality and cost,
    and the probability with which the served tier was chosen (1.0 when the router was simply followed)."""

    served_strong: bool
    router_strong: bool
    quality: float
    cost_usd: float
    propensity: float = 1.0
    in_slice: bool = True


def bounds_from_logs(outcomes: Sequence[LoggedOutcome], *, cost_per_bad_answer: float = 0.01,
                     slice_name: str = "all") -> BoundsReport:
    """Self-normalised IPS estimates of router / all-cheap / all-strong from logged, partly randomised serving."""
    rows = [o for o in outcomes if o.in_slice]
    if not rows:
        raise DataError(f"slice {slice_name!r} has no logged outcomes")
    if any(not 0.0 < o.propensity <= 1.0 for o in rows):
        raise DataError("logged propensities must be within (0, 1]")
    served = np.array([o.served_strong for o in rows], dtype=bool)
    want = np.array([o.router_strong for o in rows], dtype=bool)
    q = np.array([o.quality for o in rows], dtype=np.float64)
    c = np.array([o.cost_usd for o in rows], dtype=np.float64)
    w = 1.0 / np.array([o.propensity for o in rows], dtype=np.float64)

    def value(name: str, match: np.ndarray, share: float) -> PolicyValue:
        if not match.any():
            raise DataError(f"no logged request was served as {name} would have served it; "
                            "the online experiment must serve both tiers on the slice")
        ww = w[match]
        return PolicyValue(name, float(ww @ q[match] / ww.sum()), float(ww @ c[match] / ww.sum()), share,
                           int(match.sum()))

    n = len(rows)
    router = value("router", served == want, float(want.mean()))
    cheap = value("all_cheap", ~served, 0.0)
    strong = value("all_strong", served, 1.0)
    return BoundsReport(slice_name, n, "logged", router, cheap, strong, _money(router, strong, n, cost_per_bad_answer))

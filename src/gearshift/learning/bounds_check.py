"""Is the router doing real work? Bounds with bootstrap intervals, and the verdict `gearshift bounds` prints.

"Real work" means beating a random router with the same strong share (the straight line from all-cheap
to all-strong) with a bootstrap confidence interval above zero; the money check sets the dollars saved
against all-strong against the extra bad answers at a price each. From logged traffic (self-normalised
inverse-propensity estimates) or from recorded outcomes of both models (a paired bootstrap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gearshift.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from gearshift.learning.bounds import BoundsReport
    from gearshift.learning.logs import DecisionLog

CI_KEYS = ("gain_over_cheap", "lift_over_random", "headroom", "net_per_request")


@dataclass(frozen=True)
class SourceResult:
    """One quality source's bounds, its bootstrap intervals (CI_KEYS, per request) and the verdict."""

    report: BoundsReport
    ci: dict[str, tuple[float, float]]
    verdict: str
    real_work: bool
    arm_means: dict[str, dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        return {**self.report.to_json(), "ci95": {k: list(v) for k, v in self.ci.items()}, "verdict": self.verdict,
                "real_work": self.real_work, "arm_means": self.arm_means}


def bootstrap(n: int, n_boot: int, stat: Callable[[np.ndarray], dict[str, np.ndarray]],
              seed: int = 0) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of `stat(multiplicities)` under the Poisson bootstrap, in memory-bounded chunks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_boot, chunk):
        mult = rng.poisson(1.0, size=(min(chunk, n_boot - start), n)).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            for k, v in stat(mult).items():
                out.setdefault(k, []).append(v)
    ci = {}
    for k, parts in out.items():
        v = np.concatenate(parts)
        v = v[np.isfinite(v)]
        ci[k] = (float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))) if v.size else (float("nan"),) * 2
    return ci


def _derived(rq: np.ndarray, cq: np.ndarray, sq: np.ndarray, rc: np.ndarray, sc: np.ndarray, share: np.ndarray,
             cost_per_bad: float) -> dict[str, np.ndarray]:
    return {"gain_over_cheap": rq - cq, "lift_over_random": rq - (cq + share * (sq - cq)), "headroom": sq - rq,
            "net_per_request": (sc - rc) - (sq - rq) * cost_per_bad}


def logged_result(served: np.ndarray, want: np.ndarray, quality: np.ndarray, cost: np.ndarray,
                  propensity: np.ndarray, arms: list[str | None], *, cost_per_bad_answer: float, source: str,
                  n_boot: int = 500) -> SourceResult:
    """Bounds from logged rows (booleans served/wanted strong, quality in [0, 1], USD, served-tier propensity)."""
    import numpy as np

    from gearshift.learning.bounds import LoggedOutcome, bounds_from_logs

    rows = [LoggedOutcome(bool(s), bool(w), float(q), float(c), float(p))
            for s, w, q, c, p in zip(served, want, quality, cost, propensity, strict=True)]
    report = bounds_from_logs(rows, cost_per_bad_answer=cost_per_bad_answer, slice_name=source)
    w = 1.0 / np.asarray(propensity, dtype=np.float64)
    masks = {"r": served == want, "c": ~served, "s": served}

    def stat(mult: np.ndarray) -> dict[str, np.ndarray]:
        mw = mult * w
        val = {k: (mw[:, m] @ quality[m]) / mw[:, m].sum(axis=1) for k, m in masks.items()}
        cst = {k: (mw[:, m] @ cost[m]) / mw[:, m].sum(axis=1) for k, m in masks.items()}
        share = (mult @ want.astype(np.float64)) / mult.sum(axis=1)
        return _derived(val["r"], val["c"], val["s"], cst["r"], cst["s"], share, cost_per_bad_answer)

    arm_means = {}
    labels = np.array(["live" if a is None else a for a in arms])
    for arm in ("live", "all_cheap", "all_strong"):
        m = labels == arm
        if m.any():
            arm_means[arm] = {"n": int(m.sum()), "quality": float(quality[m].mean()), "cost_usd": float(cost[m].mean()),
                              "strong_share": float(served[m].mean())}
    return _result(report, bootstrap(len(rows), n_boot, stat), arm_means)


def recorded_result(s_strong: np.ndarray, s_weak: np.ndarray, c_strong: np.ndarray, c_weak: np.ndarray,
                    routed: np.ndarray, *, cost_per_bad_answer: float, source: str, n_boot: int = 500) -> SourceResult:
    """Bounds from recorded outcomes of both models (paired bootstrap over prompts)."""
    import numpy as np

    from gearshift.learning.bounds import misroute_bounds

    report = misroute_bounds(s_strong, s_weak, c_strong, c_weak, routed, cost_per_bad_answer=cost_per_bad_answer,
                             slice_name=source)
    rq, rc = np.where(routed, s_strong, s_weak), np.where(routed, c_strong, c_weak)

    def stat(mult: np.ndarray) -> dict[str, np.ndarray]:
        tot = mult.sum(axis=1)

        def mean(x: np.ndarray) -> np.ndarray:
            out: np.ndarray = (mult @ x.astype(np.float64)) / tot
            return out

        return _derived(mean(rq), mean(s_weak), mean(s_strong), mean(rc), mean(c_strong), mean(routed),
                        cost_per_bad_answer)

    return _result(report, bootstrap(len(routed), n_boot, stat), {})


def _result(report: BoundsReport, ci: dict[str, tuple[float, float]],
            arm_means: dict[str, dict[str, float]]) -> SourceResult:
    r, c, s = report.router, report.all_cheap, report.all_strong
    lift = r.quality - (c.quality + r.strong_share * (s.quality - c.quality))
    lo, hi = ci["lift_over_random"]
    real = lo > 0
    gl, gh = ci["gain_over_cheap"]
    parts = [f"router beats all-cheap on quality by {r.quality - c.quality:+.4f} (95% CI {gl:+.4f} to {gh:+.4f})",
             f"and a random router at its strong share ({r.strong_share:.1%}) by {lift:+.4f} "
             f"(95% CI {lo:+.4f} to {hi:+.4f})"]
    parts.append("-> doing real work." if real else ("-> worse than random routing." if hi < 0
                                                     else "-> NOT shown to do real work."))
    m = report.money
    nl, nh = ci["net_per_request"]
    parts.append(f"Money: saves ${m.dollars_saved:.4f} vs all-strong, {m.extra_bad_answers:.1f} extra bad answers "
                 f"x ${m.cost_per_bad_answer:g} = ${m.downstream_cost:.4f}, net ${m.net_usd:+.4f} "
                 f"(95% CI ${nl * report.n:+.4f} to ${nh * report.n:+.4f}) -> " + _money_word(m.worth_it, nl, nh))
    return SourceResult(report, ci, " ".join(parts), real, arm_means)


def _money_word(worth_it: bool, lo: float, hi: float) -> str:
    if lo > 0:
        return "worth it."
    if hi < 0:
        return "not worth it."
    return ("worth it" if worth_it else "not worth it") + " on the point estimate, but the interval spans zero."


# -- reading -------------------------------------------------------------------------------------------------
def bad_answer_ids(url: str, since: float | None) -> set[str]:
    from gearshift.learning.signal_model import is_bad
    from gearshift.store.factory import open_label_store

    labels = open_label_store(url)
    try:
        return {str(ev["request_id"]) for ev in labels.signals(since=since) if is_bad(ev)}
    finally:
        labels.close()


def logged_results(log: DecisionLog, arms: dict[str, str | None], bad: set[str], *, cost_per_bad_answer: float,
                   n_boot: int = 500, warn: Callable[[str], None] = lambda _text: None) -> dict[str, SourceResult]:
    """Per quality source ("judge" on labelled rows, "signals" on all): the logged bounds. A judge source too thin
    to bound is left out and reported through `warn`; a signals one raises."""
    import numpy as np

    if len(log.tiers) != 2:
        raise DataError(f"bounds compare two tiers; the log has {len(log.tiers)} ({', '.join(log.tiers)})")
    served, want = log.actions == 1, log.base_tiers() == 1
    arm = [arms.get(rid) for rid in log.request_ids]
    signal_q = np.array([0.0 if rid in bad else 1.0 for rid in log.request_ids])
    out = {}
    for source, quality in (("judge", log.judge_rewards()), ("signals", signal_q)):
        keep = np.flatnonzero(np.isfinite(quality))
        if keep.size == 0:
            continue
        try:
            out[source] = logged_result(served[keep], want[keep], quality[keep], log.costs[keep],
                                        np.clip(log.propensities[keep], 1e-12, 1.0), [arm[i] for i in keep],
                                        cost_per_bad_answer=cost_per_bad_answer, source=source, n_boot=n_boot)
        except DataError as exc:
            out.pop(source, None)
            if source == "signals":
                raise
            warn(f"judge labels: {exc}")
    return out

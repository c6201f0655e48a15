"""Train a router on recorded outcomes and calibrate its operating point: what `gearshift train` runs.

The thresholds are fitted on *out-of-fold* scores of the training data (k folds, copies of a prompt kept in one
fold): scores of prompts a router was fitted on are more extreme than the ones live traffic will get, so
in-sample calibration would send a different share strong than it promised. The final router is then fitted on
all the data; its thresholds and what they achieved out of fold are saved beside it (`routers.operating_point`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from gearshift.data.records import Dataset
from gearshift.data.text import dedupe_key
from gearshift.errors import ConfigError, DataError
from gearshift.evaluation.labels import check_pair, outcome_gaps
from gearshift.evaluation.metrics import MetricSettings
from gearshift.evaluation.protocols import kfold
from gearshift.evaluation.runner import result_from_scores
from gearshift.routers.base import TrainableRouter
from gearshift.routers.operating_point import OperatingPoint
from gearshift.routers.registry import make_router

TargetKind = Literal["strong_share", "cost_per_1k", "max_quality_loss"]
DEFAULT_TARGET: tuple[TargetKind, float] = ("strong_share", 0.3)
#: (done, total, what) after each fit, for a progress bar.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    value: float
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.kind == "strong_share" and not 0.0 <= self.value <= 1.0:
            raise ConfigError(f"--target-strong-share must lie in [0, 1], got {self.value}")
        if self.kind == "cost_per_1k" and not self.value > 0:
            raise ConfigError(f"--target-cost-per-1k must be > 0, got {self.value}")
        if self.kind == "max_quality_loss" and not (0.0 < self.value < 1.0 and 0.0 < self.confidence < 1.0):
            raise ConfigError("--max-quality-loss and --confidence must lie within (0, 1)")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "value": self.value}
        if self.kind == "max_quality_loss":
            out["confidence"] = self.confidence
        return out


@dataclass
class Trained:
    router: TrainableRouter
    point: OperatingPoint
    oof_p_strong: np.ndarray


def out_of_fold_scores(name: str, params: dict[str, Any], dataset: Dataset, gaps: np.ndarray, folds: int,
                       seed: int, progress: Progress | None = None) -> np.ndarray:
    """p_strong of every prompt from a router fitted on the folds that do not hold it."""
    keys = [dedupe_key(p) for p in dataset.prompts]
    parts = kfold(len(dataset), folds, seed, keys=keys)
    p = np.empty(len(dataset))
    for i, fold in enumerate(parts):
        router = make_router(name, **params)
        if not isinstance(router, TrainableRouter):
            raise ConfigError(f"router {name!r} is not trainable: there is nothing for `gearshift train` to fit")
        router.fit([dataset.prompts[j] for j in fold.train], gaps[fold.train])
        p[fold.test] = router.p_strong([dataset.prompts[j] for j in fold.test])
        if progress is not None:
            progress(i + 1, folds + 1, f"fold {i + 1} of {folds}")
    return p


def calibrate(p: np.ndarray, dataset: Dataset, strong: str, weak: str, target: Target) -> tuple[float, ...]:
    from gearshift.learning.risk_control import calibrate_risk, cheap_losses
    from gearshift.routers.calibrate import calibrate_cost, calibrate_share

    if target.kind == "strong_share":
        return calibrate_share(p, target.value, tolerance=1.0).thresholds
    if target.kind == "cost_per_1k":
        costs = np.column_stack([dataset.costs(weak), dataset.costs(strong)])
        if not np.all(np.isfinite(costs)):
            raise DataError(f"{dataset.name!r} records no cost for some prompts: use --target-strong-share "
                            "or --max-quality-loss")
        return calibrate_cost(p, costs, target.value / 1000.0).thresholds
    losses = cheap_losses(dataset.scores(strong), dataset.scores(weak))
    return (calibrate_risk(p, losses, max_quality_loss=target.value, confidence=target.confidence).threshold,)


def measure(p: np.ndarray, thresholds: tuple[float, ...], dataset: Dataset, strong: str, weak: str) -> dict[str, Any]:
    res = result_from_scores(p, dataset, strong, weak, router="oof", n_boot=0, with_segments=False,
                             settings=MetricSettings(threshold=thresholds[0]))
    m = res.metrics
    return {"strong_share": float(m.confusion.strong_share), "quality_loss_rate": float(m.confusion.quality_loss_rate),
            "quality": float(m.quality), "cost_per_1k": float(m.cost * 1000) if m.cost == m.cost else None,
            "apgr": float(m.apgr) if m.apgr == m.apgr else None, "n": len(p),
            "all_strong_quality": float(dataset.scores(strong).mean()),
            "all_cheap_quality": float(dataset.scores(weak).mean())}


def train(dataset: Dataset, name: str, params: dict[str, Any], strong: str, weak: str, target: Target = Target(
          *DEFAULT_TARGET), *, folds: int = 3, seed: int = 0, progress: Progress | None = None) -> Trained:
    """Fit `name` on `dataset`, calibrate `target` out of fold, and return the router with its operating point."""
    check_pair(dataset, strong, weak)
    if folds < 2:
        raise ConfigError("--folds must be at least 2: the thresholds are calibrated on out-of-fold scores")
    gaps = outcome_gaps(dataset, strong, weak)
    oof = out_of_fold_scores(name, params, dataset, gaps, folds, seed, progress)
    thresholds = calibrate(oof, dataset, strong, weak, target)
    router = make_router(name, **params)
    if not isinstance(router, TrainableRouter):  # out_of_fold_scores refused it already; this keeps mypy honest
        raise ConfigError(f"router {name!r} is not trainable")
    router.fit(dataset.prompts, gaps)
    if progress is not None:
        progress(folds + 1, folds + 1, "final fit on all prompts")
    point = OperatingPoint(thresholds=tuple(float(t) for t in thresholds), target=target.to_json(),
                           measured=measure(oof, thresholds, dataset, strong, weak),
                           trained_on={"data": dataset.name, "n": len(dataset), "strong": strong, "weak": weak,
                                       "router": name, "params": params, "folds": folds, "seed": seed})
    return Trained(router=router, point=point, oof_p_strong=oof)

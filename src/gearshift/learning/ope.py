"""Off-policy evaluation: what would a candidate router/policy have achieved on traffic we already logged?

Each logged request holds the tier the live policy chose, that choice's propensity, its reward (judge
label, user feedback or both) and its cost. Importance weights w = π_candidate(a|x) / π_logging(a|x)
reweight the logged outcomes (IPS); self-normalised IPS divides by the weight total (a little bias, much
less variance); doubly robust adds a per-tier reward model and only corrects its residuals.

The estimates mean nothing where the logging policy never tried the candidate's choices: a zero logging
probability under candidate mass, or too small an effective sample size, is refused (or warned about).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from gearshift.errors import ConfigError, DataError, GearshiftError
from gearshift.policy.exploration import ExplorationPolicy
from gearshift.routers.policy import TierPolicy

ESTIMATORS: tuple[str, ...] = ("ips", "snips", "dr")
RewardMode = Literal["judge", "feedback", "both"]
_CHUNK_CELLS = 4_000_000


class InsufficientSupportError(GearshiftError):
    """The logging policy never (or too rarely) tried what the candidate would do: no honest estimate."""

    status_code = 422
    error_type = "invalid_request_error"
    code = "insufficient_support"


class SupportWarning(UserWarning):
    """Raised as a warning instead of `InsufficientSupportError` when the caller asked for warnings."""


def combine_rewards(judge: np.ndarray | Sequence[float] | None, feedback: np.ndarray | Sequence[float] | None,
                    mode: RewardMode = "both", judge_weight: float = 0.5) -> np.ndarray:
    """One reward per request in [0, 1]; NaN marks "no label". In "both" mode a request with only one
    signal uses it, one with both uses the weighted mean."""
    if mode not in ("judge", "feedback", "both"):
        raise ConfigError(f"reward mode must be judge, feedback or both, got {mode!r}")
    if not 0.0 <= judge_weight <= 1.0:
        raise ConfigError(f"judge_weight must be within [0, 1], got {judge_weight}")
    j = None if judge is None else np.asarray(judge, dtype=np.float64)
    f = None if feedback is None else np.asarray(feedback, dtype=np.float64)
    if mode == "judge" or (mode == "both" and f is None):
        if j is None:
            raise ConfigError("judge rewards requested but none given")
        return j.copy()
    if mode == "feedback" or j is None:
        if f is None:
            raise ConfigError("feedback rewards requested but none given")
        return f.copy()
    if f is None:
        raise ConfigError("feedback rewards requested but none given")
    if j.shape != f.shape:
        raise DataError(f"judge labels {j.shape} and feedback {f.shape} differ in length")
    both = judge_weight * j + (1.0 - judge_weight) * f
    out: np.ndarray = np.where(np.isnan(j), f, np.where(np.isnan(f), j, both))
    return out


@dataclass(frozen=True)
class LoggedBandit:
    """Logged decisions as arrays. `features` (n, d) feed the DR reward model (e.g. the router's p_strong or
    embedding); `logging_probs` (n, K), when known, lets the support check see zero-probability tiers.

    `known_rewards` (n, K): every tier's reward where the shadow judge scored them all on that request, NaN
    elsewhere. A counterfactual that was actually observed needs no importance weight: DR uses it as its
    reward model on those rows (its correction term is then zero) and the support check counts them whole.
    """

    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray
    costs: np.ndarray
    n_actions: int
    features: np.ndarray | None = None
    logging_probs: np.ndarray | None = None
    known_rewards: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.actions.shape[0]
        if self.actions.shape != (n,) or n == 0:
            raise DataError("logged decisions need a non-empty 1-D array of chosen tiers")
        for name in ("propensities", "rewards", "costs"):
            if getattr(self, name).shape != (n,):
                raise DataError(f"{name} must have one value per logged decision ({n})")
        if np.any((self.actions < 0) | (self.actions >= self.n_actions)):
            raise DataError(f"chosen tiers must lie within 0..{self.n_actions - 1}")
        p = self.propensities
        if not np.all(np.isfinite(p)) or np.any((p <= 0) | (p > 1)):
            raise DataError("logged propensities must lie within (0, 1]: a chosen tier had positive probability")
        if not np.all(np.isfinite(self.rewards)):
            raise DataError("rewards hold NaN: drop requests without a label first (see combine_rewards)")
        if self.features is not None and self.features.shape[0] != n:
            raise DataError(f"features need {n} rows, got {self.features.shape[0]}")
        if self.logging_probs is not None and self.logging_probs.shape != (n, self.n_actions):
            raise DataError(f"logging_probs must have shape ({n}, {self.n_actions})")
        if self.known_rewards is not None and self.known_rewards.shape != (n, self.n_actions):
            raise DataError(f"known_rewards must have shape ({n}, {self.n_actions})")

    @property
    def fully_observed(self) -> np.ndarray:
        """Rows where every tier's reward was observed (bool, (n,))."""
        if self.known_rewards is None:
            return np.zeros(len(self), dtype=bool)
        known: np.ndarray = np.all(np.isfinite(self.known_rewards), axis=1)
        return known

    def with_known(self, q_hat: np.ndarray) -> np.ndarray:
        """`q_hat` (n, K) with the observed rewards put in where every tier was observed."""
        if self.known_rewards is None:
            return q_hat
        full = self.fully_observed
        out = q_hat.copy()
        out[full] = self.known_rewards[full]
        return out

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @classmethod
    def from_arrays(cls, actions: Any, propensities: Any, rewards: Any, costs: Any | None = None, *,
                    n_actions: int = 2, features: Any | None = None, logging_probs: Any | None = None,
                    known_rewards: Any | None = None) -> LoggedBandit:
        acts = np.asarray(actions, dtype=np.int64)
        feats = None if features is None else np.asarray(features, dtype=np.float64)
        if feats is not None and feats.ndim == 1:
            feats = feats[:, None]
        return cls(actions=acts, propensities=np.asarray(propensities, dtype=np.float64),
                   rewards=np.asarray(rewards, dtype=np.float64),
                   costs=np.zeros(acts.shape) if costs is None else np.asarray(costs, dtype=np.float64),
                   n_actions=n_actions, features=feats,
                   logging_probs=None if logging_probs is None else np.asarray(logging_probs, dtype=np.float64),
                   known_rewards=None if known_rewards is None else np.asarray(known_rewards, dtype=np.float64))


def policy_probabilities(policy: TierPolicy | ExplorationPolicy, p_strong: np.ndarray | Sequence[float]) -> np.ndarray:
    """The candidate's tier distribution (n, K) on the logged contexts: one-hot for a deterministic policy."""
    p = np.asarray(p_strong, dtype=np.float64)
    if isinstance(policy, ExplorationPolicy):
        return policy.probabilities_batch(p)
    out = np.zeros((p.size, len(policy.tiers)))
    out[np.arange(p.size), policy.tier_indices(p)] = 1.0
    return out


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    lo: float
    hi: float


@dataclass(frozen=True, slots=True)
class EstimatorResult:
    quality: Estimate
    cost: Estimate


@dataclass(frozen=True)
class OPEResult:
    """Per-estimator quality and cost with bootstrap intervals, plus the support diagnostics behind them."""

    n: int
    ess: float
    max_weight: float
    unsupported_mass: float | None  # candidate mass on tiers the logger gave probability 0 (None: unknown)
    confidence: float
    n_boot: int
    logged_quality: float
    logged_cost: float
    estimates: Mapping[str, EstimatorResult]
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n, "ess": self.ess, "max_weight": self.max_weight, "unsupported_mass": self.unsupported_mass,
            "confidence": self.confidence, "n_boot": self.n_boot, "logged_quality": self.logged_quality,
            "logged_cost": self.logged_cost, "warnings": list(self.warnings),
            "estimates": {k: {"quality": [v.quality.value, v.quality.lo, v.quality.hi],
                              "cost": [v.cost.value, v.cost.lo, v.cost.hi]} for k, v in self.estimates.items()},
        }


def _ridge_predict(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, alpha: float) -> np.ndarray:
    mu, sd = x_tr.mean(axis=0), x_tr.std(axis=0)
    sd[sd < 1e-12] = 1.0
    a, b = (x_tr - mu) / sd, (x_te - mu) / sd
    coef = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ (y_tr - y_tr.mean()))
    out: np.ndarray = y_tr.mean() + b @ coef
    return out


def reward_model(log: LoggedBandit, alpha: float = 1.0, folds: int = 2,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted per-tier ridge predictions of (reward, cost) for every row and tier, shape (n, K) each.

    A tier seen too rarely in a fold falls back to its mean (or the overall mean); rewards are clipped to
    [0, 1] since they are scores.
    """
    n, k = len(log), log.n_actions
    x = log.features if log.features is not None else np.zeros((n, 0))
    fold = np.random.default_rng(seed).permutation(n) % folds
    preds = [np.zeros((n, k)), np.zeros((n, k))]
    for f in range(folds):
        tr, te = fold != f, fold == f
        for j, y in enumerate((log.rewards, log.costs)):
            base = float(y[tr].mean()) if tr.any() else float(y.mean())
            for a in range(k):
                m = tr & (log.actions == a)
                if m.sum() >= max(10, 2 * x.shape[1] + 2) and x.shape[1] > 0:
                    preds[j][te, a] = _ridge_predict(x[m], y[m], x[te], alpha)
                else:
                    preds[j][te, a] = float(y[m].mean()) if m.any() else base
    preds[0] = log.with_known(np.clip(preds[0], 0.0, 1.0))
    return preds[0], preds[1]


def _check_support(log: LoggedBandit, target: np.ndarray, w: np.ndarray, min_ess: float,
                   on_violation: str) -> tuple[float, float | None, list[str]]:
    full = log.fully_observed  # observed counterfactuals: each such row is a whole sample, whatever its weight
    part = w[~full]
    ess = float(full.sum()) + (float(part.sum() ** 2 / np.sum(part**2)) if np.any(part > 0) else 0.0)
    unsupported = None
    problems: list[str] = []
    if log.logging_probs is not None:
        unsupported = float(np.sum((target * (log.logging_probs <= 0))[~full]) / len(log))
        if unsupported > 1e-12:
            problems.append(f"{unsupported:.1%} of the candidate's choices had logging probability 0")
    if ess < min_ess:
        problems.append(f"effective sample size {ess:.1f} of {len(log)} is below {min_ess:g}")
    if problems and (on_violation == "raise" or ess == 0.0):
        raise InsufficientSupportError("off-policy estimate refused: " + "; ".join(problems)
                                       + " (log with exploration, or evaluate a closer candidate)")
    for msg in problems:
        warnings.warn(msg, SupportWarning, stacklevel=3)
    return ess, unsupported, problems


def evaluate_policy(log: LoggedBandit, target_probs: np.ndarray, *, estimators: Sequence[str] = ESTIMATORS,
                    n_boot: int = 1000, confidence: float = 0.95, min_ess: float = 30.0,
                    on_violation: Literal["raise", "warn"] = "raise", ridge_alpha: float = 1.0,
                    seed: int | None = 0) -> OPEResult:
    """Estimate the candidate's mean quality and cost per request from the log.

    `target_probs` (n, K): the candidate's tier distribution on each logged context (see
    `policy_probabilities`). Intervals are percentile bootstrap over requests (the DR reward model is
    cross-fitted once; resampling its residual-corrected terms keeps the bootstrap vectorised).
    """
    unknown = set(estimators) - set(ESTIMATORS)
    if unknown or not estimators:
        raise ConfigError(f"unknown estimator(s) {sorted(unknown)}; choose from {ESTIMATORS}")
    if on_violation not in ("raise", "warn"):
        raise ConfigError(f"on_violation must be 'raise' or 'warn', got {on_violation!r}")
    if n_boot < 1 or not 0.0 < confidence < 1.0:
        raise ConfigError("bootstrap needs n_boot >= 1 and 0 < confidence < 1")
    n = len(log)
    target = np.asarray(target_probs, dtype=np.float64)
    if target.shape != (n, log.n_actions) or np.any(target < 0) or not np.allclose(target.sum(axis=1), 1.0):
        raise ConfigError(f"target_probs must be ({n}, {log.n_actions}) rows of tier probabilities")
    rows = np.arange(n)
    w = target[rows, log.actions] / log.propensities
    ess, unsupported, problems = _check_support(log, target, w, min_ess, on_violation)

    cols = {"w": w, "ips_q": w * log.rewards, "ips_c": w * log.costs}
    if "dr" in estimators:
        q_hat, c_hat = reward_model(log, alpha=ridge_alpha, seed=seed or 0)
        w_dr = np.where(log.fully_observed, 0.0, w)  # an observed counterfactual needs no correction
        cols["dr_q"] = np.sum(target * q_hat, axis=1) + w_dr * (log.rewards - q_hat[rows, log.actions])
        cols["dr_c"] = np.sum(target * c_hat, axis=1) + w * (log.costs - c_hat[rows, log.actions])
    names = list(cols)
    v = np.column_stack([cols[k] for k in names])

    def stats(sums: np.ndarray, count: np.ndarray) -> dict[str, np.ndarray]:
        s = dict(zip(names, sums.T, strict=True))
        wt = np.where(s["w"] > 0, s["w"], np.nan)
        out = {"ips": (s["ips_q"] / count, s["ips_c"] / count),
               "snips": (s["ips_q"] / wt, s["ips_c"] / wt)}
        if "dr_q" in s:
            out["dr"] = (s["dr_q"] / count, s["dr_c"] / count)
        return {f"{k}_{j}": vals[j] for k, vals in out.items() for j in (0, 1)}

    point = stats(v.sum(axis=0)[None, :], np.array([float(n)]))
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // n)
    boot: dict[str, list[np.ndarray]] = {k: [] for k in point}
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        for k, val in stats(counts @ v, np.full(b, float(n))).items():
            boot[k].append(val)
    tail = (1.0 - confidence) / 2.0

    def est(key: str) -> Estimate:
        samples = np.concatenate(boot[key])
        samples = samples[np.isfinite(samples)]
        lo, hi = np.quantile(samples, [tail, 1.0 - tail]) if samples.size else (np.nan, np.nan)
        return Estimate(float(point[key][0]), float(lo), float(hi))

    results = {e: EstimatorResult(quality=est(f"{e}_0"), cost=est(f"{e}_1")) for e in ESTIMATORS if e in estimators}
    return OPEResult(n=n, ess=ess, max_weight=float(w.max()), unsupported_mass=unsupported, confidence=confidence,
                     n_boot=n_boot, logged_quality=float(log.rewards.mean()), logged_cost=float(log.costs.mean()),
                     estimates=results, warnings=tuple(problems))

"""A candidate routing policy named the way the commands name one, and its off-policy estimate on the log.

A candidate is the live policy (`live`: each logged decision's own thresholds on its logged score), a
registered version (`NAME[/VERSION]`, `champion`) or a router usable without training (`heuristic`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gearshift.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from gearshift.learning.logs import DecisionLog
    from gearshift.learning.ope import OPEResult
    from gearshift.routers.base import Router
    from gearshift.store.versions import RouterVersion, VersionRegistry

LIVE = "live"  #: candidate name for the deterministic policy the log was made with (thresholds on logged scores)

Scorer = Callable[["Router", list[str]], "np.ndarray"]


def _p_strong(router: Router, prompts: list[str]) -> np.ndarray:
    return router.p_strong(prompts)


def resolve_candidate(ref: str, reg: VersionRegistry | None) -> tuple[Router | None, tuple[float, ...] | None,
                                                                        RouterVersion | None]:
    """(router or None for the live policy, its thresholds or None, the version when registered)."""
    from gearshift.routers.base import TrainableRouter
    from gearshift.routers.registry import load_router, make_router, parse_router_spec

    if ref == LIVE:
        return None, None, None
    version = None
    if reg is not None and ":" not in ref:
        version = reg.find(ref) if ref != "champion" else reg.get(ref)
    if version is not None:
        return load_router(version.path), version.thresholds, version
    name, params = parse_router_spec(ref)
    router = make_router(name, **params)
    if isinstance(router, TrainableRouter) and not router.is_fitted():
        raise ConfigError(f"{ref!r} is neither a registered version nor a router usable without training")
    return router, None, None


def policy_scores(log: DecisionLog, rows: np.ndarray, router: Router | None,
                  score: Scorer = _p_strong) -> np.ndarray:
    """p_strong of `router` on the logged rows `rows` (None: the live policy's logged scores); `score`: how the
    router scores the logged prompts (e.g. in batches behind a progress bar)."""
    if router is None:
        logged: np.ndarray = log.scores[rows]
        return logged
    missing = [int(i) for i in rows if log.prompts[i] is None]
    if missing:
        raise ConfigError(f"{len(missing)} of {len(rows)} labelled decisions have no prompt text to re-score "
                          "(keep [store] text = \"full\" and [exploration] record_prompts = true)")
    return score(router, [str(log.prompts[i]) for i in rows])


def candidate_probs(log: DecisionLog, rows: np.ndarray, router: Router | None,
                    thresholds: tuple[float, ...] | None, scores: np.ndarray | None = None,
                    score: Scorer = _p_strong) -> np.ndarray:
    """The candidate's (deterministic) tier distribution on the logged rows `rows` (`scores`: its p_strong there
    when already known, else from policy_scores)."""
    import numpy as np

    k = len(log.tiers)
    if scores is None:
        scores = policy_scores(log, rows, router, score)
    # the live policy: each row's own thresholds on its logged score
    per_row = [(thresholds if router is not None else None) or log.thresholds[i] for i in rows]
    idx = np.array([int(np.searchsorted(np.asarray(t), s, side="right")) if t else 0
                    for t, s in zip(per_row, scores, strict=True)], dtype=np.int64)
    out = np.zeros((len(rows), k))
    out[np.arange(len(rows)), np.minimum(idx, k - 1)] = 1.0
    return out


def run_ope(log: DecisionLog, ref: str, reg: VersionRegistry | None, reward: str, *, n_boot: int,
            min_ess: float = 30.0, warn_only: bool = False, thresholds: tuple[float, ...] | None = None,
            score: Scorer = _p_strong) -> tuple[OPEResult, RouterVersion | None]:
    """The off-policy estimate of candidate `ref` (see resolve_candidate) on the log, and its registered version."""
    from gearshift.learning.ope import evaluate_policy

    router, ths, version = resolve_candidate(ref, reg)
    bandit, rows = log.bandit(reward)  # type: ignore[arg-type]
    target = candidate_probs(log, rows, router, thresholds or ths, score=score)
    result = evaluate_policy(bandit, target, n_boot=n_boot, min_ess=min_ess,
                             on_violation="warn" if warn_only else "raise")
    return result, version

"""Logged gateway traffic as learning data: decisions joined with shadow/triage labels and user feedback.

The gateway's store (SQLite file or PostgreSQL) holds the decisions (tier, propensity, score, cost, the
prompt when `[store] text = "full"`) and, beside them, the closed loop's tables, all keyed by `request_id`. This module
reads them once into aligned arrays, `DecisionLog`, from which the estimators' inputs are cut:
`LoggedBandit` (off-policy evaluation) and `LoggedTraffic` (retraining).

Rewards: "judge" is the shadow judge's 0-1 score of the tier that answered, overridden by a human triage
label; "feedback" is the mean of the request's downstream signals (explicit ones win over implicit);
"both" averages them where both exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gearshift.errors import DataError
from gearshift.learning.ope import LoggedBandit, RewardMode, combine_rewards
from gearshift.learning.retrain import LoggedTraffic
from gearshift.learning.signal_model import signal_reward

#: Only for rows written before records said how they were concealed (`text_mode`).
_LEGACY_CONCEALED = ("sha256:", "hmac-sha256:", "[redacted")


def as_routed(row: dict[str, Any]) -> dict[str, Any]:
    """The row as learning reads it: the action is the tier the *policy* chose (the cascade's first rung), whose
    propensity the record carries; a cascade that escalated is the environment's answer to that action, so the
    row says `cascade_rejected` (the first rung's answer failed a check: a label) and keeps the whole cost."""
    steps = row.get("cascade")
    if not isinstance(steps, list) or not steps or not isinstance(steps[0], Mapping):
        return row
    first = steps[0]
    rejected = not first.get("shipped") and any(not v.get("passed", True) for v in first.get("verdicts") or ())
    return {**row, "tier": first.get("tier", row.get("tier")), "shipped_tier": row.get("tier"),
            "cascade_rejected": rejected}


def usable_prompt(value: Any, text_mode: Any = None) -> str | None:
    """The prompt text if the row kept it in full. A row that says its mode is believed (a prompt that merely
    starts with "sha256:" is still a prompt); only rows from before `text_mode` are judged by prefix."""
    if not isinstance(value, str) or not value or text_mode in ("hash", "redact"):
        return None
    if text_mode is None and value.startswith(_LEGACY_CONCEALED):
        return None
    return value


@dataclass(frozen=True)
class DecisionLog:
    """Routed decisions (one row each, oldest first) with everything learning joins onto them.

    `judge`/`feedback`: rewards of the chosen tier, NaN where absent. `gaps`: strongest-minus-cheapest
    score from labels (shadow scores of both tiers, or triage), NaN where absent. `tier_scores`: per row
    the judge's score of every tier it saw (for expected-quality reports), empty when unlabelled.
    """

    tiers: tuple[str, ...]
    request_ids: list[str]
    prompts: list[str | None]
    scores: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    explored: np.ndarray
    costs: np.ndarray
    thresholds: list[tuple[float, ...]]
    segments: list[Mapping[str, Any]]
    logging_probs: np.ndarray | None
    judge: np.ndarray
    feedback: np.ndarray
    gaps: np.ndarray
    tier_scores: list[dict[str, float]]
    experiment_arms: list[str | None] = field(default_factory=list)  # misroute experiment arm per row, if any
    #: rows whose judge reward is only a cascade verifier's rejection (no judge or reviewer spoke of them)
    rejection_only: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.request_ids)

    def rewards(self, mode: RewardMode = "judge", judge_weight: float = 0.5) -> np.ndarray:
        return combine_rewards(self.judge, self.feedback, mode, judge_weight)

    def judge_rewards(self) -> np.ndarray:
        """The judge (or reviewer) reward per row, NaN where there is none or only a cascade rejection: estimates
        of a tier's quality read these, where the labelled rows are a random sample (see `bandit`)."""
        if self.rejection_only is None or not self.rejection_only.any():
            return self.judge
        out: np.ndarray = np.where(self.rejection_only, np.nan, self.judge)
        return out

    def base_tiers(self) -> np.ndarray:
        """The tier each row's own thresholds gave its score: the deterministic live policy, no exploration."""
        return np.array([int(np.searchsorted(np.asarray(t), s, side="right")) if t else int(a)
                         for t, s, a in zip(self.thresholds, self.scores, self.actions, strict=True)], dtype=np.int64)

    def known_rewards(self) -> np.ndarray:
        """(n, K) every tier's judge reward where the shadow judge scored all tiers of the request (a reviewer's
        label of a two-tier request says the same), NaN elsewhere: counterfactuals OPE need not estimate."""
        out = np.full((len(self), len(self.tiers)), np.nan)
        for i, s in enumerate(self.tier_scores):
            if all(t in s for t in self.tiers):
                out[i] = [s[t] for t in self.tiers]
        return out

    def bandit(self, mode: RewardMode = "judge", judge_weight: float = 0.5) -> tuple[LoggedBandit, np.ndarray]:
        """(the labelled rows as a `LoggedBandit`, their row indices into this log). With judge rewards, rows
        whose every tier was judged carry those rewards as observed counterfactuals (`known_rewards`).

        A cascade rejection is not a reward here: every rejected answer carries one and no accepted answer does,
        so counting them would weigh rejected answers above their share and bias the estimate (the shadow
        judge's sample is random; the verifier's is not). Retraining still reads them as labels (`traffic`)."""
        r = combine_rewards(self.judge_rewards(), self.feedback, mode, judge_weight)
        keep = np.flatnonzero(np.isfinite(r))
        if keep.size == 0:
            raise DataError(f"no logged decision has a {mode} reward: enable [shadow] judging, collect "
                            f"feedback, or label triage items")
        known = self.known_rewards()[keep] if mode == "judge" else None
        log = LoggedBandit.from_arrays(self.actions[keep], self.propensities[keep], r[keep], self.costs[keep],
                                       n_actions=len(self.tiers), features=self.scores[keep],
                                       logging_probs=None if self.logging_probs is None else self.logging_probs[keep],
                                       known_rewards=known)
        return log, keep

    def traffic(self, mode: RewardMode = "judge", judge_weight: float = 0.5) -> tuple[LoggedTraffic, np.ndarray]:
        """(cheapest-vs-strongest rows with a prompt and a reward as `LoggedTraffic`, their indices).

        Middle tiers (three or more) are left out: the retraining targets are two-tier gaps.
        """
        r = self.rewards(mode, judge_weight)
        top = len(self.tiers) - 1
        ok = np.array([p is not None for p in self.prompts]) & ((self.actions == 0) | (self.actions == top))
        keep = np.flatnonzero(ok & (np.isfinite(r) | np.isfinite(self.gaps)))
        if keep.size == 0:
            raise DataError("no logged decision has both the prompt text and a reward or label: retraining "
                            "needs [store] text = \"full\" and [exploration] record_prompts = true")
        rk = r[keep]
        # a row with only a label gap still needs a reward in [0, 1]; its gap replaces the pseudo-label anyway
        rewards = np.clip(np.where(np.isfinite(rk), rk, 0.5), 0.0, 1.0)
        traffic = LoggedTraffic(prompts=[str(self.prompts[i]) for i in keep],
                                actions=(self.actions[keep] == top).astype(np.int64),
                                propensities=self.propensities[keep], rewards=rewards,
                                explored=self.explored[keep], label_gaps=self.gaps[keep])
        return traffic, keep


def infer_tiers(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Tier order cheap to strong: higher tiers were chosen for higher scores by the non-explored policy."""
    sums: dict[str, list[float]] = {}
    for r in rows:
        if r.get("tier") is not None and r.get("score") is not None and not r.get("explored"):
            sums.setdefault(str(r["tier"]), []).append(float(r["score"]))
    for r in rows:
        if r.get("tier") is not None:
            sums.setdefault(str(r["tier"]), [])
    if len(sums) < 2:
        raise DataError(f"the log shows {len(sums)} tier(s) {sorted(sums)}, as when every decision went to one; "
                        "name the tiers cheap to strong with --tiers (e.g. --tiers cheap,strong) or --config")
    return tuple(sorted(sums, key=lambda t: (float(np.mean(sums[t])) if sums[t] else 0.5, t)))


def _judge_rewards(labels: Sequence[Mapping[str, Any]], triage: Sequence[Mapping[str, Any]],
                   ) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    scores: dict[str, dict[str, float]] = {}
    for lab in labels:
        s = lab.get("scores")
        if isinstance(s, Mapping):
            scores[str(lab["request_id"])] = {str(k): float(v) for k, v in s.items() if v is not None}
    human = {str(it["request_id"]): str(it["label"]) for it in triage if it.get("label") in ("strong_needed",
                                                                                             "cheap_ok")}
    return scores, human


def _feedback_rewards(signals: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    explicit: dict[str, list[float]] = {}
    implicit: dict[str, list[float]] = {}
    for ev in signals:
        value = signal_reward(ev)  # the one signal model (learning/signal_model.py)
        if value is None:
            continue
        bucket = explicit if ev.get("source") == "explicit" else implicit
        bucket.setdefault(str(ev["request_id"]), []).append(value)
    return {rid: float(np.mean(explicit.get(rid) or implicit[rid])) for rid in {*explicit, *implicit}}


def read_log(store: str | Path, since: float | None = None, tiers: Sequence[str] | None = None) -> DecisionLog:
    """Routed decisions (auto/router routes, status ok, with a score) newer than `since`, joined with labels.

    `store` is a SQLite path or a store URL (`sqlite:///...`, `postgresql://...`)."""
    from gearshift.store.base import DecisionQuery
    from gearshift.store.factory import open_decision_store, open_label_store, sqlite_path, store_kind
    from gearshift.store.postgres import redact

    url = str(store)
    if store_kind(url) == "sqlite":
        where: str | Path = sqlite_path(url)
        if where != ":memory:" and not Path(where).exists():
            raise DataError("no gateway store here", path=where)
        url = f"sqlite:///{where}"
    else:
        where = redact(url)
    decisions = open_decision_store(url)
    try:
        rows = decisions.query(DecisionQuery(since=since, status="ok", limit=None))
    finally:
        decisions.close()
    rows = [as_routed(r) for r in rows if r.get("route") in ("auto", "router") and r.get("score") is not None
            and r.get("tier") is not None]
    rows.sort(key=lambda r: float(r["time"]))
    if not rows:
        raise DataError("no routed decisions in the requested window", path=where)
    order = tuple(tiers) if tiers else infer_tiers(rows)
    index = {t: i for i, t in enumerate(order)}
    rows = [r for r in rows if r["tier"] in index]
    if not rows:
        raise DataError(f"no logged decision used one of the tiers {list(order)}", path=where)
    labels_db = open_label_store(url)
    try:
        triage = labels_db.triage_items(status="all", limit=None)  # one read: labels and prompts both come from it
        scores, human = _judge_rewards(labels_db.labels(since=None), triage)
        feedback = _feedback_rewards(labels_db.signals(since=since))
        triage_prompts = {str(it["request_id"]): usable_prompt(it.get("prompt"), it.get("text_mode"))
                          for it in triage}
    finally:
        labels_db.close()
    return _assemble(rows, order, scores, human, feedback, triage_prompts)


def _assemble(rows: Sequence[Mapping[str, Any]], order: tuple[str, ...], scores: Mapping[str, Mapping[str, float]],
              human: Mapping[str, str], feedback: Mapping[str, float],
              triage_prompts: Mapping[str, Any]) -> DecisionLog:
    n, k = len(rows), len(order)
    cheap, strong = order[0], order[-1]
    judge, fb, gaps = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    rejection_only = np.zeros(n, dtype=bool)
    probs = np.zeros((n, k))
    have_probs = True
    tier_scores: list[dict[str, float]] = []
    for i, r in enumerate(rows):
        rid, tier = str(r["request_id"]), str(r["tier"])
        s = dict(scores.get(rid, {}))
        if tier in s:
            judge[i] = s[tier]
        if cheap in s and strong in s:
            gaps[i] = s[strong] - s[cheap]
        if r.get("cascade_rejected"):  # a verifier rejected this tier's answer: a label where the judge gave none
            if not np.isfinite(judge[i]):
                judge[i] = 0.0
                rejection_only[i] = True
            if tier == cheap and not np.isfinite(gaps[i]):
                gaps[i] = 1.0
        label = human.get(rid)
        if label is not None:  # a reviewer's label beats the judge, for every tier it speaks of
            judge[i] = 0.0 if (label == "strong_needed" and tier == cheap) else 1.0
            rejection_only[i] = False
            gaps[i] = 1.0 if label == "strong_needed" else 0.0
            s = {cheap: 1.0 - gaps[i], strong: 1.0}
        tier_scores.append(s)
        if rid in feedback:
            fb[i] = feedback[rid]
        tp, a, prop = r.get("tier_probabilities"), order.index(tier), float(r.get("propensity") or 1.0)
        if isinstance(tp, list) and len(tp) == k:
            probs[i] = tp
        elif prop >= 1.0 or k == 2:  # deterministic: every other tier had probability 0; two tiers: 1 - p
            probs[i] = (1.0 - prop) / (k - 1)
            probs[i, a] = prop
        else:
            have_probs = False
    return DecisionLog(
        tiers=order, request_ids=[str(r["request_id"]) for r in rows],
        prompts=[usable_prompt(r.get("prompt"), r.get("text_mode")) or triage_prompts.get(str(r["request_id"]))
                 for r in rows],
        scores=np.array([float(r["score"]) for r in rows]),
        actions=np.array([order.index(str(r["tier"])) for r in rows], dtype=np.int64),
        propensities=np.array([float(r.get("propensity") or 1.0) for r in rows]),
        explored=np.array([bool(r.get("explored")) for r in rows]),
        costs=np.array([float(r.get("cost_usd") or 0.0) for r in rows]),
        thresholds=[tuple(float(t) for t in (r.get("thresholds") or ())) for r in rows],
        segments=[dict(r.get("segment") or {}) for r in rows], logging_probs=probs if have_probs else None,
        judge=judge, feedback=fb, gaps=gaps, tier_scores=tier_scores,
        experiment_arms=[r.get("experiment_arm") for r in rows], rejection_only=rejection_only)

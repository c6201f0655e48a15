"""`gearshift bounds` on a gateway store filled with simulated serving of real GSM8K outcomes, and offline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gearshift.cli import main
from gearshift.data.registry import load_dataset
from gearshift.evaluation.metrics import Outcomes
from gearshift.learning.bounds import misroute_bounds
from gearshift.policy.experiment import MisrouteExperiment, arm_tier, onehot
from gearshift.records.record import record_row
from gearshift.store.labels import SignalEvent, SQLiteLabelStore
from gearshift.store.sqlite import SQLiteDecisionStore

TIERS = ("cheap", "strong")


@pytest.fixture(scope="module")
def gsm() -> Outcomes:
    data = load_dataset("gsm8k")
    names = data.model_names()
    return Outcomes.from_dataset(data, names[-1], names[0])


def _populate(db: Path, o: Outcomes, p_strong: np.ndarray, *, fraction: float = 0.4, passes: int = 2,
              label_share: float = 0.7, seed: int = 0) -> None:
    """Serve every prompt `passes` times as the gateway would (router at 0.5, arms mixed in), with the served
    model's recorded correctness as the judge label and user signals that follow wrong answers more often."""
    exp, rng, now = MisrouteExperiment(fraction, seed=seed), np.random.default_rng(seed), time.time()
    rows, labels, signals = [], [], []
    for k in range(passes):
        for i in range(len(o)):
            rid = f"gs-{k}-{i}"
            base = int(p_strong[i] >= 0.5)
            arm = exp.draw(rid)
            served = base if arm is None else arm_tier(arm, 2)
            probs = exp.mix(onehot(base, 2))
            scores = (float(o.s_weak[i]), float(o.s_strong[i]))
            rows.append(record_row({
                "request_id": rid, "time": now - 60 - i, "route": "auto", "router": "sim", "score": p_strong[i],
                "thresholds": [0.5], "tier": TIERS[served], "propensity": probs[served],
                "tier_probabilities": list(probs), "explored": arm is not None, "experiment_arm": arm,
                "cost_usd": float((o.c_weak, o.c_strong)[served][i])}))
            if rng.random() < label_share:
                labels.append({"request_id": rid, "time": now, "tier": TIERS[served],
                               "scores": dict(zip(TIERS, scores, strict=True))})
            if rng.random() < (0.7 if scores[served] < 0.5 else 0.05):
                signals.append(SignalEvent(request_id=rid, time=now, source="implicit",
                                           signal=str(rng.choice(["thumbs_down", "regeneration", "correction"]))))
    store = SQLiteDecisionStore(db)
    store.append_many(rows)
    store.close()
    lab = SQLiteLabelStore(db)
    for label in labels:
        lab.put_label(label)
    lab.add_signals(signals)
    lab.close()


def _bounds(db: Path, out: Path, *extra: str) -> dict[str, Any]:
    assert main(["bounds", "--db", str(db), "--since", "1d", "--n-boot", "200", "--json-out", str(out), *extra]) == 0
    res: dict[str, Any] = json.loads(out.read_text())
    return res


def test_logged_bounds_put_a_useful_router_between_the_arms_and_price_its_misroutes(
        gsm: Outcomes, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    gap = gsm.s_strong - gsm.s_weak
    p = np.clip(0.35 + 0.3 * (gap > 0) + rng.normal(0.0, 0.3, len(gap)), 0.0, 1.0)  # sees the gap, noisily
    truth = misroute_bounds(gsm.s_strong, gsm.s_weak, gsm.c_strong, gsm.c_weak, p >= 0.5)
    db = tmp_path / "d.sqlite"
    _populate(db, gsm, p)
    res = _bounds(db, tmp_path / "free.json", "--cost-per-bad-answer", "0")
    judge, signals = res["judge"], res["signals"]
    assert judge["source"] == "logged" and judge["n"] < signals["n"] == 2 * len(gsm)
    for src in (judge, signals):
        q = {k: src[k]["quality"] for k in ("all_cheap", "router", "all_strong")}
        assert q["all_cheap"] < q["router"] < q["all_strong"], q
        assert src["all_cheap"]["cost_usd"] < src["router"]["cost_usd"] < src["all_strong"]["cost_usd"]
        assert src["real_work"] and "doing real work" in src["verdict"]
        assert src["ci95"]["lift_over_random"][0] > 0
        assert src["money"]["worth_it"]  # bad answers cost nothing: routing only saves
        assert set(src["arm_means"]) == {"live", "all_cheap", "all_strong"}
    # the judge-label estimates recover what the recorded outcomes say, IPS-noise aside
    for k in ("all_cheap", "router", "all_strong"):
        assert judge[k]["quality"] == pytest.approx(getattr(truth, k).quality, abs=0.04)
    assert judge["router"]["strong_share"] == pytest.approx(truth.router.strong_share, abs=0.02)
    lo, hi = judge["ci95"]["gain_over_cheap"]
    assert lo < truth.router.quality - truth.all_cheap.quality < hi
    # a bad answer priced at $1 turns the same routing into a loss: misroutes cost more than the savings
    costly = _bounds(db, tmp_path / "costly.json", "--cost-per-bad-answer", "1")["judge"]
    assert costly["money"]["extra_bad_answers"] > 0 and costly["money"]["net_usd"] < 0
    assert not costly["money"]["worth_it"] and "not worth it" in costly["verdict"]


def test_a_random_router_is_not_doing_real_work(gsm: Outcomes, tmp_path: Path) -> None:
    p = np.random.default_rng(2).random(len(gsm))
    db = tmp_path / "r.sqlite"
    _populate(db, gsm, p, seed=3)
    res = _bounds(db, tmp_path / "r.json")
    for src in res.values():
        lo, hi = src["ci95"]["lift_over_random"]
        assert lo < 0 < hi and not src["real_work"] and "NOT shown" in src["verdict"]
        assert src["ci95"]["gain_over_cheap"][0] > 0  # it still beats all-cheap: it sends half the traffic strong


def test_offline_bounds_on_recorded_outcomes(tmp_path: Path) -> None:
    out = tmp_path / "off.json"
    assert main(["bounds", "--data", "gsm8k", "--router", "random", "--n", "300", "--threshold", "0.5",
                 "--n-boot", "200", "--json-out", str(out)]) == 0
    rec = json.loads(out.read_text())["recorded"]
    assert rec["source"] == "recorded" and rec["n"] == 300
    assert rec["all_cheap"]["quality"] <= rec["router"]["quality"] <= rec["all_strong"]["quality"]
    assert 0.35 < rec["router"]["strong_share"] < 0.65 and not rec["real_work"]  # a coin flip per prompt
    m = rec["money"]
    assert m["net_usd"] == pytest.approx(m["dollars_saved"] - m["extra_bad_answers"] * 0.05)


def test_bounds_refuse_a_log_that_never_served_the_strong_tier(tmp_path: Path) -> None:
    db, now = tmp_path / "cheap.sqlite", time.time()
    store = SQLiteDecisionStore(db)
    store.append_many([record_row({"request_id": f"r{i}", "time": now - i, "route": "auto", "score": 0.1,
                                   "thresholds": [0.5], "tier": "cheap", "cost_usd": 0.001}) for i in range(5)])
    store.close()
    assert main(["bounds", "--db", str(db), "--tiers", "cheap,strong", "--since", "1d"]) == 1

"""Exploration through the real gateway: every routed decision logs the probability of the tier it served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gateway.conftest import Upstreams
from gateway.harness import make_settings, send_prompts
from gearshift.gateway.settings import ExplorationSettings
from gearshift.policy.draw import remap, sticky_move
from gearshift.routers.base import RoutingScore
from gearshift.routers.policy import TierPolicy

N = 200


def _prompts(n: int) -> list[str]:
    """Distinct prompts (no conversation stickiness), short ones cheap and long ones strong for the heuristic."""
    easy = [f"hi there number {i}, thanks!" for i in range(n // 2)]
    hard = [f"Prove step by step that the integral of x^{i} from 0 to 3 is finite, then write a Python function "
            f"for it and analyze the complexity and the trade-offs of a symbolic approach. " * 2 for i in range(n // 2)]
    return easy + hard


def _run(upstreams: Upstreams, db: Path, prompts: list[str], **sections: Any) -> list[dict[str, Any]]:
    return send_prompts(make_settings([upstreams.cheap_a], upstreams.strong, db, **sections), prompts)


def test_epsilon_half_explores_half_and_logs_matching_propensities(upstreams: Upstreams, tmp_path: Path) -> None:
    rows = _run(upstreams, tmp_path / "d.sqlite", _prompts(N), exploration={"epsilon": 0.5, "seed": 7})
    assert len(rows) == N
    explored = np.array([r["explored"] for r in rows])
    # binomial(200, 0.5): 4 standard deviations is about +-0.14
    assert 0.36 < explored.mean() < 0.64, explored.mean()
    base = np.array([int(r["score"] >= r["thresholds"][0]) for r in rows])
    served = np.array([int(r["tier"] == "strong") for r in rows])
    prop = np.array([r["propensity"] for r in rows])
    # two tiers, uniform exploration at epsilon 0.5: the base tier has 0.75, the other 0.25
    assert np.allclose(prop[served == base], 0.75) and np.allclose(prop[served != base], 0.25)
    assert all(abs(sum(r["tier_probabilities"]) - 1) < 1e-9 for r in rows)
    assert all(r["tier_probabilities"][int(r["tier"] == "strong")] == r["propensity"] for r in rows)
    assert not np.any(served[~explored] != base[~explored])  # only exploration leaves the base tier
    assert 0.13 < (served != base).mean() < 0.37  # about epsilon / 2
    # the logged propensities are honest: inverse-propensity weights average to 1 per tier choice
    assert abs(np.mean(1.0 / prop) / 2 - 1.0) < 0.25
    assert 0.3 < base.mean() < 0.7  # both tiers were the base choice for a fair share of prompts
    assert all(r["prompt"] for r in rows)  # kept for retraining (record_prompts defaults on)


def test_without_exploration_propensity_stays_one(upstreams: Upstreams, tmp_path: Path) -> None:
    rows = _run(upstreams, tmp_path / "d.sqlite", _prompts(20), exploration={"record_prompts": False})
    assert {r["propensity"] for r in rows} == {1.0}
    assert not any(r["explored"] for r in rows) and all(r["tier_probabilities"] is None for r in rows)
    assert all(r["prompt"] is None for r in rows)
    assert {r["tier"] for r in rows} == {"cheap", "strong"}


def test_draw_is_replayable_and_stickiness_folds_probability_mass() -> None:
    from gearshift.policy.draw import decide

    cfg = ExplorationSettings(epsilon=0.5, seed=3)
    score = RoutingScore(p_strong=0.2, confidence=1.0, reason="")
    draws = [decide(cfg, TierPolicy(), score, f"gs-{i}", {})[0].tier_index for i in range(50)]
    assert draws == [decide(cfg, TierPolicy(), score, f"gs-{i}", {})[0].tier_index for i in range(50)]
    assert 0 < sum(draws) < 50
    # a conversation already on "strong" cannot go back to cheap: all the mass lands on strong
    assert remap((0.75, 0.25), sticky_move(1, allow_downgrade=False)) == (0.0, 1.0)
    assert remap((0.75, 0.25), sticky_move(1, allow_downgrade=True)) == (0.75, 0.25)
    seg = ExplorationSettings(epsilon=0.0, epsilon_by_segment={"fr": 1.0})
    assert decide(seg, TierPolicy(), score, "x", {"language": "en"})[1] == (1.0, 0.0)
    assert decide(seg, TierPolicy(), score, "x", {"language": "fr"})[1] == (0.5, 0.5)


def test_logged_exploration_feeds_retrain_and_ope_end_to_end(upstreams: Upstreams, tmp_path: Path) -> None:
    """Gateway log -> user feedback -> `gearshift retrain` -> `gearshift ope` on the new version."""
    from gearshift.cli import main
    from gearshift.store.labels import SignalEvent, SQLiteLabelStore

    db = tmp_path / "d.sqlite"
    rows = _run(upstreams, db, _prompts(120), exploration={"epsilon": 0.5, "seed": 1})
    labels = SQLiteLabelStore(db)
    # hard prompts answered cheap get a thumbs down; everything else a thumbs up
    labels.add_signals([SignalEvent(request_id=r["request_id"], time=r["time"] + 1, source="explicit",
                                    signal="thumbs_down" if ("Prove" in r["prompt"] and r["tier"] == "cheap")
                                    else "thumbs_up", tier=r["tier"]) for r in rows])
    labels.close()
    base = ["--db", str(db), "--since", "1h", "--reward", "feedback"]
    assert main(["retrain", *base, "--name", "e2e", "--param", "embedder=hashing:dim=32", "--param", "folds=2"]) == 0
    out = tmp_path / "ope.json"
    assert main(["ope", *base, "--candidate", "e2e/1", "--n-boot", "100", "--json-out", str(out)]) == 0
    import json

    res = json.loads(out.read_text())
    # the new router sends the hard prompts strong: better than the logged (explored) traffic did
    assert res["n"] == 120 and res["estimates"]["snips"]["quality"][0] > res["logged_quality"] + 0.05

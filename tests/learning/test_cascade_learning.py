"""Learning data the cascade cannot bias (#14): the logged action is the tier the policy chose, an escalation is
a label for it, and a misroute-experiment arm is served without the cascade's rescue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from closed_loop.shadow_harness import KeywordRouter, settings
from gateway.harness import GatewayServer
from gearshift.errors import DataError
from gearshift.gateway.app import create_app
from gearshift.learning.logs import read_log
from gearshift.store.base import DecisionQuery
from support.fake_upstream import Behaviour, FakeUpstream

PROMPTS = [f"{'HARD ' if i % 3 == 0 else ''}question number {i}" for i in range(30)]


def _run(db: Path, **sections: object) -> list[dict[str, object]]:
    with FakeUpstream(answer="a cut-off cheap", default=Behaviour(finish_reason="length")) as cheap, \
            FakeUpstream(answer="strong answer") as strong:  # every cheap answer fails the truncation check
        cfg = settings(cheap, strong, db, cascade={"enabled": True, "verifiers": ["empty", "truncation"]},
                       **sections)
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            for p in PROMPTS:
                assert c.post("/v1/chat/completions", json={
                    "model": "gearshift/auto", "messages": [{"role": "user", "content": p}]}).status_code == 200
            gw.flush()
            store = gw.gateway.store
            assert store is not None
            return sorted(store.query(DecisionQuery(limit=None)), key=lambda r: float(r["time"]))


def test_logged_action_is_the_policy_choice_and_an_escalation_labels_it(tmp_path: Path) -> None:
    db = tmp_path / "gw.sqlite"
    rows = _run(db, exploration={"epsilon": 0.5, "seed": 3})
    log = read_log(db, tiers=("cheap", "strong"))
    first = [r["cascade"][0]["tier"] for r in rows]  # type: ignore[index]
    assert "cheap" in first and all(r["tier"] == "strong" for r in rows)  # every cheap answer was rescued
    assert [log.tiers[a] for a in log.actions] == first  # not the shipped tier
    assert np.allclose(log.propensities, [float(r["propensity"]) for r in rows])  # type: ignore[arg-type]
    cheap_first = log.actions == 0
    assert np.all(log.judge[cheap_first] == 0.0) and np.all(log.gaps[cheap_first] == 1.0)  # failed a check
    assert np.all(np.isnan(log.judge[~cheap_first]))  # a strong first answer was never judged: no label
    # off-policy: a rejection is a label, not a reward: only rejected answers carry one, so without a shadow judge's
    # random sample there is no unbiased judge reward at all (tests/learning/test_ope_cascade_e2e.py shows the bias)
    with pytest.raises(DataError, match="no logged decision has a judge reward"):
        log.bandit("judge")


def test_misroute_experiment_arm_is_served_without_the_cascade(tmp_path: Path) -> None:
    rows = _run(tmp_path / "gw.sqlite", experiment={"misroute_fraction": 1.0, "arms": ["all_cheap"]})
    assert {r["experiment_arm"] for r in rows} == {"all_cheap"}
    assert all(r["tier"] == "cheap" and not r["cascade"] for r in rows)  # the cut answers shipped, as the arm says
    assert all(r["finish_reason"] == "length" for r in rows)


def test_without_a_cascade_rows_are_unchanged(tmp_path: Path) -> None:
    epsilon = 0.0
    db = tmp_path / "gw.sqlite"
    with FakeUpstream(answer="cheap") as cheap, FakeUpstream(answer="strong") as strong:
        cfg = settings(cheap, strong, db, exploration={"epsilon": epsilon})
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            for p in PROMPTS[:6]:
                c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                     "messages": [{"role": "user", "content": p}]})
            gw.flush()
    log = read_log(db, tiers=("cheap", "strong"))
    assert [log.tiers[a] for a in log.actions] == ["strong" if "HARD" in p else "cheap" for p in PROMPTS[:6]]

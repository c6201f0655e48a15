"""Misroute bounds on a real slice: recorded outcomes, and the same numbers recovered from logged serving."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.data.registry import load_dataset
from gearshift.errors import DataError
from gearshift.evaluation.metrics import Outcomes
from gearshift.learning.bounds import LoggedOutcome, bounds_from_logs, misroute_bounds
from gearshift.routers.registry import make_router


@pytest.fixture(scope="module")
def slice_() -> tuple[Outcomes, np.ndarray, list[str]]:
    data = load_dataset("gsm8k")
    sub = data.subset(np.arange(0, len(data), 2)[:600])
    strong, weak = sub.model_names()[-1], sub.model_names()[0]
    p = make_router("heuristic").p_strong(sub.prompts)
    routed = np.zeros(len(p), dtype=bool)  # the half the router ranks hardest (stable on ties) goes strong
    routed[np.argsort(-p, kind="stable")[: len(p) // 2]] = True
    return Outcomes.from_dataset(sub, strong, weak), routed, sub.prompts


def test_router_sits_between_all_cheap_and_all_strong(slice_: tuple[Outcomes, np.ndarray, list[str]]) -> None:
    o, routed, _ = slice_
    r = misroute_bounds(o.s_strong, o.s_weak, o.c_strong, o.c_weak, routed, cost_per_bad_answer=0.0)
    assert r.all_strong.quality >= r.router.quality >= r.all_cheap.quality
    assert r.all_strong.cost_usd > r.router.cost_usd > r.all_cheap.cost_usd
    assert r.money.dollars_saved > 0 and r.money.worth_it  # bad answers free: routing only saves
    assert 0.3 < r.router.strong_share < 0.7 and r.n == len(routed)


def test_expensive_bad_answers_make_routing_not_worth_it(slice_: tuple[Outcomes, np.ndarray, list[str]]) -> None:
    o, routed, _ = slice_
    r = misroute_bounds(o.s_strong, o.s_weak, o.c_strong, o.c_weak, routed, cost_per_bad_answer=10.0)
    assert r.money.extra_bad_answers > 0
    assert r.money.downstream_cost == pytest.approx(10.0 * r.money.extra_bad_answers)
    assert not r.money.worth_it and r.money.net_usd < 0


def test_tagged_slice_and_missing_costs(slice_: tuple[Outcomes, np.ndarray, list[str]]) -> None:
    o, routed, prompts = slice_
    tagged = np.array([len(p) > 300 for p in prompts])
    r = misroute_bounds(o.s_strong, o.s_weak, o.c_strong * np.nan, o.c_weak * np.nan, routed, tagged,
                        slice_name="long", strong_cost=0.01, weak_cost=0.001)
    assert r.n == int(tagged.sum()) and r.slice_name == "long"
    assert r.all_strong.cost_usd == pytest.approx(0.01)
    with pytest.raises(DataError):
        misroute_bounds(o.s_strong, o.s_weak, o.c_strong * np.nan, o.c_weak, routed)


def test_logged_randomised_serving_recovers_the_recorded_bounds(
        slice_: tuple[Outcomes, np.ndarray, list[str]]) -> None:
    o, routed, _ = slice_
    truth = misroute_bounds(o.s_strong, o.s_weak, o.c_strong, o.c_weak, routed)
    rng = np.random.default_rng(0)
    logs = []
    for _ in range(4):  # four passes over the slice: a few thousand logged requests
        flip = rng.random(len(routed)) < 0.3  # the online experiment serves the other tier 30% of the time
        served = routed ^ flip
        for i in range(len(routed)):
            q = o.s_strong[i] if served[i] else o.s_weak[i]
            c = o.c_strong[i] if served[i] else o.c_weak[i]
            logs.append(LoggedOutcome(bool(served[i]), bool(routed[i]), float(q), float(c),
                                      0.3 if flip[i] else 0.7))
    est = bounds_from_logs(logs)
    assert est.source == "logged"
    for name in ("router", "all_cheap", "all_strong"):
        assert getattr(est, name).quality == pytest.approx(getattr(truth, name).quality, abs=0.05)
    assert est.money.dollars_saved > 0


def test_logs_that_never_serve_a_tier_cannot_bound_it() -> None:
    logs = [LoggedOutcome(False, False, 1.0, 0.001) for _ in range(5)]
    with pytest.raises(DataError, match="both tiers"):
        bounds_from_logs(logs)

"""Shadow sampling, its hourly budget, and how judged scores become hardness labels."""

from __future__ import annotations

import random

import pytest

from gearshift.closed_loop.judge_pairwise import hardness_label, parse_pair
from gearshift.closed_loop.loop_settings import ShadowSettings
from gearshift.closed_loop.shadow import HourlyBudget, ShadowSampler


def test_every_nth_request_is_sampled_exactly() -> None:
    sampler = ShadowSampler(ShadowSettings(enabled=True, every_n=3))
    picks = [sampler.sample({}) for _ in range(12)]
    assert sum(picks) == 4 and picks[2] and picks[5] and not picks[0]


def test_segment_rate_overrides_the_default_rate() -> None:
    s = ShadowSettings(enabled=True, rate=0.0, segment_rates={"language=fr": 0.5})
    sampler = ShadowSampler(s, random.Random(1))
    fr = sum(sampler.sample({"language": "fr"}) for _ in range(2000))
    en = sum(sampler.sample({"language": "en"}) for _ in range(2000))
    assert en == 0 and 900 < fr < 1100


def test_budget_counts_calls_and_dollars_over_the_trailing_hour() -> None:
    now = [0.0]
    budget = HourlyBudget(max_requests=5, max_usd=1.0, clock=lambda: now[0])
    assert budget.try_reserve(3) and not budget.try_reserve(3) and budget.try_reserve(2)
    now[0] = 3601.0  # the first calls age out of the window
    assert budget.try_reserve(3)
    budget.spend(1.5)
    assert not budget.try_reserve(1)  # dollars exhausted even though calls remain
    now[0] = 7300.0
    assert budget.try_reserve(1)


@pytest.mark.parametrize(("scores", "label", "min_tier"), [
    ({"cheap": 0.8, "strong": 0.85}, "cheap_ok", "cheap"),  # within epsilon: cheap was enough
    ({"cheap": 0.2, "strong": 0.9}, "strong_needed", "strong"),
    ({"cheap": 0.9, "strong": 0.4}, "cheap_ok", "cheap"),  # cheap better
    ({"cheap": 0.1, "mid": 0.85, "strong": 0.9}, "strong_needed", "mid"),
])
def test_hardness_label_is_the_cheapest_tier_within_epsilon(scores: dict[str, float], label: str,
                                                            min_tier: str) -> None:
    got_label, got_min, _ = hardness_label(scores, ["cheap", "mid", "strong"], 0.1)
    assert (got_label, got_min) == (label, min_tier)


def test_single_answer_gets_no_label() -> None:
    assert hardness_label({"cheap": 0.3}, ["cheap", "strong"], 0.1) == (None, None, None)


def test_pairwise_reply_parsing() -> None:
    assert parse_pair("A: 7, B: 9\nB explains the proof.") == (7, 9, "B explains the proof")
    assert parse_pair("a=3/10; b = 10/10") == (3, 10, "")
    assert parse_pair("Both are fine") is None

"""The random baseline: uniform, repeatable per prompt, different per seed."""

from __future__ import annotations

import numpy as np

from gearshift.routers.random import RandomRouter

from .conftest import mmlu_prompts


def test_uniform_on_real_prompts() -> None:
    p = RandomRouter(seed=0).p_strong(mmlu_prompts(2000))
    assert abs(p.mean() - 0.5) < 0.03
    hist, _ = np.histogram(p, bins=10, range=(0.0, 1.0))
    assert hist.min() > 150 and hist.max() < 250  # about 200 per decile


def test_same_prompt_same_score_any_order() -> None:
    router = RandomRouter(seed=7)
    prompts = ["a", "b", "c", "a"]
    scores = router.p_strong(prompts)
    assert scores[0] == scores[3]
    assert router.p_strong(prompts[::-1])[::-1].tolist() == scores.tolist()
    assert RandomRouter(seed=7).score("b") == router.score("b")


def test_seed_changes_scores() -> None:
    prompts = mmlu_prompts(200)
    a, b = RandomRouter(seed=1).p_strong(prompts), RandomRouter(seed=2).p_strong(prompts)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.2

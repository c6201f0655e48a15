"""The heuristic's rules: each one fires where a user would expect and shows up in the explanation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gearshift.errors import RouterError
from gearshift.routers.heuristic import DEFAULT_WEIGHTS, RULES, HeuristicRouter

from .conftest import auc, mmlu_slice


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def test_contributions_add_up_to_the_score() -> None:
    router = HeuristicRouter()
    s = router.score("Prove that the integral of x^2 over [0, 1] is 1/3. Explain why, step by step.")
    assert set(s.features) == set(RULES)
    assert logit(s.p_strong) == pytest.approx(router.bias + sum(s.features.values()))
    assert s.reason.startswith("math") or s.reason.startswith("reasoning")


@pytest.mark.parametrize(
    ("rule", "prompt"),
    [
        ("code", "Fix this bug:\n```python\ndef add(a, b):\n    return a - b\n```"),
        ("math", "Solve the equation 3x + 5 = 20 and compute x^2."),
        ("reasoning", "Compare the pros and cons of nuclear power and explain why the trade-offs matter."),
        ("multi_intent", "What is DNS? How does caching work? Also, why do TTLs exist?"),
        ("constraints", "Answer in JSON with at most 3 bullet points and exactly 50 words."),
        ("math", "Resuelve la ecuación y demostrar el resultado."),
        ("reasoning", "Warum ist der Himmel blau? Erkläre es Schritt für Schritt."),
        ("math", "请证明这个方程有两个实数根"),
        ("code", "Напиши код на python для сортировки"),
    ],
)
def test_rule_fires_and_is_named(rule: str, prompt: str) -> None:
    s = HeuristicRouter().score(prompt)
    assert s.features[rule] > 0
    assert rule in s.reason
    assert s.p_strong > HeuristicRouter().score("ok").p_strong


def test_chitchat_pulls_down_in_several_languages() -> None:
    router = HeuristicRouter()
    for greeting in ("hello, how are you?", "hola, gracias", "bonjour !", "你好", "привет"):
        s = router.score(greeting)
        assert s.features["chitchat"] < 0, greeting
        assert s.p_strong < 1 / (1 + math.exp(-router.bias))


def test_length_grows_monotonically_and_saturates() -> None:
    router = HeuristicRouter()
    vals = [router.score("word " * n).features["length"] for n in (10, 100, 400, 2000, 10000)]
    assert vals == sorted(vals) and vals[0] == 0.0 and vals[-1] == vals[-2] == DEFAULT_WEIGHTS["length"]


def test_more_intents_score_higher() -> None:
    router = HeuristicRouter()
    one = router.score("What is DNS?").features["multi_intent"]
    three = router.score("What is DNS? What is TCP? What is BGP?").features["multi_intent"]
    listed = router.score("Do these:\n1. summarise\n2. translate\n3. critique\n4. rewrite").features["multi_intent"]
    assert one == 0.0 < three and listed > 0.0


def test_weights_and_keywords_are_configurable() -> None:
    prompt = "please frobnicate the widget"
    assert HeuristicRouter().score(prompt).features["code"] == 0.0
    custom = HeuristicRouter(keywords={"code": ["frobnicate"]}, weights={"code": 3.0, "length": 0.0})
    s = custom.score(prompt)
    assert s.features["code"] > 0 and s.features["length"] == 0.0
    assert custom.score("word " * 2000).features["length"] == 0.0
    custom.set_params(keywords={"code": ["widget*"]})  # recompiles: widget still matches via the new list
    assert custom.score("widgets galore").features["code"] > 0


def test_unknown_rule_is_an_error() -> None:
    with pytest.raises(RouterError, match="unknown heuristic rule"):
        HeuristicRouter(weights={"vibes": 1.0}).score("hi")


def test_fit_learns_weights_and_honours_sample_weight() -> None:
    prompts, gaps = mmlu_slice(n_per_subject=30)
    fitted = HeuristicRouter().fit(prompts, gaps)
    assert fitted.coef_.shape == (len(RULES),)
    # learned scores are calibrated in the large: mean p_strong matches the mean soft label on train
    assert fitted.p_strong(prompts).mean() == pytest.approx(((gaps + 1) / 2).mean(), abs=0.02)
    # zero weight is the same as leaving the example out
    half = np.arange(len(prompts)) % 2 == 0
    weighted = HeuristicRouter().fit(prompts, gaps, sample_weight=half.astype(float))
    dropped = HeuristicRouter().fit([p for p, h in zip(prompts, half, strict=True) if h], gaps[half])
    np.testing.assert_allclose(weighted.coef_, dropped.coef_, atol=1e-4)


def test_prior_ranks_hard_mmlu_subjects_above_easy_ones() -> None:
    """Abstract algebra (math) should look harder to the rules than marketing."""
    algebra, _ = mmlu_slice(40, subjects=("abstract_algebra",))
    marketing, _ = mmlu_slice(40, subjects=("marketing",))
    router = HeuristicRouter()
    scores = router.p_strong(algebra + marketing)
    assert auc(scores, np.arange(len(scores)) < len(algebra)) > 0.7

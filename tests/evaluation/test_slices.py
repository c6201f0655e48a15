from __future__ import annotations

import numpy as np

from gearshift.data.segments import has_code, length_bucket, script_of
from gearshift.evaluation.metrics import MetricSettings, Outcomes
from gearshift.evaluation.slices import DERIVED_SEGMENTS, FlagRule, derived_segments, segment_metrics


def test_script_is_the_dominant_script() -> None:
    assert script_of("What is the capital of France?") == "ascii"
    assert script_of("Quelle est la capitale de la Bélgique ? Réponds en français.") == "latin"
    assert script_of("Какая столица Франции?") == "cyrillic"
    assert script_of("フランスの首都はどこですか") == "kana"
    assert script_of("法国的首都是哪里？") == "han"
    assert script_of("12 + 7 = ?") == "none"


def test_length_buckets_use_estimated_tokens() -> None:
    assert length_bucket("hi") == "short"
    assert length_bucket("x" * 196) == "short" and length_bucket("x" * 197) == "medium"  # 49 vs 50 tokens
    assert length_bucket("x" * 400) == "medium"
    assert length_bucket("x" * 796) == "medium" and length_bucket("x" * 797) == "long"  # 199 vs 200
    assert length_bucket("x" * 2000) == "long"
    assert length_bucket("x" * 4000) == "long" and length_bucket("x" * 4001) == "very_long"  # 1000 vs 1001
    assert length_bucket("x" * 8000) == "very_long"
    assert length_bucket("漢" * 300) == "long"  # CJK: about a token per character


def test_code_detection() -> None:
    assert has_code("Fix this:\n```python\nprint(1)\n```")
    assert has_code("def f(x):\n    return x + 1\n")
    assert not has_code("Write a poem about the sea; make it rhyme.")
    seg = derived_segments(["def f():\n  return 1\n", "hello"])
    assert seg["has_code"] == ["yes", "no"]
    assert tuple(seg) == DERIVED_SEGMENTS


def test_derived_language_is_the_iso_code_and_script_is_kept() -> None:
    seg = derived_segments(["Quelle est la capitale de la Belgique et pourquoi ?", "Какая столица Франции?"])
    assert seg["language"] == ["fr", "ru"]
    assert seg["script"] == ["ascii", "cyrillic"]


def test_segment_with_far_more_quality_loss_is_flagged() -> None:
    n = 1000
    rng = np.random.default_rng(0)
    segment = np.where(np.arange(n) < 100, "bad", "good").tolist()
    ss = np.ones(n)
    sw = (rng.random(n) < 0.9).astype(float)
    sw[:100] = 0.0  # every "bad" prompt needs strong
    p = np.where(np.arange(n) < 100, 0.1, rng.random(n))  # ... and the router sends them all cheap
    out = Outcomes(ss, sw, np.full(n, np.nan), np.full(n, np.nan))
    from gearshift.evaluation.metrics import compute_metrics

    overall = compute_metrics(p, out, MetricSettings()).confusion.quality_loss_rate
    rows = segment_metrics(p, out, {"kind": segment}, MetricSettings(), overall)
    by_value = {r.value: r for r in rows}
    assert by_value["bad"].flagged and not by_value["good"].flagged
    assert by_value["bad"].metrics.n == 100
    assert by_value["bad"].metrics.confusion.quality_loss == 100


def test_flag_rule_needs_size_and_significance() -> None:
    rule = FlagRule()
    assert not rule.flags(losses=5, n=10, overall_rate=0.05)  # too small
    assert not rule.flags(losses=4, n=30, overall_rate=0.05)  # 13% vs 5%: not significant at z >= 3
    assert rule.flags(losses=40, n=100, overall_rate=0.05)
    assert not rule.flags(losses=9, n=100, overall_rate=0.05)  # below 2x


def test_one_loss_is_an_anecdote_not_a_flagged_segment() -> None:
    rule = FlagRule()
    # with a tiny overall rate one loss in 70 prompts passes the z test, but one prompt is no segment problem
    assert not rule.flags(losses=1, n=70, overall_rate=0.001)
    assert not rule.flags(losses=2, n=70, overall_rate=0.0)
    assert rule.flags(losses=3, n=70, overall_rate=0.001)

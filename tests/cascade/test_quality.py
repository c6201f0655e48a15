"""Verifier quality against recorded GSM8K correctness (a small slice of the real data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gearshift.cascade.math_verifiers import ArithmeticVerifier, FinalAnswerVerifier
from gearshift.cascade.quality import (
    GSM8K_CHEAP_MODEL,
    LabelledAnswer,
    load_gsm8k_answers,
    quality_table,
    verifier_quality,
)
from gearshift.cascade.verifiers import EmptyAnswerVerifier
from gearshift.config import default_data_dir
from gearshift.errors import DataError


@pytest.fixture(scope="module")
def gsm8k_path() -> Path:
    return default_data_dir() / "routellm" / "gsm8k" / "gsm8k_responses.csv"


def answer(text: str, correct: bool) -> LabelledAnswer:
    return LabelledAnswer({"messages": [{"role": "user", "content": "q"}]},
                          {"choices": [{"message": {"role": "assistant", "content": text}}]}, correct)


def test_metrics_on_crafted_answers() -> None:
    items = [answer("#### 4", True), answer("#### 5", False), answer("no number", True), answer("none", False),
             answer("#### 7", True)]
    q = verifier_quality([FinalAnswerVerifier()], items)
    assert (q.true_accept, q.false_accept, q.false_reject, q.true_reject) == (2, 1, 1, 1)
    assert q.precision == pytest.approx(2 / 3) and q.recall == pytest.approx(2 / 3)
    assert q.false_accept_rate == pytest.approx(1 / 2) and q.n == 5


def test_gsm8k_slice_loads_the_cheap_models_answers(gsm8k_path: Path) -> None:
    items = load_gsm8k_answers(gsm8k_path, limit=20, offset=5)
    assert len(items) == 20
    assert all(i.response["choices"][0]["message"]["content"] for i in items)
    assert {i.correct for i in items} == {True, False}


def test_gsm8k_final_answer_and_arithmetic_beat_accepting_everything(gsm8k_path: Path) -> None:
    items = load_gsm8k_answers(gsm8k_path, GSM8K_CHEAP_MODEL, limit=300)
    everything = verifier_quality([EmptyAnswerVerifier()], items)
    assert everything.recall == 1.0 and everything.false_accept_rate == 1.0
    assert everything.precision == pytest.approx(everything.base_accuracy)
    combined = verifier_quality([FinalAnswerVerifier(), ArithmeticVerifier()], items)
    # Shipping only verified cheap answers must ship a larger share of correct ones than shipping all,
    # while still accepting most correct answers (else the cascade escalates nearly everything).
    assert combined.precision > everything.precision + 0.03
    assert combined.false_accept_rate < 0.9 and combined.recall > 0.8
    rows = quality_table([everything, combined])
    assert rows[1]["verifier"] == "final_answer+arithmetic" and rows[1]["n"] == 300


def test_missing_model_column_is_a_data_error(gsm8k_path: Path) -> None:
    with pytest.raises(DataError, match="missing column"):
        load_gsm8k_answers(gsm8k_path, model="no-such-model", limit=1)

"""The learned answer check (cascade/answer_model.py): conventions, quality on held-out GSM8K answers, and
through the gateway's cascade."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gateway.harness import make_settings, serve
from gearshift.cascade.answer_model import FEATURE_NAMES, AnswerModel, AnswerModelVerifier, question_text
from gearshift.cascade.factory import build_cascade
from gearshift.cascade.math_verifiers import ArithmeticVerifier, FinalAnswerVerifier
from gearshift.cascade.quality import LabelledAnswer, load_gsm8k_answers
from gearshift.cascade.verifiers import answer_text
from gearshift.config import default_data_dir
from gearshift.errors import ConfigError
from gearshift.store.base import DecisionQuery
from support.fake_upstream import Behaviour, FakeUpstream


@pytest.fixture(scope="module")
def answers() -> list[LabelledAnswer]:
    return load_gsm8k_answers(default_data_dir() / "routellm" / "gsm8k" / "gsm8k_responses.csv", limit=900)


def _fit(items: list[LabelledAnswer], **params: float) -> AnswerModel:
    return AnswerModel(**params).fit([question_text(i.request) for i in items],  # type: ignore[arg-type]
                                     [answer_text(i.response) for i in items], [i.correct for i in items])


def _proba(model: AnswerModel, items: list[LabelledAnswer]) -> np.ndarray:
    return model.predict_proba([question_text(i.request) for i in items], [answer_text(i.response) for i in items])


def test_fit_follows_scikit_learn_conventions_and_saves_as_json(answers: list[LabelledAnswer],
                                                                tmp_path: Path) -> None:
    model = AnswerModel(C=0.5, target_ship_rate=0.6)
    assert model.fit([question_text(i.request) for i in answers[:200]],
                     [answer_text(i.response) for i in answers[:200]], [i.correct for i in answers[:200]]) is model
    assert (model.C, model.target_ship_rate) == (0.5, 0.6)  # settings untouched by fit
    assert {k for k in vars(model) if k.endswith("_")} == {"mean_", "scale_", "coef_", "intercept_", "threshold_",
                                                          "n_train_"}
    path = model.save(tmp_path / "m.json")
    state = json.loads(path.read_text())
    assert state["features"] == list(FEATURE_NAMES) and state["n_train"] == 200
    again = AnswerModel.load(path)
    np.testing.assert_allclose(_proba(again, answers[200:260]), _proba(model, answers[200:260]))
    assert again.threshold_ == model.threshold_


@pytest.mark.parametrize("content, message", [
    ("not json", "cannot read"), ('{"format": "other"}', "not a gearshift answer model"),
    ('{"format": "gearshift.answer_model/1", "features": ["x"]}', "other features"),
    (json.dumps({"format": "gearshift.answer_model/1", "features": list(FEATURE_NAMES), "params": {},
                 "mean": [0.0], "scale": [1.0], "coef": [1.0], "intercept": 0, "threshold": 0.5, "n_train": 3}),
     "wrong length"),
])
def test_a_bad_model_file_is_a_clear_config_error(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "m.json").write_text(content)
    with pytest.raises(ConfigError, match=message):
        AnswerModel.load(tmp_path / "m.json")


def test_fit_refuses_what_it_cannot_learn_from() -> None:
    with pytest.raises(ConfigError, match="both outcomes"):
        AnswerModel().fit(["2 + 2?"] * 20, ["#### 4"] * 20, [True] * 20)
    with pytest.raises(ConfigError, match="same length"):
        AnswerModel().fit(["q"], ["a", "b"], [True])


def test_held_out_false_accepts_are_far_below_the_rule_checks(answers: list[LabelledAnswer]) -> None:
    """Fitted on 3 folds' worth, judged on the held-out fold: ships about the target share, and the wrong
    answers it ships are a much smaller share than the rule checks let through on the same answers."""
    correct = np.array([i.correct for i in answers])
    rules = [FinalAnswerVerifier(), ArithmeticVerifier()]
    rule_ok = np.array([all(v.verify(i.request, i.response).passed for v in rules) for i in answers])
    shipped = np.zeros(len(answers), dtype=bool)
    folds = np.arange(len(answers)) % 3
    for k in range(3):
        model = _fit([a for a, f in zip(answers, folds, strict=True) if f != k], target_ship_rate=0.55)
        shipped[folds == k] = _proba(model, [a for a, f in zip(answers, folds, strict=True) if f == k]) \
            >= model.threshold_

    def false_accept(s: np.ndarray) -> float:
        return float((s & ~correct).sum() / (~correct).sum())

    assert 0.45 <= shipped.mean() <= 0.65
    assert false_accept(shipped) <= 0.36 < false_accept(rule_ok)  # full data, 5-fold x 3 seeds: 0.283 vs 0.616
    assert correct[shipped].mean() > correct[rule_ok].mean() + 0.05


def test_no_numbers_no_verdict(answers: list[LabelledAnswer]) -> None:
    verifier = AnswerModelVerifier(_fit(answers[:100]))
    prose = {"messages": [{"role": "user", "content": "Write a haiku about autumn."}]}
    assert verifier.verify(prose, {"choices": [{"message": {"content": "Leaves fall..."}}]}) is None
    verdict = verifier.verify(answers[150].request, answers[150].response)
    assert verdict is not None and 0.0 <= (verdict.score or 0.0) <= 1.0


def test_the_cascade_config_needs_a_model_file(tmp_path: Path, answers: list[LabelledAnswer]) -> None:
    with pytest.raises(ConfigError, match="answer_model_path"):
        build_cascade({"verifiers": ["answer_model"]})
    path = _fit(answers[:100]).save(tmp_path / "m.json")
    _, verifiers = build_cascade({"verifiers": ["answer_model"], "answer_model_path": str(path),
                                  "answer_model_min_p": 0.9})
    assert isinstance(verifiers[0], AnswerModelVerifier) and verifiers[0].min_p == 0.9


def test_through_the_gateway_a_likely_wrong_answer_escalates_and_a_likely_right_one_ships(
        answers: list[LabelledAnswer], tmp_path: Path) -> None:
    model = _fit(answers[:600])
    held = answers[600:]
    p = _proba(model, held)
    worst = min((i for i in range(len(held)) if not held[i].correct), key=lambda i: p[i])
    best = max((i for i in range(len(held)) if held[i].correct), key=lambda i: p[i])
    assert p[worst] < model.threshold_ <= p[best]
    path = model.save(tmp_path / "answer-model.json")
    with FakeUpstream() as cheap, FakeUpstream(answer="strong answer") as strong:
        cheap.script(Behaviour(text=answer_text(held[worst].response)),
                     Behaviour(text=answer_text(held[best].response)))
        settings = make_settings([cheap], strong, tmp_path / "d.sqlite",
                                 router={"name": "heuristic", "thresholds": [0.999]},
                                 cascade={"enabled": True, "verifiers": ["answer_model"],
                                          "answer_model_path": str(path)})
        server = serve(settings)
        try:
            with server.client() as c:
                wrong = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": [
                    {"role": "user", "content": question_text(held[worst].request)}]})
                right = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": [
                    {"role": "user", "content": question_text(held[best].request)}]})
            server.flush()
            store = server.gateway.store
            assert store is not None
            rows = {r["request_id"]: r for r in store.query(DecisionQuery(limit=None))}
        finally:
            server.stop()
    assert wrong.status_code == right.status_code == 200
    assert wrong.headers["x-gearshift-tier"] == "strong" and wrong.json()["choices"][0]["message"]["content"] == \
        "strong answer"
    assert right.headers["x-gearshift-tier"] == "cheap"
    escalated = rows[wrong.headers["x-gearshift-request-id"]]
    assert escalated["escalated"]
    verdicts = [v for rung in escalated["cascade"] for v in rung.get("verdicts", [])]
    assert any(v["name"] == "answer_model" and not v["passed"] for v in verdicts)
    assert not rows[right.headers["x-gearshift-request-id"]]["escalated"]

"""A learned answer check for word problems: p(correct) from the question and the cheap answer alone.

The rule checks (`final_answer`, `arithmetic`) pass a fluent wrong answer, because its chain of correct
arithmetic looks fine. What a wrong chain often shows is structural: quantities from the question it never
used, a final answer copied from the question, a long detour, a negative or fractional count. A logistic
regression over a handful of such features, fitted on recorded answers with known correctness, ranks
answers well enough to ship the likely-right half (figures: docs/cascade.md, benchmarks/answer_verifier.py).

It follows scikit-learn's conventions (settings in `__init__`, `fit` returns self, learned state ends in
`_`) and saves as JSON, never pickle. It only judges word problems: a question without numbers, or an answer
without one, gets no verdict (`None`), which never blocks shipping.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gearshift.cascade.math_verifiers import _ANNOTATION, _EQUATION, calculations, final_answer_pattern, parse_number
from gearshift.cascade.verifiers import Verdict, answer_text
from gearshift.errors import ConfigError
from gearshift.records.usage import message_text

FORMAT = "gearshift.answer_model/1"
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")
_FINAL = final_answer_pattern()

#: what each column of :func:`answer_features` measures, in order (saved with the model and checked on load)
FEATURE_NAMES: tuple[str, ...] = (
    "answer_chars_log", "answer_lines", "answer_numbers", "question_numbers", "unused_question_numbers",
    "unused_share", "has_final", "final_is_integer", "final_magnitude_log", "final_in_question",
    "final_negative", "equations", "calculator_annotations", "wrong_calculations", "question_chars_log",
    "answer_to_question_length", "hedges",
)
_HEDGES = ("however", "wait", "assume", "assuming", "approximately", "not possible", "cannot be")


def _numbers(text: str) -> list[float]:
    out = []
    for m in _NUMBER.findall(text):
        try:
            out.append(float(m.replace(",", "")))
        except ValueError:
            continue
    return out


def answer_features(question: str, answer: str) -> list[float]:
    """One row of :data:`FEATURE_NAMES` for a (question, answer) pair."""
    q_numbers, a_numbers = _numbers(question), _numbers(answer)
    q_distinct, a_set = set(q_numbers), set(a_numbers)
    unused = sum(1 for x in q_distinct if x not in a_set)
    finals = _FINAL.findall(answer)
    final: float | None = None
    if finals:
        try:
            final = parse_number(finals[-1])
        except ValueError:
            final = None
    elif a_numbers:
        final = a_numbers[-1]  # no marker: the last number stated is the answer
    wrong = sum(1 for *_, right in calculations(answer) if not right)
    lowered = answer.lower()
    return [
        math.log1p(len(answer)), float(answer.count("\n")), float(len(a_numbers)), float(len(q_numbers)),
        float(unused), unused / max(1, len(q_distinct)), float(bool(finals)),
        float(final is not None and float(final).is_integer()),
        math.log10(abs(final) + 1.0) if final is not None else 0.0,
        float(final is not None and final in q_distinct), float(final is not None and final < 0),
        float(len(_EQUATION.findall(answer))), float(len(_ANNOTATION.findall(answer))), float(wrong),
        math.log1p(len(question)), len(answer) / max(1, len(question)),
        float(sum(lowered.count(h) for h in _HEDGES)),
    ]


def question_text(request: Mapping[str, Any]) -> str:
    """The last user message's text (string content or its text parts)."""
    messages = request.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message_text(message) or ""
    return ""


class AnswerModel:
    """Logistic regression on :func:`answer_features`; `threshold_` ships `target_ship_rate` of answers.

    The threshold is set on out-of-fold probabilities of the training answers, so it is not the in-sample
    quantile of an overfitted model.
    """

    def __init__(self, C: float = 1.0, target_ship_rate: float = 0.55, n_folds: int = 5,
                 random_state: int = 0) -> None:
        self.C = C
        self.target_ship_rate = target_ship_rate
        self.n_folds = n_folds
        self.random_state = random_state

    def fit(self, questions: Sequence[str], answers: Sequence[str], correct: Sequence[bool]) -> AnswerModel:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        if not 0.0 < self.target_ship_rate <= 1.0:
            raise ConfigError(f"target_ship_rate must be in (0, 1], got {self.target_ship_rate}")
        if not len(questions) == len(answers) == len(correct):
            raise ConfigError("questions, answers and correct must have the same length")
        y = np.asarray(correct, dtype=int)
        if len(y) < 2 * self.n_folds or y.min() == y.max():
            raise ConfigError(f"need at least {2 * self.n_folds} answers with both outcomes to fit an answer model")
        x = np.array([answer_features(q, a) for q, a in zip(questions, answers, strict=True)])
        self.mean_ = x.mean(axis=0)
        self.scale_ = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        z = (x - self.mean_) / self.scale_
        oof = np.zeros(len(y))
        folds = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.random_state)
        for train, test in folds.split(z, y):
            fold_model = LogisticRegression(C=self.C, max_iter=2000).fit(z[train], y[train])
            oof[test] = fold_model.predict_proba(z[test])[:, 1]
        model = LogisticRegression(C=self.C, max_iter=2000).fit(z, y)
        self.coef_ = model.coef_[0].astype(float)
        self.intercept_ = float(model.intercept_[0])
        self.threshold_ = float(np.quantile(oof, 1.0 - self.target_ship_rate))
        self.n_train_ = len(y)
        shipped, right = oof >= self.threshold_, y == 1
        self.oof_quality_ = {  # what the threshold does on answers each fold did not see: the fit's own report
            "ship_rate": float(shipped.mean()), "precision": float(right[shipped].mean()) if shipped.any() else 0.0,
            "recall": float(shipped[right].mean()), "false_accept": float(shipped[~right].mean()),
            "base_accuracy": float(right.mean()),
        }
        return self

    def predict_proba(self, questions: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        """p(correct) per answer."""
        x = np.array([answer_features(q, a) for q, a in zip(questions, answers, strict=True)])
        z = (x - self.mean_) / self.scale_
        return np.asarray(1.0 / (1.0 + np.exp(-(z @ self.coef_ + self.intercept_))))

    def save(self, path: str | Path) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "format": FORMAT, "features": list(FEATURE_NAMES),
            "params": {"C": self.C, "target_ship_rate": self.target_ship_rate, "n_folds": self.n_folds,
                       "random_state": self.random_state},
            "mean": self.mean_.tolist(), "scale": self.scale_.tolist(), "coef": self.coef_.tolist(),
            "intercept": self.intercept_, "threshold": self.threshold_, "n_train": self.n_train_,
            "oof_quality": self.oof_quality_,
        }
        out.write_text(json.dumps(state, indent=1), encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: str | Path) -> AnswerModel:
        p = Path(path)
        try:
            state = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{p}: cannot read answer model ({exc})") from exc
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ConfigError(f"{p}: not a gearshift answer model (format {FORMAT!r} expected)")
        if state.get("features") != list(FEATURE_NAMES):
            raise ConfigError(f"{p}: fitted on other features than this version computes; refit it")
        try:
            model = cls(**state["params"])
            model.mean_ = np.asarray(state["mean"], dtype=float)
            model.scale_ = np.asarray(state["scale"], dtype=float)
            model.coef_ = np.asarray(state["coef"], dtype=float)
            model.intercept_ = float(state["intercept"])
            model.threshold_ = float(state["threshold"])
            model.n_train_ = int(state["n_train"])
            model.oof_quality_ = {str(k): float(v) for k, v in dict(state.get("oof_quality") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{p}: malformed answer model ({exc})") from exc
        if not model.mean_.shape == model.scale_.shape == model.coef_.shape == (len(FEATURE_NAMES),):
            raise ConfigError(f"{p}: malformed answer model (arrays of the wrong length)")
        return model


class AnswerModelVerifier:
    """Cascade verifier `answer_model`: ships when p(correct) >= `min_p` (default: the model's threshold)."""

    name = "answer_model"

    def __init__(self, model: AnswerModel, min_p: float | None = None) -> None:
        self.model = model
        self.min_p = model.threshold_ if min_p is None else min_p

    def verify(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> Verdict | None:
        question, answer = question_text(request), answer_text(response)
        if not _NUMBER.search(question) or not _NUMBER.search(answer):
            return None  # not a word problem with a numeric answer: no opinion
        p = float(self.model.predict_proba([question], [answer])[0])
        passed = p >= self.min_p
        return Verdict(self.name, passed, score=p,
                       reason=f"p(correct) {p:.2f} {'>=' if passed else '<'} {self.min_p:.2f}")

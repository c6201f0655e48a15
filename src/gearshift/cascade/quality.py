"""How good is a verifier, measured on recorded answers with known correctness.

In a cascade a verifier's *accept* ships the cheap answer. What matters is precision (accepted answers
that are correct), recall (correct answers that get accepted; missed ones cost an escalation) and the
false-accept rate (wrong answers shipped, the quality loss). GSM8K in the RouteLLM data carries both
models' full answers and correctness, which is exactly this test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gearshift.cascade.verifiers import Verifier, run_verifier
from gearshift.data.parsing import parse_bool, read_csv

GSM8K_CHEAP_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GSM8K_STRONG_MODEL = "gpt-4-1106-preview"


@dataclass(frozen=True, slots=True)
class LabelledAnswer:
    """One recorded answer as a request/response pair, plus whether it was correct."""

    request: dict[str, Any]
    response: dict[str, Any]
    correct: bool


@dataclass(frozen=True, slots=True)
class VerifierQuality:
    """Confusion counts of accept (verdict passed or no verdict) vs correct, and the rates derived."""

    name: str
    true_accept: int
    false_accept: int
    false_reject: int
    true_reject: int

    @property
    def n(self) -> int:
        return self.true_accept + self.false_accept + self.false_reject + self.true_reject

    @property
    def precision(self) -> float:
        accepted = self.true_accept + self.false_accept
        return self.true_accept / accepted if accepted else float("nan")

    @property
    def recall(self) -> float:
        correct = self.true_accept + self.false_reject
        return self.true_accept / correct if correct else float("nan")

    @property
    def false_accept_rate(self) -> float:
        wrong = self.false_accept + self.true_reject
        return self.false_accept / wrong if wrong else float("nan")

    @property
    def accept_rate(self) -> float:
        return (self.true_accept + self.false_accept) / self.n if self.n else float("nan")

    @property
    def base_accuracy(self) -> float:
        """Share correct among all answers: the precision of accepting everything."""
        return (self.true_accept + self.false_reject) / self.n if self.n else float("nan")


async def averifier_quality(verifiers: Sequence[Verifier], items: Iterable[LabelledAnswer],
                            name: str | None = None) -> VerifierQuality:
    """Accept = every verifier passed or gave no verdict (the cascade's ship rule)."""
    counts = [0, 0, 0, 0]
    for item in items:
        verdicts = [await run_verifier(v, item.request, item.response) for v in verifiers]
        accepted = all(v is None or v.passed for v in verdicts)
        counts[(0 if accepted else 2) + (0 if item.correct else 1)] += 1
    label = name or "+".join(v.name for v in verifiers)
    return VerifierQuality(label, *counts)


def verifier_quality(verifiers: Sequence[Verifier], items: Iterable[LabelledAnswer],
                     name: str | None = None) -> VerifierQuality:
    """Sync wrapper of :func:`averifier_quality` for offline use (not inside a running event loop)."""
    return asyncio.run(averifier_quality(verifiers, items, name))


def _chat_pair(prompt: str, answer: str, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    request = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    response = {
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
    }
    return request, response


def load_gsm8k_answers(path: str | Path, model: str = GSM8K_CHEAP_MODEL, limit: int | None = None,
                       offset: int = 0) -> list[LabelledAnswer]:
    """Rows of RouteLLM's `gsm8k_responses.csv` as labelled answers of `model` (`limit` rows from `offset`)."""
    p = Path(path)
    answer_col = f"{model}_response"
    out: list[LabelledAnswer] = []
    for i, (line, row) in enumerate(read_csv(p, ("prompt", model, answer_col))):
        if i < offset:
            continue
        if limit is not None and len(out) >= limit:
            break
        request, response = _chat_pair(row["prompt"], row[answer_col], model)
        out.append(LabelledAnswer(request, response, parse_bool(row[model], p, line, model)))
    return out


def quality_table(results: Iterable[VerifierQuality]) -> list[Mapping[str, float | str]]:
    """Rows for printing or JSON: name, n, precision, recall, false-accept rate, accept rate, base accuracy."""
    return [
        {"verifier": q.name, "n": q.n, "precision": q.precision, "recall": q.recall,
         "false_accept_rate": q.false_accept_rate, "accept_rate": q.accept_rate, "base_accuracy": q.base_accuracy}
        for q in results
    ]

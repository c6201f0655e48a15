"""A consistency verifier: a second cheap answer to the same request must agree with the first.

Two cheap samples that agree are more often right than either alone (self-consistency); two that disagree say
the question is not settled at the cheap tier. The second answer comes from an injected async callable (the
gateway sends the request to `consistency_deployment` or `consistency_tier`, e.g. another cheap model family
or the same model at a temperature). Agreement is read by what the answer is:
- a number after a final-answer marker (GSM8K's `####`, "the answer is", `\\boxed{}`): equal within `rel_tol`;
- a multiple-choice letter ("answer: (B)", "the answer is C"): the same letter;
- anything else: word-set Jaccard similarity at least `min_similarity`.
A second call that fails gives no verdict (the check is skipped, not failed): a flaky second opinion must not
escalate every request. `benchmarks/agreement_verifier.py` measures the idea on LLMRouter's recorded outcomes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from gearshift.cascade.judge import CompletionFn, reply_cost
from gearshift.cascade.math_verifiers import final_answer_pattern, parse_number
from gearshift.cascade.verifiers import Verdict, answer_text
from gearshift.errors import GearshiftError

_FINAL = final_answer_pattern()  # the final_answer verifier's own reading of "the answer is N"
_CHOICE = re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-E])\)?(?![A-Za-z])", re.IGNORECASE)
_WORD = re.compile(r"\w+")


def _words(text: str) -> frozenset[str]:
    return frozenset(w.lower() for w in _WORD.findall(text))


def extracted(text: str) -> tuple[str, Any]:
    """("number", value) | ("choice", letter) | ("text", word set): what two answers are compared on."""
    numbers = _FINAL.findall(text)
    if numbers:
        try:
            return "number", parse_number(numbers[-1])
        except ValueError:
            pass
    choices = _CHOICE.findall(text)
    if choices:
        return "choice", choices[-1].upper()
    return "text", _words(text)


def agreement(a: str, b: str, *, rel_tol: float = 1e-6, min_similarity: float = 0.5) -> tuple[bool, float, str]:
    """(agree, similarity in [0, 1], how they were compared)."""
    (ka, va), (kb, vb) = extracted(a), extracted(b)
    if ka == kb == "number":
        same = math.isclose(va, vb, rel_tol=rel_tol, abs_tol=1e-9)
        return same, float(same), f"final answers {va:g} and {vb:g}"
    if ka == kb == "choice":
        return va == vb, float(va == vb), f"choices {va} and {vb}"
    wa, wb = _words(a), _words(b)
    sim = len(wa & wb) / len(wa | wb) if wa | wb else 1.0
    if ka != kb:
        return False, sim, f"one answer states a {ka if ka != 'text' else kb}, the other does not"
    return sim >= min_similarity, sim, f"word overlap {sim:.2f} (min {min_similarity})"


class ConsistencyVerifier:
    """Passes when a second cheap answer agrees with the first (see the module docstring)."""

    name = "consistency"

    def __init__(self, complete: CompletionFn, *, rel_tol: float = 1e-6, min_similarity: float = 0.5) -> None:
        self.complete = complete
        self.rel_tol = rel_tol
        self.min_similarity = min_similarity
        self.calls = 0
        self.failed = 0

    async def verify(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> Verdict | None:
        self.calls += 1
        second_request = {k: v for k, v in request.items() if k not in ("stream", "stream_options", "n")}
        try:
            second = await self.complete(second_request)
        except GearshiftError:
            self.failed += 1
            return None
        agree, sim, how = agreement(answer_text(response), answer_text(second), rel_tol=self.rel_tol,
                                    min_similarity=self.min_similarity)
        return Verdict(self.name, agree, score=sim, reason=("agree: " if agree else "disagree: ") + how,
                       cost_usd=reply_cost(second))

"""An LLM judge over the answers several tiers gave to one prompt, turned into a hardness label.

Pairwise mode shows the judge both answers and asks for a 1-10 score of each, twice, with the answers
swapped, and averages: a judge that prefers whatever comes first (a well-known bias) then cancels out.
Single mode rates each answer alone with the cascade judge's prompt. Scores are mapped to 0-1; the
label is the cheapest tier whose score is within `epsilon` of the best one ("cheap_ok" when that is
the cheapest tier, "strong_needed" otherwise). Unreadable judge replies are counted, never guessed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gearshift.cascade.judge import JUDGE_SYSTEM_PROMPT, JUDGE_USER_TEMPLATE, parse_rating
from gearshift.cascade.verifiers import answer_text
from gearshift.errors import GearshiftError

#: Sends one chat completion request; returns (response body, cost in USD or None).
JudgeCall = Callable[[dict[str, Any]], Awaitable[tuple[dict[str, Any], float | None]]]

PAIRWISE_SYSTEM_PROMPT = (
    "You compare two answers from AI assistants to the same user request. Judge correctness first, then "
    "completeness and helpfulness; ignore length and style. Score each answer from 1 (useless or wrong) to "
    "10 (excellent). Reply on the first line exactly as `A: <score>, B: <score>`, then one short sentence "
    "explaining the difference."
)
PAIRWISE_USER_TEMPLATE = "### Request\n{question}\n\n### Answer A\n{a}\n\n### Answer B\n{b}\n\n### Scores"

_PAIR = re.compile(r"\bA\s*[:=]\s*(10|[1-9])(?:\s*/\s*10)?\b[\s,;]*\bB\s*[:=]\s*(10|[1-9])(?:\s*/\s*10)?\b",
                   re.IGNORECASE)


def parse_pair(text: str) -> tuple[int, int, str] | None:
    """(score A, score B, the reasoning after them) from a pairwise reply, or None when unreadable."""
    m = _PAIR.search(text)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), text[m.end():].strip(" \n.:-")[:500]


@dataclass
class Judgement:
    """Scores on 0-1 per tier name; `label`/`min_tier` absent when too few answers could be scored."""

    scores: dict[str, float]
    label: str | None
    min_tier: str | None
    gap: float | None  # best score minus the cheapest tier's score
    reasoning: list[str] = field(default_factory=list)
    calls: int = 0
    unparseable: int = 0
    failed: int = 0
    cost_usd: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"scores": self.scores, "label": self.label, "min_tier": self.min_tier, "gap": self.gap,
                "reasoning": self.reasoning, "calls": self.calls, "unparseable": self.unparseable,
                "failed": self.failed, "cost_usd": self.cost_usd}


def hardness_label(scores: Mapping[str, float], tier_order: Sequence[str], epsilon: float
                   ) -> tuple[str | None, str | None, float | None]:
    """(label, cheapest sufficient tier, gap) from per-tier scores; tiers ordered cheap to strong."""
    ranked = [t for t in tier_order if t in scores]
    if len(ranked) < 2:
        return None, None, None
    best = max(scores[t] for t in ranked)
    min_tier = next(t for t in ranked if scores[t] >= best - epsilon)
    label = "cheap_ok" if min_tier == ranked[0] else "strong_needed"
    return label, min_tier, round(best - scores[ranked[0]], 6)


class PairwiseJudge:
    """Judges the answers of one prompt; `calls_needed(n)` is what the shadow budget reserves."""

    def __init__(self, call: JudgeCall, *, model: str = "judge", mode: str = "pairwise", epsilon: float = 0.1,
                 max_answer_chars: int = 6000, max_tokens: int = 200) -> None:
        self.call = call
        self.model = model
        self.mode = mode
        self.epsilon = epsilon
        self.max_answer_chars = max_answer_chars
        self.max_tokens = max_tokens
        self.calls = 0
        self.unparseable = 0
        self.failed = 0

    def calls_needed(self, n_answers: int) -> int:
        return 2 * (n_answers - 1) if self.mode == "pairwise" else n_answers

    def _request(self, system: str, user: str) -> dict[str, Any]:
        return {"model": self.model, "temperature": 0, "max_tokens": self.max_tokens,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}

    async def _ask(self, request: dict[str, Any], j: Judgement) -> str | None:
        self.calls += 1
        j.calls += 1
        try:
            body, cost = await self.call(request)
        except GearshiftError:
            self.failed += 1
            j.failed += 1
            return None
        j.cost_usd += cost or 0.0
        return answer_text(body)

    async def _pair(self, question: str, first: str, second: str, j: Judgement) -> tuple[float, float] | None:
        """Average scores of (first, second) over both presentation orders; None if neither order parsed."""
        def req(a: str, b: str) -> dict[str, Any]:
            return self._request(PAIRWISE_SYSTEM_PROMPT, PAIRWISE_USER_TEMPLATE.format(question=question, a=a, b=b))

        replies = await asyncio.gather(self._ask(req(first, second), j), self._ask(req(second, first), j))
        got: list[tuple[float, float]] = []
        for swapped, reply in enumerate(replies):
            parsed = parse_pair(reply) if reply is not None else None
            if parsed is None:
                if reply is not None:
                    self.unparseable += 1
                    j.unparseable += 1
                continue
            a, b, why = parsed
            got.append((b, a) if swapped else (a, b))
            if why:
                j.reasoning.append(why)
        if not got:
            return None
        return (sum(g[0] for g in got) / len(got) - 1) / 9, (sum(g[1] for g in got) / len(got) - 1) / 9

    async def _single(self, question: str, answer: str, j: Judgement) -> float | None:
        user = JUDGE_USER_TEMPLATE.format(question=question, answer=answer)
        reply = await self._ask(self._request(JUDGE_SYSTEM_PROMPT, user), j)
        rating = parse_rating(reply) if reply is not None else None
        if rating is None:
            if reply is not None:
                self.unparseable += 1
                j.unparseable += 1
            return None
        return (rating - 1) / 9

    async def judge(self, question: str, answers: Mapping[str, str], reference: str,
                    tier_order: Sequence[str]) -> Judgement:
        """Score every tier's answer; pairwise compares each other tier against `reference` (production)."""
        j = Judgement(scores={}, label=None, min_tier=None, gap=None)
        cut = {t: a[: self.max_answer_chars] for t, a in answers.items()}
        if self.mode == "single":
            tiers = list(cut)
            results = await asyncio.gather(*(self._single(question, cut[t], j) for t in tiers))
            j.scores = {t: round(s, 6) for t, s in zip(tiers, results, strict=True) if s is not None}
        else:
            others = [t for t in cut if t != reference]
            pairs = await asyncio.gather(*(self._pair(question, cut[reference], cut[t], j) for t in others))
            ref_scores = [p[0] for p in pairs if p is not None]
            for t, p in zip(others, pairs, strict=True):
                if p is not None:
                    j.scores[t] = round(p[1], 6)
            if ref_scores:
                j.scores[reference] = round(sum(ref_scores) / len(ref_scores), 6)
        j.label, j.min_tier, j.gap = hardness_label(j.scores, tier_order, self.epsilon)
        return j

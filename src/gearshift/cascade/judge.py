"""An LLM judge as a verifier: a small model rates the cheap answer 1-10.

The judge is reached through an injected async callable (OpenAI request dict -> response dict), so the
gateway decides which deployment judges and how it fails over; tests pass a plain function. A judge
that answers something unreadable, or fails, is counted and gets `unparseable_passes` as its verdict.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gearshift.cascade.verifiers import Verdict, answer_text
from gearshift.errors import GearshiftError
from gearshift.routers.base import prompt_text

#: Sends one chat completion request and returns the response body.
CompletionFn = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

JUDGE_SYSTEM_PROMPT = (
    "You grade answers from an AI assistant. Given a user request and the assistant's answer, rate how "
    "correct, complete and helpful the answer is on a scale from 1 (useless or wrong) to 10 (excellent). "
    "Reply with the number only."
)
JUDGE_USER_TEMPLATE = "### Request\n{question}\n\n### Answer\n{answer}\n\n### Rating (1-10)"

_RATING_PATTERNS = (
    re.compile(r"\b(10|[1-9])\s*/\s*10\b"),
    re.compile(r"(?:rating|score|grade)\s*[:=]?\s*(10|[1-9])\b", re.IGNORECASE),
    re.compile(r"^\s*\**\s*(10|[1-9])\b"),
)


def parse_rating(text: str) -> int | None:
    """The 1-10 rating in a judge's reply, or None. Explicit forms ("7/10", "Rating: 7") win over a bare
    leading number; a reply with no such form is unparseable rather than guessed from stray digits."""
    for pattern in _RATING_PATTERNS:
        m = pattern.search(text)
        if m:
            return int(m.group(1))
    return None


def reply_cost(reply: Mapping[str, Any]) -> float | None:
    """The judgement's price when the caller put it in `usage.cost` (USD, OpenRouter's field; the gateway does)."""
    usage = reply.get("usage")
    cost = usage.get("cost") if isinstance(usage, Mapping) else None
    return float(cost) if isinstance(cost, (int, float)) else None


class JudgeVerifier:
    """Passes when the judge's rating is at least `min_rating`. `score` is rating / 10.

    `unparseable` counts replies that held no rating plus judge calls that failed; both get the verdict
    `unparseable_passes` (False by default: an unverifiable cheap answer escalates, since quality loss
    usually costs more than a second call).
    """

    name = "judge"

    def __init__(
        self,
        complete: CompletionFn,
        *,
        model: str = "judge",
        min_rating: int = 7,
        unparseable_passes: bool = False,
        max_answer_chars: int = 6000,
        max_tokens: int = 8,
    ) -> None:
        self.complete = complete
        self.model = model
        self.min_rating = min_rating
        self.unparseable_passes = unparseable_passes
        self.max_answer_chars = max_answer_chars
        self.max_tokens = max_tokens
        self.calls = 0
        self.unparseable = 0

    def judge_request(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, Any]:
        """The exact request sent to the judge (fixed prompt, deterministic sampling)."""
        messages = request.get("messages")
        question = prompt_text(messages) if isinstance(messages, list) else ""
        answer = answer_text(response)[: self.max_answer_chars]
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
                {"role": "user", "content": JUDGE_USER_TEMPLATE.format(question=question, answer=answer)},
            ],
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }

    async def verify(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> Verdict:
        self.calls += 1
        try:
            reply = await self.complete(self.judge_request(request, response))
        except GearshiftError as exc:
            self.unparseable += 1
            return Verdict(self.name, self.unparseable_passes, reason=f"judge call failed: {exc.message}")
        text = answer_text(reply)
        rating = parse_rating(text)
        if rating is None:
            self.unparseable += 1
            return Verdict(self.name, self.unparseable_passes, reason=f"unparseable judge reply {text[:60]!r}",
                           cost_usd=reply_cost(reply))
        passed = rating >= self.min_rating
        return Verdict(self.name, passed, score=rating / 10, reason=f"judge rated {rating}/10 (min {self.min_rating})",
                       cost_usd=reply_cost(reply))

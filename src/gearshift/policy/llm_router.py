"""LLM-as-router: a small model labels the query, and the label maps to a tier.

The model is reached through an injected async callable (OpenAI request dict -> response dict), so the
gateway picks the deployment and its failover. The prompt is fixed (:data:`ROUTER_SYSTEM_PROMPT`) so
decisions are reproducible and comparable across deployments. A reply naming no known label, or a failed
call, falls back to `default_tier` and is counted: a router that silently degrades is worse than one
that is visibly unparseable.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gearshift.cascade.verifiers import answer_text
from gearshift.errors import ConfigError, GearshiftError
from gearshift.routers.base import PromptLike, RoutingScore, prompt_text

CompletionFn = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

#: Label -> tier name. Labels are what the model is asked to choose from, in this order.
DEFAULT_LABEL_TIERS: dict[str, str] = {
    "simple": "cheap", "chitchat": "cheap", "complex": "strong", "code": "strong", "math": "strong",
}

ROUTER_SYSTEM_PROMPT = (
    "You classify requests sent to an AI assistant so they can be routed to a suitable model. "
    "Answer with exactly one word from this list: {labels}.\n"
    "- simple: a short factual question, rewrite, translation or lookup that any model answers well\n"
    "- chitchat: greetings, small talk, thanks\n"
    "- complex: multi-step reasoning, analysis, planning, long or open-ended writing with constraints\n"
    "- code: writing, explaining or debugging program code\n"
    "- math: calculations, proofs, word problems\n"
    "Reply with the single word only."
)
ROUTER_USER_TEMPLATE = "Request:\n<<<\n{prompt}\n>>>\nCategory:"


@dataclass(frozen=True, slots=True)
class LLMRouteResult:
    """The label the model gave (`label` None when unparseable), the tier it maps to, and the score."""

    score: RoutingScore
    tier: str
    tier_index: int
    label: str | None
    raw: str

    @property
    def parsed(self) -> bool:
        return self.label is not None


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The known label appearing first in `text` as a whole word (case-insensitive), else None."""
    low = text.lower()
    best: tuple[int, str] | None = None
    for label in labels:
        m = re.search(rf"(?<![\w-]){re.escape(label.lower())}(?![\w-])", low)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), label)
    return best[1] if best else None


def _ms(began: float) -> float:
    return round((time.perf_counter() - began) * 1000.0, 3)


def _usage_cost(reply: Mapping[str, Any]) -> float | None:
    usage = reply.get("usage")
    cost = usage.get("cost") if isinstance(usage, Mapping) else None
    return float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None


class LLMRouter:
    """Asks a small model for a label; `score` gives the usual `RoutingScore`, `route` the full result.

    p_strong is the mapped tier's position among `tiers` (cheapest 0.0, strongest 1.0), so a
    `TierPolicy` with thresholds strictly between 0 and 1 reproduces the mapping on two tiers.
    Confidence is `parsed_confidence` for a parsed label and 0.0 for a fallback, so a policy with
    `min_confidence` escalates fallbacks. Counters: `calls`, `unparseable`, `errors` (failed calls).
    """

    name = "llm"

    def __init__(
        self,
        complete: CompletionFn,
        *,
        tiers: Sequence[str] = ("cheap", "strong"),
        label_tiers: Mapping[str, str] | None = None,
        default_tier: str | None = None,
        model: str = "router",
        parsed_confidence: float = 0.8,
        max_prompt_chars: int = 4000,
        system_prompt: str = ROUTER_SYSTEM_PROMPT,
    ) -> None:
        self.complete = complete
        self.tiers = tuple(tiers)
        self.label_tiers = dict(label_tiers if label_tiers is not None else DEFAULT_LABEL_TIERS)
        self.default_tier = default_tier if default_tier is not None else self.tiers[-1]
        self.model = model
        self.parsed_confidence = parsed_confidence
        self.max_prompt_chars = max_prompt_chars
        self.system_prompt = system_prompt
        if len(self.tiers) < 2:
            raise ConfigError("llm router: needs at least two tiers")
        if not self.label_tiers:
            raise ConfigError("llm router: the label -> tier mapping is empty")
        unknown = sorted({*self.label_tiers.values(), self.default_tier} - set(self.tiers))
        if unknown:
            raise ConfigError(f"llm router: unknown tiers {unknown}; configured tiers are {list(self.tiers)}")
        self.calls = 0
        self.unparseable = 0
        self.errors = 0

    @property
    def labels(self) -> list[str]:
        return list(self.label_tiers)

    def request_for(self, prompt: PromptLike) -> dict[str, Any]:
        """The exact request sent to the classifying model."""
        text = prompt_text(prompt)[: self.max_prompt_chars]
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.system_prompt.format(labels=", ".join(self.labels))},
                {"role": "user", "content": ROUTER_USER_TEMPLATE.format(prompt=text)},
            ],
            "temperature": 0,
            "max_tokens": 5,
        }

    def _p_strong(self, tier: str) -> tuple[int, float]:
        idx = self.tiers.index(tier)
        return idx, idx / (len(self.tiers) - 1)

    async def route(self, prompt: PromptLike) -> LLMRouteResult:
        """The call's cost (the reply's `usage.cost`, USD, as the gateway's completion puts it there) and its
        latency ride on the score into the decision record: routing by LLM is an overhead to be priced."""
        self.calls += 1
        began = time.perf_counter()
        try:
            reply = await self.complete(self.request_for(prompt))
        except GearshiftError as exc:
            self.errors += 1
            return self._fallback("", f"router model failed: {exc.message}", _ms(began), None)
        spent = _usage_cost(reply)
        raw = answer_text(reply)
        label = parse_label(raw, self.labels)
        if label is None:
            self.unparseable += 1
            return self._fallback(raw, f"unparseable router reply {raw[:40]!r}", _ms(began), spent)
        tier = self.label_tiers[label]
        idx, p = self._p_strong(tier)
        score = RoutingScore(p_strong=p, confidence=self.parsed_confidence,
                             reason=f"llm label {label!r} -> tier {tier!r}", features={f"label_{label}": 1.0},
                             cost_usd=spent, latency_ms=_ms(began))
        return LLMRouteResult(score, tier, idx, label, raw)

    def _fallback(self, raw: str, why: str, latency_ms: float, spent: float | None) -> LLMRouteResult:
        idx, p = self._p_strong(self.default_tier)
        score = RoutingScore(p_strong=p, confidence=0.0, reason=f"{why}; default tier {self.default_tier!r}",
                             cost_usd=spent, latency_ms=latency_ms)
        return LLMRouteResult(score, self.default_tier, idx, None, raw)

    async def score(self, prompt: PromptLike) -> RoutingScore:
        return (await self.route(prompt)).score

    def describe(self) -> str:
        return f"{self.name}@{self.model}"


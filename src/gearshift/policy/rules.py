"""Composed routing: category routes, a cheap gate, a costlier router, then context-window fit.

Order of rules for one request (the first that decides wins, and the result names it):

1. **category**: a configured rule (keywords, regexes, minimum estimated tokens) matches the prompt, and
   the request goes to that rule's *named* deployments (e.g. code to a code model, long context to a
   long-context model), not to a tier.
2. **gate**: a cheap router (the heuristic one) scores the prompt; p_strong below `gate_low` goes to the
   cheapest tier, above `gate_high` to the strongest.
3. **router**: only what the gate leaves undecided is scored by the costlier router (kNN, MF, or the
   async LLM router) and placed by the tier policy. Without one, the gate's score goes to the policy.

Finally **context fit**: the request's size is estimated as ceil(characters of all message text / 4)
(about 4 characters per token for English BPE vocabularies; an estimate, not a tokenizer) plus its
`max_tokens` / `max_completion_tokens`. Deployments whose `context_window` is smaller are dropped; if a
tier has none left the request moves up (then down) to the nearest tier that fits, and if nothing fits
anywhere it is an InvalidRequestError, before any upstream is called.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from gearshift.data.tokens import CHARS_PER_TOKEN as TOKEN_CHARS
from gearshift.errors import ConfigError, InvalidRequestError
from gearshift.policy.llm_router import LLMRouter
from gearshift.policy.route import score_prompt
from gearshift.providers.base import Deployment
from gearshift.records.usage import message_text
from gearshift.routers.base import PromptLike, Router, RoutingScore, prompt_text
from gearshift.routers.policy import TierPolicy

#: the context fit counts tokens by the ~4 characters per token of data/tokens.py
CHARS_PER_TOKEN = int(TOKEN_CHARS)


class Scorer(Protocol):
    """A sync `Router` or the async `LLMRouter`: anything with `score(prompt)`."""

    def score(self, prompt: PromptLike) -> RoutingScore | Awaitable[RoutingScore]: ...


@dataclass(frozen=True)
class CategoryRule:
    """Matches when any keyword (whole word, case-insensitive) or regex is found in the prompt text, or
    when the estimated request tokens reach `min_tokens`. Sends to `deployments` (names)."""

    name: str
    deployments: tuple[str, ...]
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    min_tokens: int | None = None
    _regexes: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.deployments:
            raise ConfigError(f"category route {self.name!r}: no deployments")
        if not (self.keywords or self.patterns or self.min_tokens is not None):
            raise ConfigError(f"category route {self.name!r}: needs keywords, patterns or min_tokens")
        try:
            words = "|".join(re.escape(k) for k in self.keywords)
            regexes = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in self.patterns]
        except re.error as exc:
            raise ConfigError(f"category route {self.name!r}: bad pattern ({exc})") from exc
        if words:
            regexes.insert(0, re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE))
        object.__setattr__(self, "_regexes", tuple(regexes))

    def matches(self, text: str, tokens: int) -> str | None:
        """Why the rule matches, or None."""
        if self.min_tokens is not None and tokens >= self.min_tokens:
            return f"~{tokens} tokens >= {self.min_tokens}"
        for rx in self._regexes:  # all case-insensitive: no lower-cased copy of the prompt per rule
            m = rx.search(text)
            if m:
                return f"matched {m.group(0)[:40]!r}"
        return None


#: Code blocks or common code syntax; a default for a "code" category route.
CODE_PATTERNS: tuple[str, ...] = (r"```", r"^\s*(?:def|class|import|from \S+ import)\s", r"#include\s*<",
                                  r"\bfunction\s+\w+\s*\(", r"\bSELECT\b.+\bFROM\b")

Rule = Literal["category", "gate", "router", "policy"]


@dataclass(frozen=True, slots=True)
class RuleDecision:
    """Where a request goes and which rule decided. `deployments` already fit the context window."""

    rule: Rule
    reason: str
    deployments: tuple[Deployment, ...]
    tier_index: int | None
    tier: str | None
    estimated_tokens: int
    score: RoutingScore | None = None
    category: str | None = None
    dropped: tuple[str, ...] = ()
    moved_from_tier: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def estimate_tokens(request: Mapping[str, Any], chars_per_token: int = CHARS_PER_TOKEN) -> int:
    """ceil(chars of every message's text / chars_per_token) + the requested completion budget."""
    chars = 0
    for msg in request.get("messages") or []:
        if not isinstance(msg, Mapping):
            continue
        chars += len(message_text(msg) or "")
        for call in msg.get("tool_calls") or []:
            if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
                chars += len(str(call["function"].get("arguments", "")))
    budget = request.get("max_completion_tokens", request.get("max_tokens")) or 0
    return math.ceil(chars / chars_per_token) + (int(budget) if isinstance(budget, int | float) else 0)


def fits(deployment: Deployment, tokens: int) -> bool:
    return deployment.context_window is None or deployment.context_window >= tokens


def nearest_fitting_tier(tiers: Sequence[Sequence[Deployment]], idx: int, tokens: int,
                         chars_per_token: int = CHARS_PER_TOKEN) -> tuple[int, tuple[Deployment, ...]]:
    """(tier, its deployments that fit `tokens`): tier `idx` if any fit, else the nearest above, then below.

    Nothing fitting anywhere is an InvalidRequestError (HTTP 400), raised before any upstream is called.
    """
    for cand in [idx, *range(idx + 1, len(tiers)), *range(idx - 1, -1, -1)]:
        fitting = tuple(d for d in tiers[cand] if fits(d, tokens))
        if fitting:
            return cand, fitting
    biggest = max((d.context_window or 0) for deps in tiers for d in deps)
    raise InvalidRequestError(
        f"request needs ~{tokens} tokens (prompt chars/{chars_per_token} + max_tokens) but the largest "
        f"configured context window is {biggest}; shorten the messages or lower max_tokens",
        param="messages")


class RoutingRules:
    """See the module docstring. `tiers` are (name, deployments) ordered cheap to strong."""

    def __init__(self, tiers: Sequence[tuple[str, Sequence[Deployment]]], policy: TierPolicy, *,
                 gate: Scorer | None = None, gate_low: float = 0.2, gate_high: float = 0.8,
                 router: Scorer | None = None, categories: Sequence[CategoryRule] = (),
                 extra_deployments: Sequence[Deployment] = (), chars_per_token: int = CHARS_PER_TOKEN) -> None:
        if len(tiers) != len(policy.tiers):
            raise ConfigError(f"{len(tiers)} tiers but the policy has {len(policy.tiers)}")
        if not 0.0 <= gate_low <= gate_high <= 1.0:
            raise ConfigError(f"gate bounds must satisfy 0 <= low <= high <= 1, got {gate_low}, {gate_high}")
        if gate is None and router is None:
            raise ConfigError("routing rules need a gate, a router, or both")
        self.tiers = [(name, tuple(deps)) for name, deps in tiers]
        self.policy = policy
        self.gate, self.gate_low, self.gate_high, self.router = gate, gate_low, gate_high, router
        self.categories = tuple(categories)
        self.chars_per_token = chars_per_token
        self.by_name = {d.name: d for _, deps in self.tiers for d in deps}
        self.by_name.update({d.name: d for d in extra_deployments})
        for rule in self.categories:
            missing = [n for n in rule.deployments if n not in self.by_name]
            if missing:
                raise ConfigError(f"category route {rule.name!r}: unknown deployments {missing}")

    async def decide(self, request: Mapping[str, Any]) -> RuleDecision:
        messages = request.get("messages")
        prompt: PromptLike = messages if isinstance(messages, list) else ""
        text = prompt_text(prompt)
        tokens = estimate_tokens(request, self.chars_per_token)
        notes: list[str] = []
        for rule in self.categories:
            why = rule.matches(text, tokens)
            if why is None:
                continue
            deps = tuple(self.by_name[n] for n in rule.deployments)
            fitting = tuple(d for d in deps if fits(d, tokens))
            if fitting:
                return RuleDecision("category", f"category {rule.name!r}: {why}", fitting, None, None, tokens,
                                    category=rule.name, dropped=tuple(d.name for d in deps if d not in fitting))
            notes.append(f"category {rule.name!r} matched but none of its deployments fits ~{tokens} tokens")
        rule_name, idx, score, reason = await self._tier(prompt)
        return self._fit(rule_name, idx, score, reason, tokens, notes)

    async def _tier(self, prompt: PromptLike) -> tuple[Rule, int, RoutingScore, str]:
        top = len(self.tiers) - 1
        if self.gate is not None:
            g = await _score(self.gate, prompt)
            if g.p_strong < self.gate_low:
                return "gate", 0, g, f"gate p_strong={g.p_strong:.3f} < {self.gate_low}"
            if g.p_strong > self.gate_high:
                return "gate", top, g, f"gate p_strong={g.p_strong:.3f} > {self.gate_high}"
            if self.router is None:
                d = self.policy.decide(g)
                return "policy", d.tier_index, g, f"gate undecided; policy on gate score: {d.reason}"
        if self.router is None:  # unreachable: __init__ requires a gate or a router
            raise ConfigError("routing rules have neither a gate nor a router")
        s = await _score(self.router, prompt)
        d = self.policy.decide(s)
        return "router", d.tier_index, s, f"router: {s.reason}; {d.reason}"

    def _fit(self, rule: Rule, idx: int, score: RoutingScore, reason: str, tokens: int,
             notes: list[str]) -> RuleDecision:
        cand, fitting = nearest_fitting_tier([deps for _, deps in self.tiers], idx, tokens, self.chars_per_token)
        name, deps = self.tiers[cand]
        if cand != idx:
            notes.append(f"tier {self.tiers[idx][0]!r} has no deployment for ~{tokens} tokens; moved to {name!r}")
        return RuleDecision(rule, reason, fitting, cand, name, tokens, score=score,
                            dropped=tuple(d.name for d in deps if d not in fitting),
                            moved_from_tier=idx if cand != idx else None, notes=tuple(notes))


async def _score(scorer: Scorer, prompt: PromptLike) -> RoutingScore:
    out = scorer.score(prompt)
    if inspect.isawaitable(out):
        return await out
    return out


class Threaded:
    """A sync router as an async scorer: embedding routers score in a worker thread, never on the loop."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def score(self, prompt: PromptLike) -> RoutingScore:
        return await score_prompt(self.router, prompt)


@dataclass
class GatewayRules:
    """The composed rules plus what the record names: which scorer stands behind the gate and router rules."""

    rules: RoutingRules
    route_tiers: dict[str, int]  # category route -> the tier its requests are counted as
    gate_id: tuple[str, str | None] | None  # (router name, version) for the record
    router_id: tuple[str, str | None]
    llm: LLMRouter | None = None

    def fixed_policy(self, tier_index: int) -> TierPolicy:
        """A policy that picks `tier_index` for any gate score below 1 (cheapest) or above 0 (strongest)."""
        tiers = self.rules.policy.tiers
        bound = 1.0 if tier_index == 0 else 0.0
        return TierPolicy(tiers=tiers, thresholds=(bound,) * (len(tiers) - 1))

    def with_router(self, router: Router, policy: TierPolicy, version: str | None) -> GatewayRules:
        """These rules with the configured router (and its policy) replaced: a router reload (gateway/reload.py).
        With `kind = "llm"` the configured router scores nothing here, so the rules stay as they are."""
        if self.llm is not None:
            return self
        rules = copy.copy(self.rules)
        rules.router, rules.policy = Threaded(router), policy
        return replace(self, rules=rules, router_id=(router.name, version or router.version))

"""Composed routing: gate bounds, costlier router only when undecided, category routes, context fit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from gearshift.errors import ConfigError, InvalidRequestError
from gearshift.policy.rules import CODE_PATTERNS, CategoryRule, RoutingRules, estimate_tokens
from gearshift.providers.base import Deployment
from gearshift.routers.base import PromptLike, Router, RoutingScore, prompt_text
from gearshift.routers.heuristic import HeuristicRouter
from gearshift.routers.policy import TierPolicy

CHEAP = Deployment("cheap", "openai", "small", context_window=1000)
CHEAP_BIG = Deployment("cheap-big", "openai", "small-32k", context_window=32000)
STRONG = Deployment("strong", "openai", "large", context_window=8000)
CODER = Deployment("coder", "openai", "code-model", context_window=16000)
LONG = Deployment("long", "openai", "long-model", context_window=200000)
POLICY = TierPolicy(("cheap", "strong"), (0.5,))


class Fixed(Router):
    """A router returning a fixed p_strong; counts how often it was asked."""

    name = "fixed"

    def __init__(self, p: float) -> None:
        self.p = p
        self.calls = 0

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        self.calls += len(prompts)
        return [RoutingScore(self.p, 1.0, f"fixed {self.p}") for _ in prompts]


class AsyncFixed:
    def __init__(self, p: float) -> None:
        self.p = p
        self.seen: list[str] = []

    async def score(self, prompt: PromptLike) -> RoutingScore:
        self.seen.append(prompt_text(prompt))
        return RoutingScore(self.p, 0.8, "async")


def req(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}


def rules(gate: Any = None, router: Any = None, **kw: Any) -> RoutingRules:
    return RoutingRules([("cheap", [CHEAP]), ("strong", [STRONG])], POLICY, gate=gate, router=router, **kw)


@pytest.mark.parametrize(("gate_p", "rule", "tier", "router_calls"), [
    (0.05, "gate", "cheap", 0), (0.95, "gate", "strong", 0), (0.5, "router", "strong", 1),
])
async def test_gate_decides_outside_its_bounds_and_defers_inside(gate_p: float, rule: str, tier: str,
                                                                   router_calls: int) -> None:
    costly = Fixed(0.9)
    d = await rules(Fixed(gate_p), costly, gate_low=0.2, gate_high=0.8).decide(req("hi"))
    assert (d.rule, d.tier, costly.calls) == (rule, tier, router_calls)
    assert d.score is not None and d.deployments == ((CHEAP,) if tier == "cheap" else (STRONG,))


async def test_gate_alone_uses_policy_and_async_router_is_awaited() -> None:
    d = await rules(Fixed(0.6)).decide(req("hi"))
    assert d.rule == "policy" and d.tier == "strong"
    llm = AsyncFixed(0.1)
    d2 = await rules(Fixed(0.5), llm).decide(req("what is 2+2"))
    assert d2.rule == "router" and d2.tier == "cheap" and llm.seen == ["what is 2+2"]


async def test_heuristic_gate_sends_chitchat_cheap() -> None:
    d = await rules(HeuristicRouter(), Fixed(1.0), gate_low=0.3, gate_high=0.9).decide(req("hello, thanks!"))
    assert d.rule == "gate" and d.tier == "cheap"


def code_rule() -> CategoryRule:
    return CategoryRule("code", ("coder",), keywords=("python", "stack trace"), patterns=CODE_PATTERNS)


async def test_category_routes_go_to_named_deployments() -> None:
    long_rule = CategoryRule("long", ("long",), min_tokens=20000)
    r = rules(Fixed(0.05), categories=[code_rule(), long_rule], extra_deployments=[CODER, LONG])
    code = await r.decide(req("Why does this crash?\n```\nx = [1][3]\n```"))
    assert code.rule == "category" and code.category == "code" and code.deployments == (CODER,)
    assert code.tier is None
    kw = await r.decide(req("Write a Python script that renames files"))
    assert kw.category == "code"
    long = await r.decide(req("summarise " + "word " * 20000))
    assert long.category == "long" and long.deployments == (LONG,)
    plain = await r.decide(req("What is the capital of Peru?"))
    assert plain.rule == "gate" and plain.category is None
    assert (await r.decide(req("pythonic? no, monty"))).rule == "gate"  # whole words only


def test_category_rule_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown deployments"):
        rules(Fixed(0.1), categories=[CategoryRule("code", ("nope",), keywords=("python",))])
    with pytest.raises(ConfigError, match="needs keywords"):
        CategoryRule("empty", ("coder",))
    with pytest.raises(ConfigError, match="bad pattern"):
        CategoryRule("bad", ("coder",), patterns=("(",))


def test_estimate_tokens_is_chars_over_four_plus_max_tokens() -> None:
    assert estimate_tokens(req("x" * 400)) == 100
    assert estimate_tokens(req("x" * 401, max_tokens=50)) == 151
    assert estimate_tokens(req("x" * 40, max_completion_tokens=10)) == 20
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "y" * 80}]}]}
    assert estimate_tokens(parts) == 20


async def test_context_fit_drops_small_deployments_and_moves_tiers() -> None:
    r = RoutingRules([("cheap", [CHEAP, CHEAP_BIG]), ("strong", [STRONG])], POLICY, gate=Fixed(0.05))
    small = await r.decide(req("hi"))
    assert small.deployments == (CHEAP, CHEAP_BIG) and small.dropped == ()
    medium = await r.decide(req("x" * 8000))  # ~2000 tokens: the 1k-window cheap model cannot take it
    assert medium.deployments == (CHEAP_BIG,) and medium.dropped == ("cheap",) and medium.tier == "cheap"
    r2 = rules(Fixed(0.05))
    moved = await r2.decide(req("x" * 8000))
    assert moved.tier == "strong" and moved.moved_from_tier == 0 and moved.notes
    r3 = RoutingRules([("cheap", [CHEAP_BIG]), ("strong", [STRONG])], POLICY, gate=Fixed(0.95))
    down = await r3.decide(req("x" * 40000))  # ~10k tokens: only the 32k cheap model fits
    assert down.tier == "cheap" and down.moved_from_tier == 1 and down.rule == "gate"


async def test_nothing_fits_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequestError, match="8000") as info:
        await rules(Fixed(0.05)).decide(req("x" * 40000, max_tokens=100))
    assert info.value.status_code == 400


def test_keywords_match_whatever_the_case() -> None:
    rule = CategoryRule("code", ("coder",), keywords=("Stack Trace", "python"))
    assert rule.matches("Here is my STACK TRACE:", 10) == "matched 'STACK TRACE'"
    assert rule.matches("PYTHON question", 10) is not None and rule.matches("pythonic", 10) is None

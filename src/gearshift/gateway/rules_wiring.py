"""Routing rules in the gateway: `gearshift/auto` through category routes, a cheap gate and a costlier router.

Built once per gateway (`build_rules`) when `[[routes]]`, `[router.gate]` or `[router] kind = "llm"` is
configured; otherwise `gw.rules` is None and chat.py keeps its single-router fast path. `apply_rules`
runs `RoutingRules.decide` for one request and either serves a category route directly (deterministic:
propensity 1.0) or hands chat.py the score and the policy its tier draw continues from, so exploration,
conversation stickiness and context fit behave exactly as on the fast path. A gate decision continues
from a policy that always picks the gate's tier, so an exploration draw around it is logged honestly.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gearshift.errors import ConfigError
from gearshift.gateway.llm_router import LLMRouter
from gearshift.gateway.routing import score_prompt
from gearshift.gateway.routing_rules import CODE_PATTERNS, CategoryRule, RoutingRules, Scorer
from gearshift.gateway.settings import GateSettings, GatewaySettings, LLMRouterSettings
from gearshift.providers.base import Deployment
from gearshift.routers.base import PromptLike, Router, RoutingScore, TrainableRouter
from gearshift.routers.policy import TierPolicy

if TYPE_CHECKING:
    from gearshift.gateway.chat import Call
    from gearshift.gateway.metrics import GatewayMetrics
    from gearshift.gateway.routing import ModelResolver
    from gearshift.gateway.service import Gateway
    from gearshift.providers.reliability import FailoverExecutor


class Threaded:
    """A sync router as an async scorer: embedding routers score in a worker thread, never on the loop."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def score(self, prompt: PromptLike) -> RoutingScore:
        return await score_prompt(self.router, prompt)


@dataclass(frozen=True, slots=True)
class RuledScore:
    """Where the tier draw continues: the deciding score (its reason is the rule's), and the policy to draw from."""

    score: RoutingScore
    policy: TierPolicy
    router_id: str  # the x-gearshift-router header: NAME@VERSION of the deciding scorer


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


def _gate(gs: GateSettings) -> Router:
    from gearshift.routers.registry import load_router, make_router

    router = load_router(gs.path) if gs.path is not None else make_router(gs.name, **gs.params)
    if isinstance(router, TrainableRouter) and not router.is_fitted():
        raise ConfigError(f"[router.gate] {gs.name!r} needs training; set `path` to a saved router")
    return router


def _llm_router(settings: GatewaySettings, ls: LLMRouterSettings, tiers: Sequence[Sequence[Deployment]],
                by_name: dict[str, Deployment], executor: FailoverExecutor) -> LLMRouter:
    names = settings.tier_names
    if ls.deployment is not None:
        deps: tuple[Deployment, ...] = (by_name[ls.deployment],)
    else:
        deps = tuple(tiers[names.index(ls.tier)] if ls.tier is not None else tiers[0])
    max_tokens, timeout_s = ls.max_tokens, ls.timeout_s

    async def complete(request: dict[str, Any]) -> dict[str, Any]:
        request["max_tokens"] = max_tokens
        res = await executor.complete(deps, request, deadline_s=timeout_s)
        return res.result.body

    return LLMRouter(complete, tiers=names, label_tiers=ls.labels, default_tier=ls.default_tier,
                     model=deps[0].name, max_prompt_chars=ls.max_prompt_chars)


def _route_tier(settings: GatewaySettings, deployments: Sequence[str], tier: str | None) -> int:
    names = settings.tier_names
    if tier is not None:
        return names.index(tier)
    held = [i for i, t in enumerate(settings.tiers) if any(d.display_name in deployments for d in t.deployments)]
    return max(held) if held else len(names) - 1


def build_rules(settings: GatewaySettings, tiers: Sequence[Sequence[Deployment]], extra: Sequence[Deployment],
                executor: FailoverExecutor, resolver: ModelResolver, metrics: GatewayMetrics) -> GatewayRules | None:
    """The gateway's routing rules, or None when none are configured (the fast path)."""
    if not settings.uses_routing_rules:
        return None
    rs = settings.router
    by_name = {d.name: d for t in tiers for d in t} | {d.name: d for d in extra}
    llm: LLMRouter | None = None
    policy = resolver.live.policy
    router: Scorer
    router_id: tuple[str, str | None]
    if rs.kind == "llm":
        llm = lr = _llm_router(settings, rs.llm or LLMRouterSettings(), tiers, by_name, executor)
        k = len(settings.tiers)  # tier i scores i/(k-1): midpoint thresholds reproduce the label -> tier map
        policy = replace(policy, thresholds=tuple((i + 0.5) / (k - 1) for i in range(k - 1)))
        router, router_id = lr, (lr.name, lr.model)
        metrics.bind_llm_router(lambda: {"calls": lr.calls, "unparseable": lr.unparseable, "errors": lr.errors})
    else:
        live = resolver.live
        router, router_id = Threaded(live.router), (live.router.name, live.ref or live.router.version)
    gate: Scorer | None = None
    gate_id = None
    gs = rs.gate
    if gs is not None:
        g = _gate(gs)
        gate, gate_id = Threaded(g), (g.name, g.version)
    categories = [CategoryRule(r.name, tuple(r.deployments), keywords=tuple(r.keywords),
                               patterns=(*r.patterns, *(CODE_PATTERNS if r.preset == "code" else ())),
                               min_tokens=r.min_tokens) for r in settings.routes]
    rules = RoutingRules([(n, t) for n, t in zip(settings.tier_names, tiers, strict=True)], policy, gate=gate,
                         gate_low=gs.low if gs else 0.2, gate_high=gs.high if gs else 0.8, router=router,
                         categories=categories, extra_deployments=extra)
    route_tiers = {r.name: _route_tier(settings, r.deployments, r.tier) for r in settings.routes}
    return GatewayRules(rules, route_tiers, gate_id, router_id, llm)


async def apply_rules(gw: Gateway, call: Call, payload: dict[str, Any]) -> int | RuledScore:
    """Decide one `gearshift/auto` request: a category route's tier index (deployments set on `call`), or
    the score and policy chat.py's tier draw continues from. Fills `rule`/`category` in the record."""
    gr: GatewayRules = gw.rules
    d = await gr.rules.decide(payload)
    rec = call.rec
    rec["rule"], rec["category"] = d.rule, d.category
    gw.metrics.child(gw.metrics.rule_decisions, d.rule).inc()
    notes = "".join(f"; {n}" for n in d.notes)
    if d.category is not None:
        idx = gr.route_tiers[d.category]
        call.deployments = list(d.deployments)
        dropped = f"; skipped {list(d.dropped)} (context window < ~{d.estimated_tokens} tokens)" if d.dropped else ""
        rec.update(router=None, router_version=None, thresholds=[], tier=gw.tier_names[idx], propensity=1.0,
                   reason=d.reason + dropped + notes)
        if gw.settings.exploration.record_prompts:
            rec["prompt"] = call.prompt[: gw.settings.exploration.max_prompt_chars]
        call.headers["x-gearshift-rule"] = f"category:{d.category}"
        call.headers["x-gearshift-router"] = "none"
        return idx
    if d.score is None or d.tier_index is None:  # RoutingRules gives both for every tier rule
        raise ConfigError(f"routing rule {d.rule!r} gave no score")
    base = d.moved_from_tier if d.moved_from_tier is not None else d.tier_index
    if d.rule == "gate":
        policy, who = gr.fixed_policy(base), gr.gate_id or gr.router_id
    else:
        policy, who = gr.rules.policy, (gr.gate_id if d.rule == "policy" else None) or gr.router_id
    rec.update(router=who[0], router_version=who[1], thresholds=list(policy.thresholds))
    call.headers["x-gearshift-rule"] = d.rule
    return RuledScore(replace(d.score, reason=d.reason + notes), policy, f"{who[0]}@{who[1]}")

"""Routing rules built from the settings: category routes, a cheap gate before a costlier router, LLM-as-router.

Built once per gateway (`build_rules`) when `[[routes]]`, `[router.gate]` or `[router] kind = "llm"` is
configured; otherwise the policy keeps its single-router fast path. What the rules decide per request is the
policy's business (`policy/decide.py`); this module only wires the configured scorers and deployments together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gearshift.errors import ConfigError
from gearshift.gateway.settings import GateSettings, GatewaySettings, LLMRouterSettings
from gearshift.policy.llm_router import LLMRouter
from gearshift.policy.rules import CODE_PATTERNS, CategoryRule, GatewayRules, RoutingRules, Scorer, Threaded
from gearshift.providers.base import Deployment
from gearshift.records.usage import cost_usd
from gearshift.routers.base import Router, TrainableRouter

if TYPE_CHECKING:
    from gearshift.gateway.routing import ModelResolver
    from gearshift.providers.reliability import FailoverExecutor
    from gearshift.tracing.metrics import GatewayMetrics


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
    prices = {d.name: (d.input_price_per_m, d.output_price_per_m) for d in deps}

    async def complete(request: dict[str, Any]) -> dict[str, Any]:
        """The classification call, priced like the cascade's judge (judge_verifier.py): cost into `usage.cost`."""
        request["max_tokens"] = max_tokens
        res = await executor.complete(deps, request, deadline_s=timeout_s)
        body = dict(res.result.body)
        usage = dict(body.get("usage") or {})
        in_p, out_p = prices.get(res.deployment.name, (0.0, 0.0))
        usd = cost_usd(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), in_p, out_p)
        body["usage"] = {**usage, "cost": usd or 0.0}
        return body

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

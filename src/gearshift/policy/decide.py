"""The routing decision, made in one place: `Policy.decide(route, request)` returns one immutable `Decision`.

Every step that moves the tier runs here, in this order: the routing rules (category routes, gate, router,
LLM-as-router) or the route's own router; per-segment thresholds, the exploration draw and the misroute
experiment (`draw.decide_for`); conversation stickiness; the context-window fit; the key's strong-tier share
cap, after which the fit is checked again. Each later step is deterministic given the request, so the logged
probabilities are those of the *final* tier under the whole policy, caps included (`served`). The gateway
records the decision and counts its `events`; it never changes the tier itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gearshift.errors import GearshiftError, InvalidRequestError
from gearshift.policy import draw
from gearshift.policy.conversations import ConversationStore, conversation_keys, scoped, tool_result_key
from gearshift.policy.route import Route, describe_route, score_prompt
from gearshift.policy.rules import GatewayRules, RuleDecision, estimate_tokens, nearest_fitting_tier
from gearshift.policy.settings import PolicyConfig
from gearshift.policy.share_cap import StrongShareCap, StrongShareExceededError
from gearshift.providers.base import Deployment
from gearshift.routers.base import RoutingScore
from gearshift.routers.policy import TierPolicy

CAP_RULE = "strong_share_cap"  # the record's `rule` when the cap, not the matched rule, chose the tier
TOOL_RULE = "tool_result"  # the record's `rule` when tool results went back to the tier that issued the calls


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """What the policy may look at: the request body, its messages, who sent it, its segment row."""

    request_id: str
    payload: Mapping[str, Any]
    messages: Sequence[Mapping[str, Any]]
    api_key_id: str | None = None
    segment: Mapping[str, Any] = field(default_factory=dict)
    conversation: str | None = None  # the x-gearshift-conversation-id header


@dataclass(frozen=True, slots=True)
class Decision:
    """Which tier and deployments serve a request, why, and with what probability under the whole policy."""

    tier: int
    tier_name: str
    deployments: tuple[Deployment, ...]
    probabilities: tuple[float, ...] | None  # the served tier's distribution over tiers; None: deterministic
    propensity: float
    rule: str | None  # routing rules: "category", "gate", "router", "policy"; CAP_RULE or TOOL_RULE; else None
    reason: str
    flags: frozenset[str]  # "escalated", "explored", CAP_RULE
    router_ref: str | None  # NAME@VERSION of the deciding scorer (x-gearshift-router); None: no router
    route: str  # "auto", "router" or "concrete"
    router: str | None = None
    router_version: str | None = None
    thresholds: tuple[float, ...] = ()
    category: str | None = None  # routing rules: the `[[routes]]` entry the request matched
    score: RoutingScore | None = None
    experiment_arm: str | None = None
    conversation_id: str | None = None
    events: tuple[tuple[str, str], ...] = ()  # (counter, label) for the gateway's metrics

    def record_fields(self) -> dict[str, Any]:
        """The decision's part of the decision record."""
        s = self.score
        return {"route": self.route, "router": self.router, "router_version": self.router_version,
                "thresholds": list(self.thresholds), "rule": self.rule, "category": self.category,
                "tier": self.tier_name, "reason": self.reason, "propensity": self.propensity,
                "tier_probabilities": None if self.probabilities is None else list(self.probabilities),
                "explored": "explored" in self.flags, "escalated": "escalated" in self.flags,
                "score": None if s is None else s.p_strong, "confidence": None if s is None else s.confidence,
                "ood": None if s is None else s.ood, "experiment_arm": self.experiment_arm,
                "conversation_id": self.conversation_id,
                "router_cost_usd": None if s is None else s.cost_usd,
                "router_latency_ms": None if s is None else s.latency_ms}

    def headers(self) -> dict[str, str]:
        """The response headers that explain the decision."""
        out: dict[str, str] = {}
        if self.rule is not None:
            out["x-gearshift-rule"] = f"category:{self.category}" if self.rule == "category" else self.rule
        out["x-gearshift-router"] = self.router_ref or "none"
        if self.router_ref is not None and self.score is not None:
            out["x-gearshift-score"] = f"{self.score.p_strong:.4f}"
        out["x-gearshift-tier"] = self.tier_name
        return out


@dataclass(frozen=True, slots=True)
class _Cap:
    """The share cap's verdict for this request: where a strongest-tier outcome goes instead (None: nowhere)."""

    at_cap: bool
    to: tuple[int, tuple[Deployment, ...]] | None = None
    note: str = ""


class Policy:
    """Tier choice for one gateway. `rules` is replaced whole on a router reload (gateway/reload.py)."""

    def __init__(self, config: PolicyConfig, tiers: Sequence[Sequence[Deployment]], tier_names: Sequence[str], *,
                 share_cap: StrongShareCap, conversations: ConversationStore | None = None,
                 allow_downgrade: bool = False, rules: GatewayRules | None = None) -> None:
        self.config = config
        self.tiers = [tuple(t) for t in tiers]
        self.tier_names = tuple(tier_names)
        self.share_cap = share_cap
        self.conversations = conversations
        self.allow_downgrade = allow_downgrade
        self.rules = rules

    async def decide(self, route: Route, req: PolicyRequest) -> Decision:
        if route.kind == "concrete" and route.tier_index is not None and route.deployment is not None:
            name = route.deployment.display_name
            _, at_cap = await self.share_cap.decide(req.api_key_id, route.tier_index, len(self.tiers))
            if at_cap and route.tier_index == len(self.tiers) - 1:  # counted in the key's window, strong or not
                raise StrongShareExceededError(
                    f"API key {req.api_key_id!r} is at its strong-tier share cap; {name!r} is a strong-tier model "
                    f"(ask for gearshift/auto, or a cheaper model)")
            return Decision(route.tier_index, self.tier_names[route.tier_index],
                            tuple(d for d in self.tiers[route.tier_index] if d.name == name), None, 1.0, None,
                            "concrete model requested", frozenset(), None, route.kind)
        if route.router is None or route.policy is None:
            raise GearshiftError(f"route {route.kind!r} has no router")
        rules = self.rules
        if rules is not None and route.kind == "auto":  # routing rules: [[routes]], [router.gate], kind = "llm"
            d = await rules.rules.decide(req.payload)
            if d.category is not None:
                return await self._category(rules, d, d.category, req)
            return await self._routed(route, req, *self._ruled(rules, d))
        score = await score_prompt(route.router, req.messages)
        who = describe_route(route)
        return await self._routed(route, req, score, route.policy, f"{route.router.name}@{route.router_version}",
                                  None, (who["router"], who["router_version"]))

    def _ruled(self, gr: GatewayRules, d: RuleDecision,
               ) -> tuple[RoutingScore, TierPolicy, str, str, tuple[str | None, str | None]]:
        """(score, the policy the tier draw continues from, router ref, rule, (router, version)) of a tier rule."""
        if d.score is None or d.tier_index is None:  # RoutingRules gives both for every tier rule
            raise GearshiftError(f"routing rule {d.rule!r} gave no score")
        base = d.moved_from_tier if d.moved_from_tier is not None else d.tier_index
        if d.rule == "gate":
            policy, who = gr.fixed_policy(base), gr.gate_id or gr.router_id
        else:
            policy, who = gr.rules.policy, (gr.gate_id if d.rule == "policy" else None) or gr.router_id
        notes = "".join(f"; {n}" for n in d.notes)
        return replace(d.score, reason=d.reason + notes), policy, f"{who[0]}@{who[1]}", d.rule, who

    async def _category(self, gr: GatewayRules, d: RuleDecision, category: str, req: PolicyRequest) -> Decision:
        """A category route: its deployments (already fitted by the rules), deterministic, unless the key's
        strong-share cap moves it to a cheaper tier (the record then names the cap, not the route)."""
        idx = gr.route_tiers[category]
        notes = "".join(f"; {n}" for n in d.notes)
        dropped = f"; skipped {list(d.dropped)} (context window < ~{d.estimated_tokens} tokens)" if d.dropped else ""
        reason, rule, deps, flags = d.reason + dropped + notes, "category", tuple(d.deployments), frozenset[str]()
        events: list[tuple[str, str]] = [("rule", d.rule)]
        cap = await self._cap(req, idx, d.estimated_tokens)
        if cap.to is not None and idx == len(self.tiers) - 1:
            idx, deps = cap.to
            reason, rule, flags = reason + cap.note, CAP_RULE, frozenset({CAP_RULE})
            events.append(("key_alert", CAP_RULE))
        elif cap.note and idx == len(self.tiers) - 1:
            reason += cap.note
        return Decision(idx, self.tier_names[idx], deps, None, 1.0, rule, reason, flags, None, "auto",
                        category=category, events=tuple(events))

    async def _routed(self, route: Route, req: PolicyRequest, score: RoutingScore, policy: TierPolicy,
                      router_ref: str, rule: str | None, who: tuple[str | None, str | None]) -> Decision:
        events: list[tuple[str, str]] = [] if rule is None else [("rule", rule)]
        scratch: dict[str, Any] = {"segment": req.segment, "rule": rule}  # decide_for's notes: thresholds, arm
        decision, probs, explored = draw.decide_for(self.config, policy, route.kind, score, req.request_id, scratch)
        idx, reason, escalated = decision.tier_index, decision.reason + f" [{score.reason}]", decision.escalated
        if decision.escalated:
            events.append(("escalation", "ood" if "distribution" in decision.reason else "confidence"))
        prior, conversation_id = await self._prior(req)
        if prior is not None and prior > idx and not self.allow_downgrade:
            reason += f"; kept conversation tier {self.tier_names[prior]}"
            idx = prior
        elif prior is not None and idx > prior:
            escalated = True
            reason += f"; conversation escalated from {self.tier_names[prior]}"
            events.append(("escalation", "conversation"))
        tool_tier = await self._tool_tier(req)
        if tool_tier is not None and tool_tier >= idx:  # a prompt-cache-friendly stay, unless routing escalated
            kept = "stay on" if tool_tier == idx else "moved back to"
            reason += f"; tool results {kept} tier {self.tier_names[tool_tier]}, which issued the call"
            idx, rule = tool_tier, TOOL_RULE
            events.append(("rule", TOOL_RULE))
        elif tool_tier is not None:
            reason += f"; tool results escalated from tier {self.tier_names[tool_tier]}, which issued the call"
        tokens = estimate_tokens(req.payload)
        idx, deps, fit_note = self.fit(idx, tokens)
        if fit_note:
            reason += f"; {fit_note}"
            escalated = escalated or fit_note.startswith("moved up")
        strong = len(self.tiers) - 1
        cap = await self._cap(req, idx, tokens)
        flags = {"escalated"} if escalated else set()
        if cap.to is not None and idx == strong:
            idx, deps = cap.to
            reason += cap.note
            flags.add(CAP_RULE)
            events.append(("key_alert", CAP_RULE))
        elif cap.note and idx == strong:
            reason += cap.note
        propensity = decision.propensity
        if probs is not None:  # learning: the served tier's probability over every draw that ends on it
            convo = draw.sticky_move(prior, self.allow_downgrade)
            tool = draw.sticky_move(tool_tier, False)

            def sticky(j: int) -> int:
                return tool(convo(j))

            probs = draw.remap(probs, self._served(lambda j: self.fit(sticky(j), tokens)[0], cap, strong))
            propensity = probs[idx]
            if explored:
                flags.add("explored")
        thresholds = scratch.get("thresholds", policy.thresholds)  # segment thresholds stand in when they apply
        return Decision(idx, self.tier_names[idx], deps, probs, propensity, rule, reason, frozenset(flags),
                        router_ref, route.kind, router=who[0], router_version=who[1], thresholds=tuple(thresholds),
                        score=score, experiment_arm=scratch.get("experiment_arm"), conversation_id=conversation_id,
                        events=tuple(events))

    async def _prior(self, req: PolicyRequest) -> tuple[int | None, str | None]:
        """(the tier the conversation was last served from, its lookup key); a pin from an older config is none."""
        lookup, _ = conversation_keys(req.conversation, req.messages)
        if self.conversations is None or lookup is None:
            return None, None
        prior = await self.conversations.get(scoped(lookup, req.api_key_id) or lookup)
        if prior is not None and not 0 <= prior < len(self.tiers):
            prior = None
        return prior, lookup

    async def _tool_tier(self, req: PolicyRequest) -> int | None:
        """The tier that issued the tool calls this request returns results for (None: no tool results, or
        the call is unknown here: pins live as long as conversation pins)."""
        key = tool_result_key(req.messages)
        if self.conversations is None or key is None:
            return None
        tier = await self.conversations.get(scoped(key, req.api_key_id) or key)
        return tier if tier is not None and 0 <= tier < len(self.tiers) else None

    def fit(self, idx: int, tokens: int) -> tuple[int, tuple[Deployment, ...], str | None]:
        """The nearest tier (up first, then down) with deployments whose context window fits `tokens`.

        Uses the routing-rules estimate (characters / 4 + max_tokens); nothing fitting anywhere is a 400."""
        cand, deps = nearest_fitting_tier(self.tiers, idx, tokens)
        if cand == idx:
            return cand, deps, None
        way = "up" if cand > idx else "down"
        return cand, deps, f"moved {way} to tier {self.tier_names[cand]} to fit ~{tokens} tokens"

    async def _cap(self, req: PolicyRequest, idx: int, tokens: int) -> _Cap:
        """The key's strong-share cap for this request, its window updated once (one step of the window store).

        At the cap, a strongest-tier outcome moves to the nearest cheaper tier whose deployments fit the request;
        where none fits, the cap cannot be kept without failing the request, and the reason says so."""
        n = len(self.tiers)
        _, at_cap = await self.share_cap.decide(req.api_key_id, idx, n)
        if not at_cap:
            return _Cap(False)
        try:
            to = nearest_fitting_tier(self.tiers[: n - 1], n - 2, tokens)
        except InvalidRequestError:
            return _Cap(True, None, f"; strong-tier share cap of key {req.api_key_id} not applied: no cheaper tier "
                                    f"fits ~{tokens} tokens")
        note = f"; strong-tier share cap of key {req.api_key_id}"
        if to[0] != n - 2:
            note += f"; moved down to tier {self.tier_names[to[0]]} to fit ~{tokens} tokens"
        return _Cap(True, to, note)

    @staticmethod
    def _served(before_cap: Callable[[int], int], cap: _Cap, strong: int) -> Callable[[int], int]:
        """Where a drawn tier j ends: through stickiness and fit (`before_cap`), then the cap."""
        if cap.to is None:
            return before_cap
        to = cap.to[0]

        def move(j: int) -> int:
            t = before_cap(j)
            return to if t == strong else t

        return move

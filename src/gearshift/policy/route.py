"""A resolved route and the router behind it: what the policy decides from.

The gateway's `ModelResolver` (gateway/routing.py) maps a model name to a `Route`; the configured router, its
policy and (for `[router] version`) the registered version it came from are one immutable `LiveRouter`,
swapped whole on reload, so a request resolved before a reload keeps the router and thresholds it got.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from gearshift.providers.registry import DeploymentSettings
from gearshift.routers.base import PromptLike, Router, RoutingScore
from gearshift.routers.policy import TierPolicy

if TYPE_CHECKING:
    from gearshift.store.versions import RouterVersion

@dataclass(frozen=True, slots=True)
class Route:
    """How one request is served. `router`/`policy` are set for routed models; `deployment` for concrete ones."""

    kind: Literal["auto", "router", "concrete"]
    router: Router | None = None
    policy: TierPolicy | None = None
    tier_index: int | None = None
    deployment: DeploymentSettings | None = None
    version_ref: str | None = None  # learning: the registered version ("name/3") `router` was loaded from

    @property
    def router_version(self) -> str | None:
        """What the record and `x-gearshift-router` name as the router's version: the registry ref when the
        router is a registered version, else the router class's own version."""
        if self.router is None:
            return None
        return self.version_ref or self.router.version


@dataclass(frozen=True, slots=True)
class LiveRouter:
    """The configured router with the policy (thresholds) that goes with it; `version` when registered."""

    router: Router
    policy: TierPolicy
    version: RouterVersion | None = None

    @property
    def ref(self) -> str | None:
        return None if self.version is None else self.version.ref


async def score_prompt(router: Router, prompt: PromptLike) -> RoutingScore:
    """Score on the loop where that is cheaper than a thread hop (`Router.scores_inline`), else in a thread."""
    if router.scores_inline(prompt):
        return router.score(prompt)
    return await asyncio.to_thread(router.score, prompt)


def describe_route(route: Route) -> dict[str, Any]:
    """Router fields for the decision record."""
    if route.router is None or route.policy is None:
        return {"router": None, "router_version": None, "thresholds": []}
    return {"router": route.router.name, "router_version": route.router_version,
            "thresholds": list(route.policy.thresholds)}

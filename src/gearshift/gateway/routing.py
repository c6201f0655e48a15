"""Model names to routing: `gearshift/auto`, `router-<name>-<threshold>`, or a concrete deployment.

`router-<name>-<threshold>` follows RouteLLM's convention. With more than two tiers, the one threshold
sets the first boundary and the others are spaced evenly between it and 1.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from typing import Any, Literal

from gearshift.errors import GearshiftError, ModelNotFoundError
from gearshift.gateway.settings import DeploymentSettings, GatewaySettings
from gearshift.routers.base import PromptLike, Router, RoutingScore, TrainableRouter
from gearshift.routers.policy import TierPolicy

AUTO_MODEL = "gearshift/auto"
_ROUTER_MODEL = re.compile(r"^router-(?P<name>[a-z0-9_]+)-(?P<thr>(?:0|1)(?:\.\d+)?|\.\d+)$")
#: Routers cheap enough (microseconds) to score on the event loop instead of a worker thread.
_INLINE_ROUTERS = frozenset({"heuristic", "random"})


@dataclass(frozen=True, slots=True)
class Route:
    """How one request is served. `router`/`policy` are set for routed models; `deployment` for concrete ones."""

    kind: Literal["auto", "router", "concrete"]
    router: Router | None = None
    policy: TierPolicy | None = None
    tier_index: int | None = None
    deployment: DeploymentSettings | None = None


def spread_thresholds(first: float, n_tiers: int) -> tuple[float, ...]:
    step = (1.0 - first) / (n_tiers - 1)
    return tuple(first + i * step for i in range(n_tiers - 1))


class ModelResolver:
    """Builds the configured router once; per-request routers are cached by name."""

    def __init__(self, settings: GatewaySettings, router: Router | None = None) -> None:
        self.settings = settings
        rs = settings.router
        self.tiers = settings.tier_names
        self.policy = TierPolicy(tiers=self.tiers, thresholds=tuple(rs.thresholds),
                                 ood_escalate=rs.ood_escalate, min_confidence=rs.min_confidence)
        self.router = router if router is not None else self._configured_router()
        self._concrete = settings.deployment_tiers()
        self._cache: dict[str, Router] = {self.router.name: self.router}
        self._lock = threading.Lock()

    def _configured_router(self) -> Router:
        from gearshift.routers.registry import load_router, make_router

        rs = self.settings.router
        if rs.version is not None:  # learning: a registered version (`gearshift promote` / `rollback`)
            from dataclasses import replace

            from gearshift.store.versions import live_router

            router, thresholds = live_router(self.settings, rs.version)
            if thresholds is not None:
                self.policy = replace(self.policy, thresholds=thresholds)
            return router
        if rs.path is not None:
            return load_router(rs.path)
        return make_router(rs.name, **rs.params)

    def _named_router(self, name: str, model: str) -> Router:
        from gearshift.routers.registry import make_router

        with self._lock:
            cached = self._cache.get(name)
        if cached is not None:
            return cached
        try:
            router = make_router(name)
        except GearshiftError:
            raise ModelNotFoundError(f"The model `{model}` does not exist: unknown router {name!r}",
                                     param="model") from None
        if isinstance(router, TrainableRouter) and not router.is_fitted():
            raise ModelNotFoundError(f"The model `{model}` is not available: router {name!r} needs training; "
                                     f"configure a saved one as [router] path", param="model")
        with self._lock:
            self._cache[name] = router
        return router

    def model_ids(self) -> list[str]:
        ids = [AUTO_MODEL, f"router-{self.router.name}-{self.settings.router.thresholds[0]:g}"]
        if self.router.name != "heuristic":
            ids.append("router-heuristic-0.5")
        return ids + list(self._concrete)

    def resolve(self, model: str) -> Route:
        if model == AUTO_MODEL:
            return Route("auto", router=self.router, policy=self.policy)
        m = _ROUTER_MODEL.match(model)
        if m is not None:
            thr = float(m["thr"])
            router = self._named_router(m["name"], model)
            policy = TierPolicy(tiers=self.tiers, thresholds=spread_thresholds(thr, len(self.tiers)),
                                ood_escalate=self.policy.ood_escalate, min_confidence=self.policy.min_confidence)
            return Route("router", router=router, policy=policy)
        hit = self._concrete.get(model)
        if hit is not None:
            tier, dep = hit
            return Route("concrete", tier_index=self.tiers.index(tier), deployment=dep)
        raise ModelNotFoundError(f"The model `{model}` does not exist", param="model")


async def score_prompt(router: Router, prompt: PromptLike) -> RoutingScore:
    """Score on the loop for microsecond routers, in a worker thread for embedding ones."""
    if router.name in _INLINE_ROUTERS:
        return router.score(prompt)
    return await asyncio.to_thread(router.score, prompt)


def describe_route(route: Route) -> dict[str, Any]:
    """Router fields for the decision record."""
    if route.router is None or route.policy is None:
        return {"router": None, "router_version": None, "thresholds": []}
    return {"router": route.router.name, "router_version": route.router.version,
            "thresholds": list(route.policy.thresholds)}

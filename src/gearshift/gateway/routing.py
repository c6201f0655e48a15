"""Model names to routing: `gearshift/auto`, `router-<name>-<threshold>`, or a concrete deployment.

`router-<name>-<threshold>` follows RouteLLM's convention. With more than two tiers, the one threshold
sets the first boundary and the others are spaced evenly between it and 1.

The configured router, its policy and (for `[router] version`) the registered version it came from are
one immutable `LiveRouter`; `ModelResolver.swap` replaces it in one assignment (gateway/reload.py), so a
request resolved before a reload keeps the router and thresholds it got, and every later one sees the new pair.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from gearshift.errors import ConfigError, GearshiftError, ModelNotFoundError, did_you_mean
from gearshift.gateway.settings import GatewaySettings
from gearshift.policy.route import LiveRouter, Route
from gearshift.routers.base import Router, TrainableRouter
from gearshift.routers.policy import TierPolicy

if TYPE_CHECKING:
    from gearshift.store.versions import RouterVersion

AUTO_MODEL = "gearshift/auto"
_ROUTER_MODEL = re.compile(r"^router-(?P<name>[a-z0-9_]+)-(?P<thr>(?:0|1)(?:\.\d+)?|\.\d+)$")


def spread_thresholds(first: float, n_tiers: int) -> tuple[float, ...]:
    step = (1.0 - first) / (n_tiers - 1)
    return tuple(first + i * step for i in range(n_tiers - 1))


class ModelResolver:
    """Builds the configured router (swapped whole on reload); per-request routers are cached by name."""

    def __init__(self, settings: GatewaySettings, router: Router | None = None) -> None:
        self.settings = settings
        rs = settings.router
        self.tiers = settings.tier_names
        self.base_policy = TierPolicy(tiers=self.tiers, thresholds=tuple(rs.thresholds),
                                      ood_escalate=rs.ood_escalate, min_confidence=rs.min_confidence)
        self.live = LiveRouter(router, self.base_policy) if router is not None else self._configured_router()
        self._concrete = settings.deployment_tiers()
        self._cache: dict[str, Router] = {self.router.name: self.router}
        self._lock = threading.Lock()

    @property
    def router(self) -> Router:
        return self.live.router

    @property
    def policy(self) -> TierPolicy:
        return self.live.policy

    def _configured_router(self) -> LiveRouter:
        from gearshift.routers.registry import load_router, make_router

        rs = self.settings.router
        if rs.version is not None:  # learning: a registered version (`gearshift promote` / `rollback`)
            from gearshift.store.factory import live_version, settings_url

            return self.load_live(live_version(settings_url(self.settings.store), rs.version))
        if rs.path is not None:
            return LiveRouter(load_router(rs.path), self._saved_policy(rs.path))
        router = make_router(rs.name, **rs.params)
        if isinstance(router, TrainableRouter) and not router.is_fitted():
            raise ConfigError(
                f"[router] name = {rs.name!r} is a trainable router and has not been trained. Train one on recorded "
                f"outcomes and serve the saved directory:\n  gearshift train --data mmlu --router {rs.name} "
                f"--out routers/{rs.name}\nthen set [router] path = \"routers/{rs.name}\" (or use name = "
                f"\"heuristic\", which needs no training)")
        return LiveRouter(router, self.base_policy)

    def _saved_policy(self, path: Path) -> TierPolicy:
        """The thresholds `gearshift train` calibrated and saved with the router, unless the config sets its own."""
        from dataclasses import replace

        from gearshift.routers.operating_point import load_operating_point

        point = load_operating_point(path)
        if point is None or "thresholds" in self.settings.router.model_fields_set:
            return self.base_policy
        if len(point.thresholds) != len(self.tiers) - 1:
            raise ConfigError(f"[router] path {path} was calibrated for {len(point.thresholds) + 1} tiers but the "
                              f"gateway has {len(self.tiers)}: set [router] thresholds or retrain with these tiers")
        return replace(self.base_policy, thresholds=point.thresholds)

    def load_live(self, version: RouterVersion) -> LiveRouter:
        """A registered version as a `LiveRouter` (its thresholds, else `[router] thresholds`); not yet serving."""
        from dataclasses import replace

        from gearshift.store.factory import load_version

        router, thresholds = load_version(version, len(self.tiers))
        policy = self.base_policy if thresholds is None else replace(self.base_policy, thresholds=thresholds)
        return LiveRouter(router, policy, version)

    def swap(self, live: LiveRouter) -> LiveRouter:
        """Serve `live` from now on (one assignment: requests already resolved keep theirs); returns the old one."""
        old = self.live
        with self._lock:
            if self._cache.get(old.router.name) is old.router:
                del self._cache[old.router.name]
            self._cache[live.router.name] = live.router
        self.live = live
        return old

    def _named_router(self, name: str, model: str) -> Router:
        from gearshift.routers.registry import ROUTERS, make_router

        with self._lock:
            cached = self._cache.get(name)
        if cached is not None:
            return cached
        try:
            router = make_router(name)
        except GearshiftError:
            raise ModelNotFoundError(f"The model `{model}` does not exist: unknown router {name!r} "
                                     f"({did_you_mean(name, ROUTERS)}known: {', '.join(ROUTERS)})",
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
        live = self.live  # read once: the router and its policy always come from the same version
        if model == AUTO_MODEL:
            return Route("auto", router=live.router, policy=live.policy, version_ref=live.ref)
        m = _ROUTER_MODEL.match(model)
        if m is not None:
            thr = float(m["thr"])
            router = self._named_router(m["name"], model)
            policy = TierPolicy(tiers=self.tiers, thresholds=spread_thresholds(thr, len(self.tiers)),
                                ood_escalate=live.policy.ood_escalate, min_confidence=live.policy.min_confidence)
            return Route("router", router=router, policy=policy,
                         version_ref=live.ref if router is live.router else None)
        hit = self._concrete.get(model)
        if hit is not None:
            tier, dep = hit
            return Route("concrete", tier_index=self.tiers.index(tier), deployment=dep)
        ids = self.model_ids()
        raise ModelNotFoundError(f"The model `{model}` does not exist; {did_you_mean(model, ids)}available models: "
                                 f"{', '.join(ids)}, or router-<router>-<threshold>", param="model")

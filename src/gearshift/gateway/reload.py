"""Router hot reload: serve the registry's current `[router] version` (usually "champion") without a restart.

`gearshift promote` and `gearshift rollback` only change the version registry; a gateway picks the change
up when told to (`POST /v1/admin/router/reload`, admin scope; SIGHUP to `gearshift serve`) or by itself
every `[router] reload_interval_s` seconds (what carries a promotion to a whole fleet sharing PostgreSQL).

A reload reads the registry and loads and warms the new router in a worker thread, then swaps the
resolver's `LiveRouter` (router + thresholds, together) and the routing rules' router in one synchronous
step on the event loop: a request that has already resolved its route keeps the old router, every later
one gets the new. Any failure (registry down, version directory gone, bad saved state, thresholds that do
not fit the tiers) leaves the old router serving and is raised as `RouterReloadError` (logged for
SIGHUP and polling, which have no caller to answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING, Any

from gearshift.errors import GearshiftError, InvalidRequestError, RouterReloadError

if TYPE_CHECKING:
    from gearshift.gateway.routing import ModelResolver
    from gearshift.gateway.settings import GatewaySettings
    from gearshift.policy.decide import Policy
    from gearshift.policy.route import LiveRouter
    from gearshift.store.versions import RouterVersion, VersionRegistry
    from gearshift.tracing.metrics import GatewayMetrics

log = logging.getLogger(__name__)

_WARM_UP_PROMPT = "Hello, how are you?"


class RouterReloader:
    """Reloads one gateway's configured router from the version registry (see the module docstring)."""

    def __init__(self, settings: GatewaySettings, resolver: ModelResolver, policy: Policy,
                 metrics: GatewayMetrics) -> None:
        self.settings, self.resolver, self.policy, self.metrics = settings, resolver, policy, metrics
        self.ref = settings.router.version  # what to serve: "champion" or NAME[/VERSION]
        self.interval_s = settings.router.reload_interval_s
        self.reloads = 0  # swaps done since start
        self.failures = 0
        self.last_error: str | None = None
        self._lock = asyncio.Lock()
        self._registry: VersionRegistry | None = None  # kept open between polls (PostgreSQL migrates on open)
        self._poller: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._signal_loop: asyncio.AbstractEventLoop | None = None

    async def reload(self, *, if_changed: bool = False) -> dict[str, Any]:
        """Swap in the registry's current version; `if_changed` skips the load when it is the one serving.

        Returns {"old", "new", "changed", "router", "thresholds"}; raises RouterReloadError with the old
        router still serving, or InvalidRequestError when the gateway serves no registered version."""
        if self.ref is None:
            raise InvalidRequestError("nothing to reload: the gateway serves no registered router version "
                                      "(set [router] version, e.g. \"champion\")")
        resolver = self.resolver
        async with self._lock:  # one reload at a time: two racing ones could otherwise swap out of order
            old = resolver.live
            try:
                version = await asyncio.to_thread(self._lookup, self.ref)
                if if_changed and old.ref == version.ref:
                    self.metrics.router_reloads.labels(result="unchanged").inc()
                    return self._result(old, old, changed=False)
                live = await asyncio.to_thread(self._load, version)
            except Exception as exc:
                self.failures += 1
                self.metrics.router_reloads.labels(result="error").inc()
                why = exc.message if isinstance(exc, GearshiftError) else f"{type(exc).__name__}: {exc}"
                self.last_error = why
                raise RouterReloadError(f"router reload of [router] version = {self.ref!r} failed; still serving "
                                        f"{old.ref or old.router.name}: {why}") from exc
            self._swap(live)
            self.reloads += 1
            self.metrics.router_reloads.labels(result="ok").inc()
            self.last_error = None
        log.info("router reloaded: %s -> %s", old.ref, live.ref)
        return self._result(old, live, changed=True)

    def _lookup(self, ref: str) -> RouterVersion:
        from gearshift.store.factory import open_live_registry, settings_url

        if self._registry is None:
            self._registry = open_live_registry(settings_url(self.settings.store), ref)
        try:
            return self._registry.get(ref)
        except Exception:
            self._close_registry()  # reopen next time: the connection may be what failed
            raise

    def _load(self, version: RouterVersion) -> LiveRouter:
        live = self.resolver.load_live(version)
        live.router.score(_WARM_UP_PROMPT)  # fail here rather than on traffic; loads lazy state (embedders)
        return live

    def _swap(self, live: LiveRouter) -> None:
        """The swap itself: synchronous, so no request on the loop sees the resolver and the rules disagree."""
        self.resolver.swap(live)
        rules = self.policy.rules
        if rules is not None:
            self.policy.rules = rules.with_router(live.router, live.policy, live.ref)

    @staticmethod
    def _result(old: LiveRouter, new: LiveRouter, *, changed: bool) -> dict[str, Any]:
        return {"old": old.ref, "new": new.ref, "changed": changed, "router": new.router.name,
                "thresholds": list(new.policy.thresholds)}

    async def _logged_reload(self, why: str, *, if_changed: bool) -> None:
        try:
            result = await self.reload(if_changed=if_changed)
        except GearshiftError as exc:
            log.error("%s: %s", why, exc.message)
        except Exception:  # pragma: no cover - reload turns every failure into RouterReloadError
            log.exception("%s failed", why)
        else:
            if result["changed"]:
                log.warning("%s: router version %s -> %s", why, result["old"], result["new"])

    # -- triggers other than the HTTP endpoint -------------------------------------------------------------
    def start(self) -> None:
        """Start polling when `[router] reload_interval_s` > 0 (called from the app's lifespan, on the loop)."""
        if self.ref is not None and self.interval_s > 0 and self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="gearshift-router-reload")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._logged_reload("router reload (reload_interval_s)", if_changed=True)

    def install_sighup(self) -> bool:
        """Reload on SIGHUP (`gearshift serve`); False where the loop cannot take signal handlers."""
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):  # Windows, or not the main thread
            return False
        self._signal_loop = loop
        return True

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self._logged_reload("router reload (SIGHUP)", if_changed=False))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def aclose(self) -> None:
        if self._signal_loop is not None:
            with contextlib.suppress(Exception):
                self._signal_loop.remove_signal_handler(signal.SIGHUP)
            self._signal_loop = None
        tasks = [t for t in (self._poller, *self._pending) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._poller = None
        self._close_registry()

    def _close_registry(self) -> None:
        reg, self._registry = self._registry, None
        if reg is not None:
            with contextlib.suppress(Exception):
                reg.close()

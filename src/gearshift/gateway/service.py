"""The gateway's long-lived parts, built once per app from the settings.

Kept apart from the HTTP handlers so tests can build one with injected providers, routers and stores.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from gearshift.errors import ConfigError
from gearshift.gateway.auth import KeyChecker
from gearshift.gateway.conversations import ConversationStore, FailOpenConversationStore, LRUConversationStore
from gearshift.gateway.metrics import GatewayMetrics
from gearshift.gateway.reload import RouterReloader
from gearshift.gateway.routing import ModelResolver
from gearshift.gateway.settings import DeploymentSettings, GatewaySettings
from gearshift.providers.attempts import RetryPolicy
from gearshift.providers.base import ChatProvider, Deployment
from gearshift.providers.registry import build_providers
from gearshift.providers.reliability import FailoverExecutor
from gearshift.records.failopen import FailOpenLog
from gearshift.records.record import DecisionRecord
from gearshift.routers.base import Router
from gearshift.store.base import DecisionStore
from gearshift.store.writer import BackgroundWriter

log = logging.getLogger(__name__)


def default_providers(settings: GatewaySettings) -> dict[str, ChatProvider]:
    """Only the providers the config uses (the local one loads a model, so it is never built needlessly)."""
    used = {d.provider for t in settings.tiers for d in t.deployments}
    used |= {d.provider for d in settings.extra_deployments}  # routing rules: category-route targets
    return build_providers(used)


@dataclass
class Gateway:
    settings: GatewaySettings
    resolver: ModelResolver
    executor: FailoverExecutor
    providers: dict[str, ChatProvider]
    tiers: list[list[Deployment]]
    deployment_settings: dict[str, DeploymentSettings]
    metrics: GatewayMetrics
    keys: KeyChecker
    writer: BackgroundWriter | None = None
    store: DecisionStore | None = None
    conversations: ConversationStore | None = None
    cascade: Any = None  # gearshift.cascade.runner.CascadeRunner when enabled
    closed_loop: Any = None  # gearshift.closed_loop.loop.ClosedLoop: shadow, signals, SLO monitor
    shared: Any = None  # scale-out: gearshift.store.redis_state.SharedState when `[redis] url` is set
    tracer: Any = None  # tracing: gearshift.tracing.RecordTracer when `[tracing] enabled` (one span per record)
    rules: Any = None  # routing rules: gateway.rules_wiring.GatewayRules when configured, else the fast path
    topics: Any = None  # closed loop: closed_loop.topics.TopicSegmenter when `[segments] topics` is set
    reloader: RouterReloader | None = None  # learning: router hot reload (gateway/reload.py)
    records_emitted: int = field(default=0)
    started_at: float = field(default_factory=time.time)

    @property
    def tier_names(self) -> tuple[str, ...]:
        return self.settings.tier_names

    def tier_cap(self, tier_index: int) -> int | None:
        """The smallest `max_tokens` cap among the tier's deployments (None: uncapped)."""
        return self._tier_caps[tier_index]

    @cached_property
    def _tier_caps(self) -> tuple[int | None, ...]:
        """Every tier's cap, computed on first use: the tiers are fixed for the gateway's life."""
        caps = []
        for tier in self.tiers:
            known = [c for d in tier if (c := self.deployment_settings[d.name].max_tokens) is not None]
            caps.append(min(known) if known else None)
        return tuple(caps)

    def emit(self, record: DecisionRecord | dict[str, Any]) -> None:
        """Hand the record (or its `to_row()` dict) to the background writer; never blocks or raises."""
        self.records_emitted += 1
        row = record.to_row() if isinstance(record, DecisionRecord) else record
        if self.writer is not None:
            self.writer.submit(row)
        if self.tracer is not None:  # tracing: never raises; the typed record only when someone reads it
            self.tracer.on_record(record if isinstance(record, DecisionRecord) else DecisionRecord.model_validate(row))

    async def aclose(self) -> None:
        if self.reloader is not None:  # first: no swap while the rest shuts down
            await self.reloader.aclose()
        if self.closed_loop is not None:  # first: its shadow workers still use the providers
            try:
                await self.closed_loop.aclose()
            except Exception:
                log.exception("closing the closed loop failed")
        for p in self.providers.values():
            try:
                await p.aclose()
            except Exception:  # shutdown must go on
                log.exception("closing provider failed")
        if self.writer is not None:
            self.writer.close()
        if self.store is not None:
            self.store.close()
        if self.shared is not None:
            await self.shared.aclose()


def _build_cascade(settings: GatewaySettings, tiers: Sequence[Sequence[Deployment]], executor: FailoverExecutor,
                   deadline_s: float) -> Any:
    """The cascade runner when `[cascade] enabled = true`; its call is the failover executor."""
    if not settings.cascade.enabled:
        return None
    try:
        from gearshift.cascade.factory import build_cascade
        from gearshift.cascade.runner import CascadeRunner
    except ImportError as exc:  # pragma: no cover - the cascade package ships with gearshift
        raise ConfigError(f"cascade enabled but gearshift.cascade is unavailable: {exc}") from exc

    async def call(deps: Sequence[Deployment], request: dict[str, Any]) -> tuple[dict[str, Any], Deployment, Any]:
        res = await executor.complete(deps, request, deadline_s=deadline_s)
        return res.result.body, res.deployment, res.attempts

    options: Mapping[str, Any] = settings.cascade.model_dump()
    config, verifiers = build_cascade(options)
    return CascadeRunner(tiers, call, verifiers, config)


def _shared_state(settings: GatewaySettings, errors: FailOpenLog) -> Any:
    """scale-out: Redis-backed breakers, rate limits and budgets when `[redis] url` is set, else None.
    Its breakers fall back to per-process state while Redis is out (reported to `errors`, op `breaker`); after
    an outage error every shared-state call skips Redis for `[redis] retry_s` (one gate per process)."""
    if settings.redis.url is None:
        return None
    from gearshift.store.redis_state import SharedState

    return SharedState.from_settings(settings.redis.url, settings.redis.prefix, settings.auth,
                                     conversation_ttl_s=settings.conversations.ttl_s,
                                     timeout_s=settings.redis.timeout_s, retry_s=settings.redis.retry_s,
                                     errors=errors)


def _breakers(shared: Any) -> Any:
    """Shared breakers read wall-clock time: monotonic clocks of different hosts do not agree."""
    if shared is None:
        return None
    from gearshift.providers.breaker import BreakerRegistry

    return BreakerRegistry(shared.breakers, clock=time.time)


def _key_checker(settings: GatewaySettings, shared: Any, errors: FailOpenLog) -> KeyChecker:
    if shared is None:
        return KeyChecker(settings.auth, errors=errors)
    return KeyChecker(settings.auth, limiter=shared.limiter, budgets=shared.budgets,
                      share_windows=shared.share_windows, errors=errors,
                      quota_on_failure=settings.redis.quota_on_failure)


def _conversations(settings: GatewaySettings, shared: Any, errors: FailOpenLog) -> ConversationStore | None:
    """Pins in Redis when shared (a failure there is "no pin"), else in this process's LRU."""
    if not settings.conversations.enabled:
        return None
    if shared is not None:
        return FailOpenConversationStore(shared.conversations, errors)
    return LRUConversationStore(settings.conversations.max_entries)


def build_gateway(settings: GatewaySettings, *, providers: Mapping[str, ChatProvider] | None = None,
                  store: DecisionStore | None = None, router: Router | None = None,
                  executor: FailoverExecutor | None = None) -> Gateway:
    """Everything but the HTTP layer. A `store` given here overrides `[store]`; the writer starts later."""
    tiers = [[d.resolve() for d in t.deployments] for t in settings.tiers]
    extra = [d.resolve() for d in settings.extra_deployments]  # routing rules: deployments outside the tiers
    dep_settings = {d.display_name: d for t in settings.tiers for d in t.deployments}
    dep_settings.update({d.display_name: d for d in settings.extra_deployments})
    provs = dict(providers) if providers is not None else default_providers(settings)
    missing = ({d.provider for t in tiers for d in t} | {d.provider for d in extra}) - set(provs)
    if missing:
        raise ConfigError(f"no provider for {sorted(missing)}")
    rel = settings.reliability
    retry = RetryPolicy(max_retries=rel.max_retries, base_delay_s=rel.base_delay_s, max_delay_s=rel.max_delay_s)
    metrics = GatewayMetrics()
    errors = FailOpenLog(lambda op: metrics.shared_state_errors.labels(op=op).inc())
    shared = _shared_state(settings, errors)
    execu = executor or FailoverExecutor(provs, retry, _breakers(shared))
    if store is None and settings.store.enabled:
        from gearshift.store.factory import open_decision_store, settings_url, store_options  # sqlite or postgresql

        store = open_decision_store(settings_url(settings.store), **store_options(settings.store))
    writer = None
    if store is not None:
        from gearshift.gateway.lifecycle import build_writer  # spool + record redaction (reliability)

        writer = build_writer(settings, store, [d.api_key for t in [*tiers, extra] for d in t if d.api_key])
    conv = _conversations(settings, shared, errors)
    if writer is not None:
        w = writer
        metrics.bind_writer(lambda: float(w.dropped), lambda: float(w.queued))
    gw = Gateway(
        settings=settings, resolver=ModelResolver(settings, router), executor=execu, providers=provs, tiers=tiers,
        deployment_settings=dep_settings, metrics=metrics, keys=_key_checker(settings, shared, errors), writer=writer,
        store=store, conversations=conv, shared=shared,
        cascade=_build_cascade(settings, tiers, execu, settings.limits.request_timeout_s),
    )
    from gearshift.closed_loop.loop import build_closed_loop

    if settings.segments.topics is not None:
        from gearshift.closed_loop.topics import load_segmenter

        gw.topics = load_segmenter(settings.segments.topics, gw.resolver.router)
    gw.reloader = RouterReloader(gw)
    gw.closed_loop = build_closed_loop(gw)  # None when [shadow], [signals] and [slo] are all off
    if settings.uses_routing_rules:
        from gearshift.gateway.rules_wiring import build_rules

        gw.rules = build_rules(settings, tiers, extra, execu, gw.resolver, metrics)
    return gw

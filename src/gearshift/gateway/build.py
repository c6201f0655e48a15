"""Building a `Gateway` from its settings: providers through the registry, the policy, the writer, the extensions.

Apart from `service.py` so that the gateway's type imports none of what builds it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gearshift.errors import ConfigError
from gearshift.gateway.auth import KeyChecker
from gearshift.gateway.reload import RouterReloader
from gearshift.gateway.routing import ModelResolver
from gearshift.gateway.service import Gateway
from gearshift.gateway.settings import GatewaySettings
from gearshift.policy.conversations import ConversationStore, FailOpenConversationStore, LRUConversationStore
from gearshift.policy.decide import Policy
from gearshift.providers.attempts import RetryPolicy
from gearshift.providers.base import ChatProvider, Deployment
from gearshift.providers.registry import build_providers
from gearshift.providers.reliability import FailoverExecutor
from gearshift.records.failopen import FailOpenLog
from gearshift.records.redaction import record_transform
from gearshift.routers.base import Router
from gearshift.store.base import DecisionStore
from gearshift.tracing.metrics import GatewayMetrics

if TYPE_CHECKING:
    from gearshift.cascade.judge import CompletionFn
    from gearshift.cascade.runner import CascadeRunner
    from gearshift.providers.breaker import BreakerRegistry
    from gearshift.store.redis_state import SharedState


def _build_cascade(settings: GatewaySettings, tiers: Sequence[Sequence[Deployment]], extra: Sequence[Deployment],
                   executor: FailoverExecutor, deadline_s: float) -> CascadeRunner | None:
    """The cascade runner when `[cascade] enabled = true`; its call is the failover executor, and so is the
    judge verifier's (gateway/judge_verifier.py)."""
    if not settings.cascade.enabled:
        return None
    from gearshift.cascade.factory import build_cascade
    from gearshift.cascade.runner import CascadeRunner

    async def call(deps: Sequence[Deployment], request: dict[str, Any]) -> tuple[dict[str, Any], Deployment, Any]:
        res = await executor.complete(deps, request, deadline_s=deadline_s)
        return res.result.body, res.deployment, res.attempts

    options: Mapping[str, Any] = settings.cascade.model_dump()
    from gearshift.gateway.judge_verifier import JudgeBudget, judge_completion, judge_deployments

    asked: dict[str, CompletionFn] = {}
    for prefix in ("judge", "consistency"):
        if prefix in options.get("verifiers", ()):
            deps = judge_deployments(options, settings.tier_names, tiers, extra, prefix)
            budget = JudgeBudget(options.get(f"{prefix}_max_usd_per_hour"))
            asked[prefix] = judge_completion(options, deps, executor, budget, prefix)
            if prefix == "judge":
                options = {"judge_model": deps[0].model, **options}
    config, verifiers = build_cascade(options, judge=asked.get("judge"), second=asked.get("consistency"))
    return CascadeRunner(tiers, call, verifiers, config)


def _shared_state(settings: GatewaySettings, errors: FailOpenLog) -> SharedState | None:
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


def _breakers(shared: SharedState | None) -> BreakerRegistry | None:
    """Shared breakers read wall-clock time: monotonic clocks of different hosts do not agree."""
    if shared is None:
        return None
    from gearshift.providers.breaker import BreakerRegistry

    return BreakerRegistry(shared.breakers, clock=time.time)


def _key_checker(settings: GatewaySettings, shared: SharedState | None, errors: FailOpenLog) -> KeyChecker:
    if shared is None:
        return KeyChecker(settings.auth, errors=errors)
    return KeyChecker(settings.auth, limiter=shared.limiter, budgets=shared.budgets,
                      share_windows=shared.share_windows, errors=errors,
                      quota_on_failure=settings.redis.quota_on_failure)


def _conversations(settings: GatewaySettings, shared: SharedState | None,
                   errors: FailOpenLog) -> ConversationStore | None:
    """Pins in Redis when shared (a failure there is "no pin"), else in this process's LRU."""
    if not settings.conversations.enabled:
        return None
    if shared is not None:
        return FailOpenConversationStore(shared.conversations, errors)
    return LRUConversationStore(settings.conversations.max_entries)


def default_providers(settings: GatewaySettings) -> dict[str, ChatProvider]:
    """Only the providers the config uses (the local one loads a model, so it is never built needlessly)."""
    used = {d.provider for t in settings.tiers for d in t.deployments}
    used |= {d.provider for d in settings.extra_deployments}  # routing rules: category-route targets
    used |= {d.provider for d in settings.embeddings}  # /v1/embeddings pass-through
    return build_providers(used)


def build_gateway(settings: GatewaySettings, *, providers: Mapping[str, ChatProvider] | None = None,
                  store: DecisionStore | None = None, router: Router | None = None,
                  executor: FailoverExecutor | None = None) -> Gateway:
    """Everything but the HTTP layer. A `store` given here overrides `[store]`; the writer starts later."""
    tiers = [[d.resolve() for d in t.deployments] for t in settings.tiers]
    extra = [d.resolve() for d in settings.extra_deployments]  # routing rules: deployments outside the tiers
    embed = {d.display_name: d.resolve() for d in settings.embeddings}  # /v1/embeddings, no routing
    dep_settings = {d.display_name: d for t in settings.tiers for d in t.deployments}
    dep_settings.update({d.display_name: d for d in settings.extra_deployments})
    dep_settings.update({d.display_name: d for d in settings.embeddings})
    provs = dict(providers) if providers is not None else default_providers(settings)
    missing = ({d.provider for t in [*tiers, extra, embed.values()] for d in t}) - set(provs)
    if missing:
        raise ConfigError(f"no provider for {sorted(missing)}")
    rel = settings.reliability
    retry = RetryPolicy(max_retries=rel.max_retries, base_delay_s=rel.base_delay_s, max_delay_s=rel.max_delay_s)
    metrics = GatewayMetrics()
    errors = FailOpenLog(lambda op: metrics.shared_state_errors.labels(op=op).inc())
    shared = _shared_state(settings, errors)
    execu = executor or FailoverExecutor(provs, retry, _breakers(shared), midstream_failover=rel.midstream_failover)
    if store is None and settings.store.enabled:
        from gearshift.store.factory import open_decision_store, settings_url, store_options  # sqlite or postgresql

        store = open_decision_store(settings_url(settings.store), **store_options(settings.store))
    resolver = ModelResolver(settings, router)
    writer = None
    secrets = [d.api_key for t in [*tiers, extra, embed.values()] for d in t if d.api_key]
    if store is not None:
        from gearshift.gateway.lifecycle import build_writer  # spool + record redaction (reliability)

        writer = build_writer(settings, store, secrets, resolver.model_ids())
    if writer is not None:
        w = writer
        metrics.bind_writer(lambda: float(w.dropped), lambda: float(w.queued))
    keys = _key_checker(settings, shared, errors)
    rules = None
    if settings.uses_routing_rules:
        from gearshift.gateway.rules_wiring import build_rules

        rules = build_rules(settings, tiers, extra, execu, resolver, metrics)
    policy = Policy(settings, tiers, settings.tier_names, share_cap=keys.strong_cap,
                    conversations=_conversations(settings, shared, errors),
                    allow_downgrade=settings.conversations.allow_downgrade, rules=rules)
    gw = Gateway(
        settings=settings, resolver=resolver, executor=execu, providers=provs, tiers=tiers,
        deployment_settings=dep_settings, metrics=metrics, keys=keys, policy=policy, writer=writer,
        store=store, shared=shared, cascade=_build_cascade(settings, tiers, extra, execu,
                                                            settings.limits.request_timeout_s),
        conceal=record_transform(settings.store.concealment(), secrets, resolver.model_ids()), embeddings=embed,
    )
    if settings.segments.topics is not None:
        from gearshift.routers.topics import load_segmenter

        gw.topics = load_segmenter(settings.segments.topics, gw.resolver.router)
    gw.reloader = RouterReloader(settings, resolver, policy, metrics)
    from gearshift.closed_loop.loop import build_closed_loop
    from gearshift.gateway.drift_reference import reference_source

    gw.closed_loop = build_closed_loop(gw, settings.store, settings.shadow, settings.signals, settings.slo,
                                       counters=None if shared is None else shared.counters,
                                       fleet=None if shared is None else shared.slo,  # None: all off
                                       reference=reference_source(settings, resolver))
    if settings.tracing.enabled:
        from gearshift.tracing import build_tracer

        gw.tracer = build_tracer(settings.tracing, [d for t in tiers for d in t])  # tracing: span per record
    return gw

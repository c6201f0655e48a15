"""The closed loop inside one gateway: shadow routing, implicit signals and the SLO monitor, wired together.

An `extension.Extension`: the gateway calls `on_decision` once per finished request (from `gateway.chat.finish`);
it only does in-memory work and hands anything slow (the label store, upstream calls, webhooks) to background
tasks or threads, and it never raises. `build_closed_loop(view, ...)` takes `[shadow]`, `[signals]`, `[slo]` and
`[store]`, and sees the gateway only through `extension.GatewayView`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gearshift.closed_loop.fleet import FleetStore
from gearshift.closed_loop.judge_pairwise import PairwiseJudge
from gearshift.closed_loop.loop_settings import JudgeSettings, ShadowSettings, SignalSettings, SLOSettings
from gearshift.closed_loop.monitor import GatewayMonitor
from gearshift.closed_loop.shadow import FleetCounter, FleetSampler, ShadowRunner
from gearshift.closed_loop.signals import ImplicitSignals
from gearshift.errors import ConfigError
from gearshift.providers.attempts import RetryPolicy
from gearshift.providers.base import ChatProvider, Deployment
from gearshift.providers.registry import DeploymentSettings, build_providers
from gearshift.providers.reliability import FailoverExecutor
from gearshift.records.redaction import FULL, Concealment
from gearshift.records.usage import cost_usd
from gearshift.store.factory import open_label_store, settings_url, store_kind, store_options
from gearshift.store.labels import LabelStore, SignalEvent
from gearshift.tracing.metrics import ShadowMetrics

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gearshift.extension import GatewayView, KeyCheck, Served
    from gearshift.routers.reference import ScoreReference
    from gearshift.store.settings import StoreSettings

log = logging.getLogger(__name__)


class ClosedLoop:
    """Everything the gateway feeds after answering. Parts that are off are None."""

    def __init__(self, store: LabelStore, *, shadow: ShadowRunner | None = None,
                 signals: ImplicitSignals | None = None, monitor: GatewayMonitor | None = None,
                 owned_providers: Sequence[ChatProvider] = (), memory: int = 50_000,
                 keys: KeyCheck | None = None, concealment: Concealment = FULL) -> None:
        self.store = store
        self.concealment = concealment  # `[store] text`: also how feedback comments are kept
        self.keys = keys  # the gateway's key checker, for the feedback and triage endpoints
        self.shadow = shadow
        self.signals = signals
        self.monitor = monitor
        self.owned_providers = list(owned_providers)
        self.memory = memory
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: set[asyncio.Future[Any]] = set()
        self.signal_counts: dict[str, int] = {}
        self.closers: list[Callable[[], None]] = []  # what the loop opened beside its store (a fleet SLO pool)

    def start(self) -> None:
        if self.shadow is not None:
            self.shadow.start()
        if self.monitor is not None:
            self.monitor.start()

    def routes(self) -> list[BaseRoute]:
        """/v1/feedback and /v1/triage (closed_loop/feedback.py); none without the gateway's key checker."""
        from gearshift.closed_loop.feedback import routes

        return [] if self.keys is None else list(routes(self, self.keys))

    def on_decision(self, record: Mapping[str, Any], served: Served) -> None:
        """Feed one finished decision (a `DecisionRecord.to_row()` dict). Never raises, never blocks."""
        messages, conversation_header = served.messages, served.conv_header
        payload, prompt, answer = served.payload, served.prompt, served.answer
        try:
            rid = str(record["request_id"])
            with self._lock:
                self._recent[rid] = {"request_id": rid, "time": record.get("time"), "tier": record.get("tier"),
                                     "segment": record.get("segment"), "status": record.get("status"),
                                     "api_key_id": record.get("api_key_id")}
                while len(self._recent) > self.memory:
                    self._recent.popitem(last=False)
            if self.monitor is not None:
                self.monitor.observe(record)
            if self.signals is not None:
                events = self.signals.observe(record, messages, conversation_header, answer, served.answer_tools,
                                              next_turn=served.next_turn_key())
                if events:
                    self.write_signals(events)
            if self.shadow is not None and payload is not None:
                self.shadow.submit(record, payload, prompt, answer)
        except Exception:
            log.exception("closed loop could not take decision %s", record.get("request_id"))

    def note_signals(self, events: Sequence[SignalEvent]) -> None:
        """Bad answers among `events` count against the live drift reading (the monitor's `observe_bad`)."""
        if self.monitor is None:
            return
        from dataclasses import asdict

        from gearshift.learning.signal_model import is_bad

        for e in events:
            if is_bad(asdict(e)):
                self.monitor.observe_bad(e.request_id, e.time)

    def write_signals(self, events: Sequence[SignalEvent]) -> None:
        """Store signal events from a worker thread; the caller does not wait."""
        self.note_signals(events)
        for e in events:
            self.signal_counts[e.signal] = self.signal_counts.get(e.signal, 0) + 1
        fut = asyncio.get_running_loop().run_in_executor(None, self.store.add_signals, list(events))
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)

    async def find_decision(self, request_id: str) -> dict[str, Any] | None:
        """A recent decision from memory, else from the decisions table."""
        with self._lock:
            hit = self._recent.get(request_id)
        if hit is not None:
            return dict(hit)
        return await asyncio.to_thread(self.store.decision, request_id)

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Wait for pending signal writes and queued shadow jobs (tests, shutdown)."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout_s)
        if self.shadow is not None:
            await self.shadow.drain(timeout_s)

    async def aclose(self) -> None:
        try:
            await self.flush(2.0)
            if self.shadow is not None:
                await self.shadow.aclose()
            if self.monitor is not None:
                await self.monitor.aclose()
            for p in self.owned_providers:
                await p.aclose()
        finally:
            for close in self.closers:
                close()
            self.store.close()


def _judge_target(gw: GatewayView, js: JudgeSettings) -> tuple[list[Deployment], dict[str, tuple[float, float]]]:
    """The judge's deployments and their prices, from `[shadow.judge]`."""
    if js.endpoint is not None:
        ds = DeploymentSettings.model_validate(js.endpoint)
        return [ds.resolve()], {ds.display_name: (ds.input_price_per_m, ds.output_price_per_m)}
    if js.deployment is not None:
        deps = [d for t in gw.tiers for d in t if d.name == js.deployment]
        if not deps:
            raise ConfigError(f"shadow.judge.deployment {js.deployment!r} is not a configured deployment")
        return deps, {}
    tier = js.tier or gw.tier_names[-1]
    if tier not in gw.tier_names:
        raise ConfigError(f"shadow.judge.tier {tier!r} is not a configured tier ({', '.join(gw.tier_names)})")
    return list(gw.tiers[gw.tier_names.index(tier)]), {}


def _build_shadow(gw: GatewayView, settings: ShadowSettings, store: LabelStore, concealment: Concealment,
                  counters: FleetCounter | None) -> tuple[ShadowRunner, list[ChatProvider]]:
    for name in settings.tiers or []:
        if name not in gw.tier_names:
            raise ConfigError(f"shadow.tiers: {name!r} is not a configured tier ({', '.join(gw.tier_names)})")
    judge_deps, judge_prices = _judge_target(gw, settings.judge)
    providers = dict(gw.providers)
    owned: list[ChatProvider] = []
    for dep in judge_deps:
        if dep.provider not in providers:  # an endpoint of a kind no tier uses: built here, closed with the loop
            providers[dep.provider] = build_providers([dep.provider])[dep.provider]
            owned.append(providers[dep.provider])
    executor = FailoverExecutor(providers, RetryPolicy(max_retries=0))
    prices = {name: (d.input_price_per_m, d.output_price_per_m) for name, d in gw.deployment_settings.items()}
    prices.update(judge_prices)
    timeout = settings.timeout_s

    async def judge_call(request: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
        res = await executor.complete(judge_deps, request, deadline_s=timeout)
        usage = res.result.body.get("usage") or {}
        in_p, out_p = prices.get(res.deployment.name, (0.0, 0.0))
        return res.result.body, cost_usd(int(usage.get("prompt_tokens") or 0),
                                         int(usage.get("completion_tokens") or 0), in_p, out_p)

    js = settings.judge
    judge = PairwiseJudge(judge_call, model=judge_deps[0].model, mode=js.mode, epsilon=js.epsilon,
                          max_answer_chars=js.max_answer_chars, max_tokens=js.max_tokens)
    runner = ShadowRunner(settings, tier_names=gw.tier_names, tiers=gw.tiers, executor=executor, judge=judge,
                          store=store, metrics=ShadowMetrics(gw.registry), prices=prices,
                          request_for_tier=gw.upstream_request, concealment=concealment,
                          fleet=FleetSampler(counters, settings.every_n)
                          if counters is not None and settings.every_n else None)
    return runner, owned


def label_store_url(gw: GatewayView, store_settings: StoreSettings) -> str:
    """Where the closed-loop tables live: beside the gateway's decisions (same SQLite file or PostgreSQL
    database), else `[store]`; an injected store without a location gets an in-memory SQLite."""
    url = getattr(gw.store, "url", None)
    if isinstance(url, str):
        return url
    path = getattr(gw.store, "path", None)
    if isinstance(path, str):
        return f"sqlite:///{path}"
    if gw.store is None and store_settings.url:
        return settings_url(store_settings)
    return "sqlite://"


def build_closed_loop(gw: GatewayView, store_settings: StoreSettings, shadow: ShadowSettings | None = None,
                      signals: SignalSettings | None = None, slo: SLOSettings | None = None, *,
                      counters: FleetCounter | None = None, fleet: FleetStore | None = None,
                      reference: Callable[[], ScoreReference | None] | None = None) -> ClosedLoop | None:
    """The closed loop for a gateway from its sections; None when all parts are off. `counters`: the fleet's
    shared counters (`[redis] url`), for `[shadow] every_n` across gateways; `fleet`: its shared SLO windows
    and alert claims (`[slo] fleet`; without Redis, a PostgreSQL store holds them); `reference`: the serving
    router's score reference, for `[slo.drift]`."""
    sh, sg, so = shadow or ShadowSettings(), signals or SignalSettings(), slo or SLOSettings()
    if not (sh.enabled or sg.enabled or so.enabled):
        return None
    url = label_store_url(gw, store_settings)
    store = open_label_store(url, **store_options(store_settings, url))
    try:
        how = store_settings.concealment()
        runner, owned = _build_shadow(gw, sh, store, how, counters) if sh.enabled else (None, [])
        owned_fleet = None
        if so.enabled and so.fleet and fleet is None and store_kind(url) == "postgresql":  # no Redis: the database
            from gearshift.store.postgres_slo import PostgresSLOStore

            fleet = owned_fleet = PostgresSLOStore(url, **store_options(store_settings, url))
        monitor = GatewayMonitor(so, gw.tier_names, gw.registry, fleet=fleet,
                                 reference=reference) if so.enabled else None
    except Exception:
        store.close()
        raise
    if runner is not None and monitor is not None:
        runner.on_judged = monitor.observe_judgement  # shadow judgements feed the quality-loss SLI
    tracker = ImplicitSignals(sg.memory, sg.regeneration_window_s, edit_window_s=sg.edit_window_s,
                              edit_min_similarity=sg.edit_min_similarity, handoff_tools=sg.handoff_tools,
                              handoff_phrases=sg.handoff_phrases) if sg.enabled else None
    loop = ClosedLoop(store, shadow=runner, signals=tracker, monitor=monitor, owned_providers=owned,
                      memory=sg.memory, keys=gw.keys, concealment=how)
    if owned_fleet is not None:
        loop.closers.append(owned_fleet.close)
    return loop


"""The live SLO monitor: gateway decisions feed `closed_loop.sli.SLIMonitor`, checked on a timer.

`observe` is a deque append on the request path; `observe_judgement` takes each shadow judgement (the
quality-loss SLI); `check` runs on the event loop every `check_interval_s` (so it never races `observe`),
and sinks that block (the webhook) are handed to a worker thread, so a slow alert endpoint delays neither
requests nor the next check. With a fleet store (`[redis] url`, `[slo] fleet`) the windows are the fleet's
(`closed_loop.fleet`) and an alert pages only from the gateway that claims it; while Redis is out each
gateway falls back to its own windows. Every check publishes the SLIs per segment as gauges
(`gearshift_slo_sli`, `gearshift_slo_sli_samples`) and as `snapshot` for the dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from gearshift.closed_loop.alerts import Alert, AlertSink, LogSink, PrometheusSink, WebhookSink
from gearshift.closed_loop.fleet import FleetStore, FleetWindows
from gearshift.closed_loop.loop_settings import SLOSettings
from gearshift.closed_loop.signals import segment_labels
from gearshift.closed_loop.sli import (
    ALL,
    Band,
    DecisionEvent,
    QualityEvent,
    SegmentSLO,
    SLIConfig,
    SLIMonitor,
    Tally,
    count_alerts,
)
from gearshift.records.failopen import FailOpenLog
from gearshift.tracing.metrics import SLIMetrics

if TYPE_CHECKING:
    from gearshift.closed_loop.drift_watch import DriftWatch
    from gearshift.routers.reference import ScoreReference

log = logging.getLogger(__name__)


class ThreadedSink:
    """Delivers to a blocking sink from one worker thread, in order, without making the caller wait."""

    def __init__(self, inner: AlertSink, pool: ThreadPoolExecutor) -> None:
        self.inner = inner
        self.pool = pool

    def emit(self, alerts: Sequence[Alert]) -> None:
        try:
            self.pool.submit(self.inner.emit, list(alerts))
        except RuntimeError:  # pool already shut down
            log.warning("alert sink closed; %d alert(s) not delivered", len(alerts))


def _opt_band(v: Sequence[float] | None) -> Band | None:
    return None if v is None else Band(*v)


def sli_config(settings: SLOSettings, n_tiers: int) -> SLIConfig:
    segments = {}
    for key in settings.segment_bands:
        b = settings.bands_of(key)
        if b is not None:
            segments[key] = SegmentSLO(_opt_band(b.strong_share), _opt_band(b.escalation_rate),
                                       _opt_band(b.quality_loss))
    return SLIConfig(
        window_s=settings.window_s, n_tiers=n_tiers, strong_share=Band(*settings.strong_share),
        escalation_rate=Band(*settings.escalation_rate), quality_loss=Band(*settings.quality_loss),
        segments=segments, min_events=settings.min_events, min_judged=settings.min_judged,
        quality_window_s=settings.quality_window_s, collapse_entropy=settings.collapse_entropy,
        segment_names=tuple(settings.segments) if settings.segments is not None else None,
    )


#: SLI name -> (hits field, samples field) in a `Tally`, and which tally holds it.
_SLIS = {"strong_share": ("strong", "n", "d"), "escalation_rate": ("esc", "n", "d"),
         "quality_loss": ("loss", "judged", "q")}


def sli_rows(decisions: Tally, quality: Tally, config: SLIConfig) -> list[dict[str, Any]]:
    """Per segment ("*" first): each SLI's value, samples, band and whether it is out of band (with enough
    samples to alert), as the dashboard and the gauges show them."""
    rows = []
    for seg in sorted(set(decisions) | set(quality), key=lambda k: (k != ALL, k)):
        row: dict[str, Any] = {"segment": seg}
        for name, (hits, n_field, which) in _SLIS.items():
            c = (decisions if which == "d" else quality).get(seg, {})
            n = c.get(n_field, 0)
            band = config.band(name, seg)
            value = c.get(hits, 0) / n if n else None
            enough = n >= (config.min_events if which == "d" else config.min_judged)
            row[name] = {"value": value, "n": n, "band": [band.low, band.high],
                         "out": bool(enough and value is not None and band.direction(value) is not None)}
        rows.append(row)
    return rows


class GatewayMonitor:
    """SLIs over the gateway's decisions; `alerts` keeps every alert raised (newest last, bounded)."""

    def __init__(self, settings: SLOSettings, tier_names: Sequence[str], registry: CollectorRegistry,
                 extra_sinks: Sequence[AlertSink] = (), fleet: FleetStore | None = None,
                 reference: Callable[[], ScoreReference | None] | None = None) -> None:
        self.settings = settings
        self.tier_names = list(tier_names)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gearshift-alerts")
        sinks: list[AlertSink] = [PrometheusSink(registry), _Keep(self)]
        if settings.log:
            sinks.append(LogSink())
        if settings.webhook_url is not None:
            self.webhook: WebhookSink | None = WebhookSink(settings.webhook_url, settings.webhook_timeout_s)
            sinks.append(ThreadedSink(self.webhook, self._pool))
        else:
            self.webhook = None
        sinks.extend(extra_sinks)
        config = sli_config(settings, len(self.tier_names))
        self.sli = SLIMonitor(config, sinks, cooldown_s=settings.cooldown_s)
        self.fleet = FleetWindows(fleet, config) if fleet is not None and settings.fleet else None
        self.drift: DriftWatch | None = None  # `[slo.drift]`: against the router's reference (drift_watch.py)
        if settings.drift.enabled:
            from gearshift.closed_loop.drift_watch import DriftWatch
            from gearshift.tracing.metrics import DriftMetrics

            self.drift = DriftWatch(settings.drift, self.tier_names, reference or (lambda: None), sinks,
                                    DriftMetrics(registry))
        self.alerts: list[Alert] = []
        self.fleet_alerts: list[dict[str, Any]] | None = None  # the fleet's, newest first, as of the last check
        self.snapshot: dict[str, Any] = {"scope": "fleet" if self.fleet else "process", "time": None, "rows": []}
        self.observed = 0
        self.judged = 0
        self._errors = FailOpenLog()
        self._metrics = SLIMetrics(registry)
        self._task: asyncio.Task[None] | None = None

    def observe(self, record: Mapping[str, Any]) -> None:
        """Feed one finished decision; errors and concrete-model requests are not routing decisions."""
        tier = record.get("tier")
        if tier not in self.tier_names or record.get("route") == "concrete" or record.get("status") == "error":
            return
        self.observed += 1
        if self.drift is not None:
            self.drift.observe(record)
        event = DecisionEvent(timestamp=float(record["time"]), tier_index=self.tier_names.index(str(tier)),
                              segments=segment_labels(record.get("segment")),
                              escalated=bool(record.get("escalated")), p_strong=record.get("score"))
        self.sli.observe(event)
        if self.fleet is not None:
            self.fleet.observe(event)

    def observe_judgement(self, record: Mapping[str, Any], min_tier: str | None, now: float | None = None) -> None:
        """Feed one shadow judgement of a served decision: a quality loss when the judge's cheapest good-enough
        tier (`min_tier`) is above the tier that answered."""
        tier = record.get("tier")
        if min_tier not in self.tier_names or tier not in self.tier_names or record.get("route") == "concrete":
            return  # unjudgeable, or a model the client named (not a routing decision)
        self.judged += 1
        event = QualityEvent(timestamp=time.time() if now is None else now,
                             loss=self.tier_names.index(str(min_tier)) > self.tier_names.index(str(tier)),
                             segments=segment_labels(record.get("segment")))
        if event.loss and record.get("request_id") is not None:  # a stronger tier was needed: drift's quality
            self.observe_bad(str(record["request_id"]), float(record.get("time") or event.timestamp))
        self.sli.observe_quality(event)
        if self.fleet is not None:
            self.fleet.observe_quality(event)

    def check(self, now: float | None = None) -> list[Alert]:
        """This process's windows only (the fleet's are checked by `acheck`), and the drift watch."""
        t = time.time() if now is None else now
        try:
            fresh = self.sli.check(t)
            self._publish(*self.sli.tallies, "process", t)
        except Exception:  # monitoring must not take the gateway down
            log.exception("SLO check failed")
            fresh = []
        return fresh + self.check_drift(t)

    def check_drift(self, now: float) -> list[Alert]:
        """This process's decisions against the router's reference (drift_watch.py; per process, like p_strong
        drift in the fleet check)."""
        if self.drift is None:
            return []
        try:
            return self.drift.check(now)
        except Exception:
            log.exception("drift check failed")
            return []

    def observe_bad(self, request_id: str, when: float) -> None:
        """A served answer known to be bad (a bad-answer signal, or a judgement that needed a stronger tier)."""
        if self.drift is not None:
            self.drift.observe_bad(request_id, when)

    async def acheck(self, now: float | None = None) -> list[Alert]:
        """The timer's check: over the fleet when there is one (falling back to this process's windows while
        the store is out), else `check`."""
        if self.fleet is None:
            return self.check(now)
        t = time.time() if now is None else now
        try:
            return await self._fleet_check(self.fleet, t)
        except Exception as exc:  # Redis or PostgreSQL out (or anything else): this process's windows meanwhile
            self._errors.failed("slo", exc)
            return self.check(t)

    async def _fleet_check(self, fleet: FleetWindows, now: float) -> list[Alert]:
        cfg = self.sli.config
        await fleet.flush()
        decisions, quality = await fleet.window(now)
        alerts = count_alerts(decisions, quality, now - cfg.window_s, now, cfg, now - cfg.quality_window_s)
        ttl = max(self.settings.cooldown_s, 3 * self.settings.check_interval_s, 1.0)
        mine = await self._claimed(fleet, self.sli.fresh(alerts, now), ttl)
        self.sli.emit(mine)
        mine += await self._fleet_drift(fleet, now, ttl)
        await fleet.store.log_alerts([a.to_json() for a in mine])
        self.fleet_alerts = await fleet.store.recent_alerts()
        self._errors.recovered("slo")
        self._publish(decisions, quality, "fleet", now)
        return mine

    async def _fleet_drift(self, fleet: FleetWindows, now: float, ttl: float) -> list[Alert]:
        """This process's drift reading, paged only by the gateway that claims it: every process of a fleet sees
        a sample of the same traffic and reads the same drift at about the same time."""
        if self.drift is None:
            return []
        try:
            fresh = self.drift.check(now, emit=False)
        except Exception:
            log.exception("drift check failed")
            return []
        mine = await self._claimed(fleet, fresh, ttl, "drift-watch:")
        if mine:
            self.drift.emit(mine)
        return mine

    async def _claimed(self, fleet: FleetWindows, alerts: Sequence[Alert], ttl: float, scope: str = "") -> list[Alert]:
        """The alerts this gateway claimed for the fleet (only the claimant pages one)."""
        mine = []
        for a in alerts:
            try:
                won = await fleet.store.claim(f"{scope}{a.kind}|{a.segment}|{a.direction or ''}", ttl)
            except Exception as exc:  # cannot ask the fleet: page from here (twice beats never)
                self._errors.failed("slo", exc)
                won = True
            if won:
                mine.append(a)
        return mine

    def _publish(self, decisions: Tally, quality: Tally, scope: str, now: float) -> None:
        rows = sli_rows(decisions, quality, self.sli.config)
        self.snapshot = {"scope": scope, "time": now, "rows": rows}
        m = self._metrics
        m.value.clear()  # a segment gone from the window is gone from the gauges
        m.samples.clear()
        for row in rows:
            for name in _SLIS:
                got = row[name]
                if got["value"] is not None:
                    m.value.labels(sli=name, segment=row["segment"], scope=scope).set(got["value"])
                    m.samples.labels(sli=name, segment=row["segment"], scope=scope).set(got["n"])

    def recent_alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first: the fleet's (as of the last check) when there is a fleet, else this process's."""
        if self.fleet_alerts is not None:
            return self.fleet_alerts[:limit]
        return [a.to_json() for a in self.alerts[-limit:]][::-1]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="gearshift-slo-monitor")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.check_interval_s)
            await self.acheck()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.fleet is not None:  # the last counts of this process still belong to the fleet's windows
            with contextlib.suppress(Exception):
                await self.fleet.flush()
        await asyncio.to_thread(self._pool.shutdown, True)


class _Keep:
    def __init__(self, monitor: GatewayMonitor) -> None:
        self.monitor = monitor

    def emit(self, alerts: Sequence[Alert]) -> None:
        self.monitor.alerts.extend(alerts)
        del self.monitor.alerts[:-1000]

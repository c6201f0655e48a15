"""The live SLO monitor: gateway decisions feed `closed_loop.sli.SLIMonitor`, checked on a timer.

`observe` is a deque append on the request path; `check` runs on the event loop every
`check_interval_s` (so it never races `observe`), and sinks that block (the webhook) are handed to a
worker thread, so a slow alert endpoint delays neither requests nor the next check.
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
from gearshift.closed_loop.loop_settings import SLOSettings
from gearshift.closed_loop.signals import segment_labels
from gearshift.closed_loop.sli import Band, DecisionEvent, SLIConfig, SLIMonitor

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


def sli_config(settings: SLOSettings, n_tiers: int) -> SLIConfig:
    return SLIConfig(
        window_s=settings.window_s, n_tiers=n_tiers, strong_share=Band(*settings.strong_share),
        escalation_rate=Band(*settings.escalation_rate),
        segment_bands={k: Band(*v) for k, v in settings.segment_bands.items()},
        min_events=settings.min_events, collapse_entropy=settings.collapse_entropy,
        segment_names=tuple(settings.segments) if settings.segments is not None else None,
    )


class GatewayMonitor:
    """SLIs over the gateway's decisions; `alerts` keeps every alert raised (newest last, bounded)."""

    def __init__(self, settings: SLOSettings, tier_names: Sequence[str], registry: CollectorRegistry,
                 extra_sinks: Sequence[AlertSink] = (),
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
        self.sli = SLIMonitor(sli_config(settings, len(self.tier_names)), sinks)
        self.drift: DriftWatch | None = None  # `[slo.drift]`: against the router's reference (drift_watch.py)
        if settings.drift.enabled:
            from gearshift.closed_loop.drift_watch import DriftWatch
            from gearshift.tracing.metrics import DriftMetrics

            self.drift = DriftWatch(settings.drift, self.tier_names, reference or (lambda: None), sinks,
                                    DriftMetrics(registry))
        self.alerts: list[Alert] = []
        self.observed = 0
        self._task: asyncio.Task[None] | None = None

    def observe(self, record: Mapping[str, Any]) -> None:
        """Feed one finished decision; errors and concrete-model requests are not routing decisions."""
        tier = record.get("tier")
        if tier not in self.tier_names or record.get("route") == "concrete" or record.get("status") == "error":
            return
        self.observed += 1
        if self.drift is not None:
            self.drift.observe(record)
        self.sli.observe(DecisionEvent(timestamp=float(record["time"]), tier_index=self.tier_names.index(str(tier)),
                                       segments=segment_labels(record.get("segment")),
                                       escalated=bool(record.get("escalated")), p_strong=record.get("score")))

    def check(self, now: float | None = None) -> list[Alert]:
        at = time.time() if now is None else now
        try:
            out = self.sli.check(at)
        except Exception:  # monitoring must not take the gateway down
            log.exception("SLO check failed")
            out = []
        if self.drift is not None:
            try:
                out += self.drift.check(at)
            except Exception:
                log.exception("drift check failed")
        return out

    def observe_bad(self, request_id: str, when: float) -> None:
        """A served answer known to be bad (signal, feedback, or a shadow label that needed a stronger tier)."""
        if self.drift is not None:
            self.drift.observe_bad(request_id, when)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="gearshift-slo-monitor")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.check_interval_s)
            self.check()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self._pool.shutdown, True)


class _Keep:
    def __init__(self, monitor: GatewayMonitor) -> None:
        self.monitor = monitor

    def emit(self, alerts: Sequence[Alert]) -> None:
        self.monitor.alerts.extend(alerts)
        del self.monitor.alerts[:-1000]

"""The gateway's long-lived parts, built once per app from the settings (`gateway/build.py`).

Every part is typed: the policy that decides, the executor that calls upstream, the writer that records, and the
extensions (closed loop, tracing) that see each finished request through `extension.Extension`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from gearshift.gateway.auth import KeyChecker
from gearshift.gateway.routing import ModelResolver
from gearshift.gateway.settings import DeploymentSettings, GatewaySettings
from gearshift.policy.decide import Policy
from gearshift.providers.base import ChatProvider, Deployment
from gearshift.providers.reliability import FailoverExecutor
from gearshift.records.record import DecisionRecord
from gearshift.records.redaction import Transform
from gearshift.store.base import DecisionStore
from gearshift.store.writer import BackgroundWriter
from gearshift.tracing.metrics import GatewayMetrics

if TYPE_CHECKING:  # the optional parts: each imported only by what builds it (gateway/build.py)
    from prometheus_client import CollectorRegistry

    from gearshift.cascade.runner import CascadeRunner
    from gearshift.closed_loop.loop import ClosedLoop
    from gearshift.extension import Extension
    from gearshift.gateway.reload import RouterReloader
    from gearshift.policy.rules import GatewayRules
    from gearshift.routers.topics import TopicSegmenter
    from gearshift.store.redis_state import SharedState
    from gearshift.tracing.spans import RecordTracer

log = logging.getLogger(__name__)


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
    policy: Policy  # the one place tiers are chosen (policy/decide.py)
    writer: BackgroundWriter | None = None
    store: DecisionStore | None = None
    cascade: CascadeRunner | None = None  # `[cascade] enabled`
    closed_loop: ClosedLoop | None = None  # shadow, signals, SLO monitor: an extension
    shared: SharedState | None = None  # scale-out: Redis-backed state when `[redis] url` is set
    tracer: RecordTracer | None = None  # tracing: one span per record when `[tracing] enabled`: an extension
    topics: TopicSegmenter | None = None  # closed loop: `[segments] topics`
    reloader: RouterReloader | None = None  # learning: router hot reload (gateway/reload.py)
    # the record as stored ([store] text, keys scrubbed): what extensions (spans) see; the writer applies its own
    conceal: Transform | None = None
    embeddings: dict[str, Deployment] = field(default_factory=dict)  # `[[embeddings]]`: /v1/embeddings targets
    records_emitted: int = field(default=0)
    # shutdown has begun (SIGTERM, or the app's lifespan ending): new chat requests get a 503, and a request
    # cancelled from now on is recorded `cancelled_shutdown` rather than `client_disconnected`
    draining: bool = False
    started_at: float = field(default_factory=time.time)

    @property
    def tier_names(self) -> tuple[str, ...]:
        return self.settings.tier_names

    @property
    def rules(self) -> GatewayRules | None:
        """Routing rules when configured (`[[routes]]`, `[router.gate]`, `kind = "llm"`), else the fast path."""
        return self.policy.rules

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    @property
    def extensions(self) -> list[Extension]:
        """What `finish` tells about every finished request, in this order."""
        exts: list[Extension] = []
        if self.tracer is not None:
            exts.append(self.tracer)
        if self.closed_loop is not None:
            exts.append(self.closed_loop)
        return exts

    def upstream_request(self, payload: Mapping[str, Any], tier_index: int) -> dict[str, Any]:
        """What goes upstream: the client's request, with the tier's max_tokens cap applied."""
        body = dict(payload)
        cap = self.tier_cap(tier_index)
        for key in ("max_tokens", "max_completion_tokens"):
            if isinstance(body.get(key), int):
                body[key] = min(body[key], cap)
        if not isinstance(body.get("max_completion_tokens"), int):  # absent or null: max_tokens caps it
            body["max_tokens"] = min(int(body.get("max_tokens") or cap), cap)
        return body

    def output_cap(self, body: Mapping[str, Any]) -> int:
        """The most completion tokens per choice an `upstream_request` body allows."""
        caps = [v for k in ("max_tokens", "max_completion_tokens") if isinstance(v := body.get(k), int)]
        return min(caps)

    def tier_cap(self, tier_index: int) -> int:
        """The smallest `max_tokens` cap among the tier's deployments, else `[limits] max_tokens`."""
        return self._tier_caps[tier_index]

    @cached_property
    def _tier_caps(self) -> tuple[int, ...]:
        """Every tier's cap, computed on first use: the tiers are fixed for the gateway's life."""
        caps = []
        for tier in self.tiers:
            known = [c for d in tier if (c := self.deployment_settings[d.name].max_tokens) is not None]
            caps.append(min(known) if known else self.settings.limits.max_tokens)
        return tuple(caps)

    def emit(self, record: DecisionRecord | dict[str, Any]) -> None:
        """Hand the record (or its `to_row()` dict) to the background writer; never blocks or raises."""
        self.records_emitted += 1
        row = record.to_row() if isinstance(record, DecisionRecord) else record
        if self.writer is not None:
            self.writer.submit(row)

    async def aclose(self) -> None:
        if self.reloader is not None:  # first: no swap while the rest shuts down
            await self.reloader.aclose()
        for ext in self.extensions:  # before the providers: shadow workers still use them
            try:
                await ext.aclose()
            except Exception:
                log.exception("closing an extension failed")
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



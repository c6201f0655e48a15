"""SLO windows over the whole fleet: each gateway's decision and judgement counts go to shared time buckets.

`observe` (request path) only bumps an in-memory tally per bucket; `flush` (the monitor's timer) adds it to
the shared store in one round trip and `window` reads the fleet's sums back as the `sli.Tally` the band
rules take, so four gateways each seeing a quarter of the traffic check the same fleet-wide window, and a
segment that is under `min_events` / `min_judged` on every gateway alone can still alert. A window is
`BUCKETS` buckets of `window_s / BUCKETS` seconds (its edge moves by one bucket at a time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from gearshift.closed_loop.sli import (
    ALL,
    DecisionEvent,
    QualityEvent,
    SLIConfig,
    Tally,
    decision_fields,
    quality_fields,
)

BUCKETS = 30


class FleetStore(Protocol):
    """Shared counters and alert claims (`store.redis_slo.RedisSLOStore`)."""

    def bucket_key(self, series: str, bucket_s: float, index: int) -> str: ...

    async def add(self, counts: Mapping[str, Mapping[str, int]], ttl_s: Mapping[str, float]) -> None: ...

    async def totals(self, keys: Sequence[str]) -> dict[str, int]: ...

    async def claim(self, name: str, ttl_s: float) -> bool: ...

    async def log_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None: ...

    async def recent_alerts(self, limit: int = 50) -> list[dict[str, Any]]: ...


def _flat(fields: Mapping[str, int], segment: str, into: dict[str, int]) -> None:
    for name, by in fields.items():
        key = f"{segment}|{name}"
        into[key] = into.get(key, 0) + by


def unflatten(totals: Mapping[str, int]) -> Tally:
    """"<segment>|<field>" sums back to segment -> field -> count (field names hold no "|")."""
    out: Tally = {}
    for key, value in totals.items():
        segment, _, name = key.rpartition("|")
        if segment:
            out.setdefault(segment, {})[name] = value
    return out


class FleetWindows:
    """This process's share of the fleet's windows: counts waiting to be flushed, and the fleet's sums."""

    def __init__(self, store: FleetStore, config: SLIConfig) -> None:
        self.store = store
        self.config = config
        self.series = {"d": config.window_s / BUCKETS, "q": config.quality_window_s / BUCKETS}
        self._pending: dict[str, dict[str, int]] = {}
        self._ttl: dict[str, float] = {}

    def _slot(self, series: str, timestamp: float) -> dict[str, int]:
        bucket_s = self.series[series]
        key = self.store.bucket_key(series, bucket_s, math.floor(timestamp / bucket_s))
        if key not in self._pending:
            self._pending[key] = {}
            self._ttl[key] = bucket_s * (BUCKETS + 2)
        return self._pending[key]

    def _segments(self, segments: Mapping[str, str]) -> list[str]:
        return [ALL, *(f"{k}={v}" for k, v in segments.items() if self.config.wanted(k))]

    def observe(self, event: DecisionEvent) -> None:
        slot = self._slot("d", event.timestamp)
        fields = decision_fields(event.tier_index, event.escalated, self.config.n_tiers)
        for seg in self._segments(event.segments):
            _flat(fields, seg, slot)

    def observe_quality(self, event: QualityEvent) -> None:
        slot = self._slot("q", event.timestamp)
        for seg in self._segments(event.segments):
            _flat(quality_fields(event.loss), seg, slot)

    async def flush(self) -> None:
        """Add the pending counts to the fleet's; on failure they are dropped (never counted twice)."""
        pending, ttl = self._pending, self._ttl
        self._pending, self._ttl = {}, {}
        await self.store.add(pending, ttl)

    def _keys(self, series: str, now: float) -> list[str]:
        bucket_s = self.series[series]
        last = math.floor(now / bucket_s)
        return [self.store.bucket_key(series, bucket_s, i) for i in range(last - BUCKETS + 1, last + 1)]

    async def window(self, now: float) -> tuple[Tally, Tally]:
        """The fleet's (decision, judgement) counts over the windows ending at `now`."""
        return (unflatten(await self.store.totals(self._keys("d", now))),
                unflatten(await self.store.totals(self._keys("q", now))))

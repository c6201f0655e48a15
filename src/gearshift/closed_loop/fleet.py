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

from gearshift.closed_loop.sli import DecisionEvent, QualityEvent, SLIConfig, Tally, tally

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
    """This process's share of the fleet's windows: events waiting to be flushed, and the fleet's sums.

    `observe` is a list append (the request path); the counting per bucket and segment happens in `flush`.
    """

    def __init__(self, store: FleetStore, config: SLIConfig) -> None:
        self.store = store
        self.config = config
        self.series = {"d": config.window_s / BUCKETS, "q": config.quality_window_s / BUCKETS}
        self._pending: list[DecisionEvent | QualityEvent] = []

    def observe(self, event: DecisionEvent) -> None:
        self._pending.append(event)

    def observe_quality(self, event: QualityEvent) -> None:
        self._pending.append(event)

    def pending_counts(self, events: Sequence[DecisionEvent | QualityEvent]
                       ) -> tuple[dict[str, dict[str, int]], dict[str, float]]:
        """(bucket key -> "segment|field" -> count, bucket key -> ttl) for `events`."""
        buckets: dict[str, list[DecisionEvent | QualityEvent]] = {}
        ttl: dict[str, float] = {}
        for e in events:
            series = "q" if isinstance(e, QualityEvent) else "d"
            bucket_s = self.series[series]
            key = self.store.bucket_key(series, bucket_s, math.floor(e.timestamp / bucket_s))
            if key not in buckets:
                buckets[key], ttl[key] = [], bucket_s * (BUCKETS + 2)
            buckets[key].append(e)
        counts: dict[str, dict[str, int]] = {}
        for key, group in buckets.items():
            flat = counts[key] = {}
            for seg, fields in tally(group, self.config).items():
                _flat(fields, seg, flat)
        return counts, ttl

    async def flush(self) -> None:
        """Add the pending events' counts to the fleet's; on failure they are dropped (never counted twice)."""
        pending, self._pending = self._pending, []
        if pending:
            await self.store.add(*self.pending_counts(pending))

    def _keys(self, series: str, now: float) -> list[str]:
        bucket_s = self.series[series]
        last = math.floor(now / bucket_s)
        return [self.store.bucket_key(series, bucket_s, i) for i in range(last - BUCKETS + 1, last + 1)]

    async def window(self, now: float) -> tuple[Tally, Tally]:
        """The fleet's (decision, judgement) counts over the windows ending at `now`."""
        return (unflatten(await self.store.totals(self._keys("d", now))),
                unflatten(await self.store.totals(self._keys("q", now))))

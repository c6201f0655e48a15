"""Fleet-wide SLO windows in Redis: every gateway adds its counts to shared time buckets, reads the sums,
and claims an alert before paging, so a fleet pages once.

A bucket is a hash `PREFIXslo:<series>:<bucket seconds>:<bucket index>` whose fields are
"<segment>|<field>" counts (HINCRBY, so concurrent gateways add, never overwrite); it expires once it has
left every window. Reading a window is one pipelined HGETALL per bucket, summed here: the cost of a check
grows with the number of buckets and segments, not with the traffic. An alert is claimed with
`SET PREFIXslo:alert:<kind>|<segment>|<direction> NX EX <ttl>`: only the gateway that sets it pages; the
claimed alerts are kept, newest first, in the list `PREFIXslo:alerts` for every gateway's dashboard.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

_KEEP_ALERTS = 200


class RedisSLOStore:
    """The fleet's SLO counts and alert claims under one key prefix (`closed_loop.fleet.FleetStore`)."""

    def __init__(self, client: Redis, prefix: str = "gearshift:") -> None:
        self.client = client
        self.prefix = prefix

    def bucket_key(self, series: str, bucket_s: float, index: int) -> str:
        return f"{self.prefix}slo:{series}:{bucket_s:g}:{index}"

    async def add(self, counts: Mapping[str, Mapping[str, int]], ttl_s: Mapping[str, float]) -> None:
        """Add `counts` (bucket key -> field -> count) in one round trip; each key expires after its ttl."""
        if not counts:
            return
        pipe = self.client.pipeline(transaction=False)
        for key, fields in counts.items():
            for name, by in fields.items():
                pipe.hincrby(key, name, by)
            pipe.expire(key, max(1, math.ceil(ttl_s[key])))
        await pipe.execute()

    async def totals(self, keys: Sequence[str]) -> dict[str, int]:
        """Field -> the sum over the bucket keys (missing keys count zero)."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        out: dict[str, int] = {}
        for got in await pipe.execute():
            for name, value in (got or {}).items():
                field = name.decode() if isinstance(name, bytes) else str(name)
                out[field] = out.get(field, 0) + int(value)
        return out

    async def claim(self, name: str, ttl_s: float) -> bool:
        """True for the one caller that claims `name` while the claim lives."""
        return bool(await self.client.set(f"{self.prefix}slo:alert:{name}", "1", nx=True,
                                          px=max(1, int(ttl_s * 1000))))

    async def log_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        if not alerts:
            return
        key = f"{self.prefix}slo:alerts"
        pipe = self.client.pipeline(transaction=False)
        for a in alerts:
            pipe.lpush(key, json.dumps(a))
        pipe.ltrim(key, 0, _KEEP_ALERTS - 1)
        await pipe.execute()

    async def recent_alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        """The fleet's alerts, newest first."""
        raw = await self.client.lrange(f"{self.prefix}slo:alerts", 0, limit - 1)
        return [json.loads(r) for r in raw]

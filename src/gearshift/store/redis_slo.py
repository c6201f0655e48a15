"""Fleet-wide SLO windows in Redis: every gateway adds its counts to shared time buckets, reads the sums,
and claims an alert before paging, so a fleet pages once.

A bucket is a hash `PREFIXslo:<series>:<bucket seconds>:<bucket index>` whose fields are
"<segment>|<field>" counts (HINCRBY in a script, so concurrent gateways add, never overwrite); it expires
once it has left every window. Reading a window is one script summing the buckets on the server, so a
check's cost grows with the number of segment values, not with the traffic (on Redis Cluster a window's
buckets would need one hash slot; gearshift uses a single Redis). An alert is claimed with
`SET PREFIXslo:alert:<kind>|<segment>|<direction> NX PX <ttl>`: only the gateway that sets it pages; the
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

# add counts to one bucket and (re)set its expiry: ARGV = ttl seconds, then field, count pairs
_ADD = """
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

# the sum over the buckets, field by field, on the server: a window's read returns one count per field,
# not one per field per bucket
_SUM = """
local acc, order = {}, {}
for _, key in ipairs(KEYS) do
  local h = redis.call('HGETALL', key)
  for i = 1, #h, 2 do
    local f, v = h[i], tonumber(h[i + 1])
    if acc[f] == nil then
      acc[f] = v
      order[#order + 1] = f
    else
      acc[f] = acc[f] + v
    end
  end
end
local out = {}
for _, f in ipairs(order) do
  out[#out + 1] = f
  out[#out + 1] = string.format('%d', acc[f])
end
return out
"""


class RedisSLOStore:
    """The fleet's SLO counts and alert claims under one key prefix (`closed_loop.fleet.FleetStore`)."""

    def __init__(self, client: Redis, prefix: str = "gearshift:") -> None:
        self.client = client
        self.prefix = prefix
        self._add = client.register_script(_ADD)
        self._sum = client.register_script(_SUM)

    def bucket_key(self, series: str, bucket_s: float, index: int) -> str:
        return f"{self.prefix}slo:{series}:{bucket_s:g}:{index}"

    async def add(self, counts: Mapping[str, Mapping[str, int]], ttl_s: Mapping[str, float]) -> None:
        """Add `counts` (bucket key -> field -> count), one script call per bucket in one round trip; each
        key expires after its ttl."""
        if not counts:
            return
        pipe = self.client.pipeline(transaction=False)
        for key, fields in counts.items():
            args: list[str | int] = [max(1, math.ceil(ttl_s[key]))]
            for name, by in fields.items():
                args += [name, by]
            await self._add(keys=[key], args=args, client=pipe)
        await pipe.execute()

    async def totals(self, keys: Sequence[str]) -> dict[str, int]:
        """Field -> the sum over the bucket keys (missing keys count zero), summed on the server."""
        flat = await self._sum(keys=list(keys), args=[])
        out: dict[str, int] = {}
        for i in range(0, len(flat), 2):
            name = flat[i]
            out[name.decode() if isinstance(name, bytes) else str(name)] = int(flat[i + 1])
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

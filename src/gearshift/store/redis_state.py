"""State shared live between gateway processes, in Redis: circuit breakers, rate limits, budgets, counters,
conversation tier pins and strong-tier share windows.

Each class implements the async protocol whose in-memory version a single gateway uses by default
(`providers.breaker.BreakerStore`, `gateway.ratelimit.RateLimiter`, `gateway.budgets.BudgetLedger`,
`policy.conversations.ConversationStore`, `policy.share_cap.ShareWindowStore`), so with `[redis] url` set,
a deployment that one gateway sees failing is skipped by all of them, a key's rate, daily budget and
strong-tier share are spent once across the fleet, and a conversation pinned to a tier by one gateway
stays there on the others. Every key starts with a per-deployment `prefix`.

Atomicity: breaker transitions are Python functions, applied under a short per-key Redis lock so each
runs exactly once on the state the other gateways left; the token bucket and budget spend are Lua scripts, so each
runs as one step on the server. The token bucket reads the server's clock (TIME), so gateways on hosts
with skewed clocks still share one bucket. Breakers read the caller's clock: give the registry `time.time`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gearshift.errors import ProviderError
from gearshift.providers.breaker import BreakerSnapshot, BreakerState, BreakerStore, InMemoryBreakerStore
from gearshift.records.failopen import FailOpenLog, RedisGate, outage_errors
from gearshift.store.redis_slo import RedisSLOStore

if TYPE_CHECKING:
    from redis.asyncio import Redis

_DAY_S = 86_400.0
_BREAKER_TTL_S = 86_400  # an idle deployment's breaker state expires after a day
_SHARE_WINDOW_TTL_S = 7 * 86_400  # a key idle for a week starts with an empty strong-share window

_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(data[1]) or cap
local stamp = tonumber(data[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - stamp) * rate)
local ok = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate * 1000) + 1000)
return {ok, tostring(wait)}
"""

_SPEND = """
local spent = tonumber(redis.call('INCRBYFLOAT', KEYS[1], ARGV[1]))
if spent < 0 then
  redis.call('SET', KEYS[1], '0')
  spent = 0
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return tostring(spent)
"""

# budget reservation: check the key's spend plus the worst case against its limit and book it, one step
_RESERVE = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if spent + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end
redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# strong-share window: check the key's cap and record the outcome as one step, so concurrent gateways
# never both take the last strong slot. The list holds '1' (strong) / '0', newest first.
_SHARE_ADMIT = """
local window = tonumber(ARGV[3])
local strong = 0
for _, v in ipairs(redis.call('LRANGE', KEYS[1], 0, window - 1)) do
  if v == '1' then strong = strong + 1 end
end
local at_cap = 0
if strong + 1 > tonumber(ARGV[2]) then at_cap = 1 end
local served = '0'
if ARGV[1] == '1' and at_cap == 0 then served = '1' end
redis.call('LPUSH', KEYS[1], served)
redis.call('LTRIM', KEYS[1], 0, window - 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return at_cap
"""

_WRITE_AND_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


def connect(url: str, *, timeout_s: float = 0.5, gate: RedisGate | None = None) -> Redis:
    """An asyncio client; it connects lazily, on the event loop of its first command.

    `timeout_s` bounds both connecting and each reply: a request makes several shared-state calls, so a
    hung Redis (the socket accepts, nothing answers) must cost a fraction of a second per call before the
    caller falls back (see `FallbackBreakerStore`, `KeyChecker`), not a TCP timeout. Redis answers these
    calls in well under a millisecond on a healthy network, so half a second only trips on a real outage.
    The client does not retry (redis-py's default for `from_url`): a retry would multiply that cost.
    With a `gate`, every command goes through it: after an outage error the client skips Redis for the
    gate's `retry_s` (raising `RedisOutError`), so the later calls of a hung Redis cost nothing.
    """
    from redis.asyncio import Redis

    client: Redis = Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                   health_check_interval=30)
    if gate is not None:  # the one seam: commands and scripts (EVALSHA) all go through execute_command
        client.execute_command = gate.guard(client.execute_command)  # type: ignore[method-assign]
    return client


def _encode(snap: BreakerSnapshot) -> str:
    return json.dumps({"state": snap.state.value, "failures": snap.consecutive_failures, "opened_at": snap.opened_at,
                       "probe": snap.probe_started_at, "outcomes": [[t, ok] for t, ok in snap.outcomes]})


def _decode(raw: bytes | str | None) -> BreakerSnapshot:
    if raw is None:
        return BreakerSnapshot()
    d = json.loads(raw)
    return BreakerSnapshot(state=BreakerState(d["state"]), consecutive_failures=int(d["failures"]),
                           opened_at=d["opened_at"], probe_started_at=d["probe"],
                           outcomes=tuple((float(t), bool(ok)) for t, ok in d["outcomes"]))


class RedisBreakerStore:
    """`BreakerStore` shared by all gateways with the same prefix; `update` is atomic per key.

    `fn` runs exactly once per update (CircuitBreaker's steps report through closures, so an optimistic
    WATCH/MULTI retry that re-ran `fn` could hand the half-open probe to two gateways): a short per-key
    lock (SET NX PX, released by a compare-and-delete script that also writes the new state) serialises
    the read-modify-write across gateways.
    """

    def __init__(self, client: Redis, prefix: str = "gearshift:", *, lock_ttl_ms: int = 2000,
                 lock_timeout_s: float = 5.0) -> None:
        self.client = client
        self.prefix = prefix
        self.lock_ttl_ms = lock_ttl_ms
        self.lock_timeout_s = lock_timeout_s
        self.waits = 0  # times an update found the key locked by another gateway (contention gauge)
        self._commit = client.register_script(_WRITE_AND_UNLOCK)

    def _key(self, key: str) -> str:
        return f"{self.prefix}breaker:{key}"

    async def get(self, key: str) -> BreakerSnapshot:
        return _decode(await self.client.get(self._key(key)))

    async def update(self, key: str, fn: Callable[[BreakerSnapshot], BreakerSnapshot]) -> BreakerSnapshot:
        rkey, lock = self._key(key), self._key(key) + ":lock"
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.001
        while not await self.client.set(lock, token, nx=True, px=self.lock_ttl_ms):
            self.waits += 1
            if time.monotonic() > deadline:
                raise ProviderError(f"breaker state for {key!r} stayed locked in Redis for {self.lock_timeout_s}s",
                                    retryable=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)
        try:
            new = fn(_decode(await self.client.get(rkey)))
        except BaseException:
            await self._commit(keys=[lock, rkey], args=[token, "", 0])
            raise
        await self._commit(keys=[lock, rkey], args=[token, _encode(new), _BREAKER_TTL_S])
        return new


class FallbackBreakerStore:
    """`BreakerStore` that serves from `fallback` (this process's breakers) while `primary` (Redis) is out.

    A call that meets an outage error (refused, reset, timed out: `records.failopen.outage_errors`) is
    counted and logged as op `breaker`, then answered from `fallback`, so breakers keep working locally
    instead of failing every request. The client's `RedisGate` skips Redis for `[redis] retry_s` after an
    outage (a skipped call is one more such failure, answered at once); the first call after that goes to
    Redis again, and on success the shared state is used again. The local state only covers the outage:
    nothing is copied back to Redis.
    """

    def __init__(self, primary: BreakerStore, fallback: BreakerStore, errors: FailOpenLog) -> None:
        self.primary = primary
        self.fallback = fallback
        self.errors = errors
        self._outage = outage_errors()

    async def get(self, key: str) -> BreakerSnapshot:
        try:
            snap = await self.primary.get(key)
        except self._outage as exc:
            self.errors.failed("breaker", exc)
            return await self.fallback.get(key)
        self.errors.recovered("breaker")
        return snap

    async def update(self, key: str, fn: Callable[[BreakerSnapshot], BreakerSnapshot]) -> BreakerSnapshot:
        try:
            snap = await self.primary.update(key, fn)
        except self._outage as exc:  # `fn` may have run (e.g. the commit failed): it is safe to re-run
            self.errors.failed("breaker", exc)
            return await self.fallback.update(key, fn)
        self.errors.recovered("breaker")
        return snap


class RedisRateLimiter:
    """`RateLimiter`: one token bucket per key (`rpm` per minute, bursting to `rpm`), shared by all gateways."""

    def __init__(self, client: Redis, rpm: Mapping[str, int], prefix: str = "gearshift:") -> None:
        self.client = client
        self.prefix = prefix
        self._rpm = dict(rpm)
        self._script = client.register_script(_TOKEN_BUCKET)

    async def allow(self, key_id: str) -> tuple[bool, float]:
        rpm = self._rpm.get(key_id)
        if rpm is None:
            return True, 0.0
        ok, wait = await self._script(keys=[f"{self.prefix}ratelimit:{key_id}"], args=[rpm / 60.0, float(rpm)])
        return bool(int(ok)), float(wait)


class RedisBudgetLedger:
    """`BudgetLedger`: dollars per key per UTC day, summed across gateways; keys without a budget pass."""

    def __init__(self, client: Redis, usd_per_day: Mapping[str, float], prefix: str = "gearshift:",
                 *, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.prefix = prefix
        self._limit = dict(usd_per_day)
        self._clock = clock
        self._spend = client.register_script(_SPEND)
        self._reserve = client.register_script(_RESERVE)

    def _key(self, key_id: str) -> tuple[str, int]:
        day = int(self._clock() // _DAY_S)
        return f"{self.prefix}budget:{key_id}:{day}", day

    async def spent_today(self, key_id: str) -> float:
        raw = await self.client.get(self._key(key_id)[0])
        return float(raw) if raw is not None else 0.0

    async def allow(self, key_id: str) -> tuple[bool, float]:
        limit = self._limit.get(key_id)
        if limit is None:
            return True, 0.0
        if await self.spent_today(key_id) < limit:
            return True, 0.0
        return False, (self._key(key_id)[1] + 1) * _DAY_S - self._clock()

    async def reserve(self, key_id: str, usd: float) -> tuple[bool, float]:
        limit = self._limit.get(key_id)
        if limit is None:
            return True, 0.0
        key, day = self._key(key_id)
        if int(await self._reserve(keys=[key], args=[repr(max(0.0, usd)), repr(limit), int(2 * _DAY_S)])):
            return True, 0.0
        return False, (day + 1) * _DAY_S - self._clock()

    async def spend(self, key_id: str, usd: float) -> bool:
        key, _ = self._key(key_id)
        spent = float(await self._spend(keys=[key], args=[repr(usd), int(2 * _DAY_S)]))
        limit = self._limit.get(key_id)
        return limit is None or spent <= limit


class RedisCounters:
    """Fleet-wide counters (INCR), e.g. for every-n-th shadow sampling across gateways."""

    def __init__(self, client: Redis, prefix: str = "gearshift:") -> None:
        self.client = client
        self.prefix = prefix

    async def incr(self, name: str, by: int = 1) -> int:
        return int(await self.client.incrby(f"{self.prefix}counter:{name}", by))

    async def get(self, name: str) -> int:
        raw = await self.client.get(f"{self.prefix}counter:{name}")
        return int(raw) if raw is not None else 0


class RedisConversationStore:
    """`ConversationStore` shared by all gateways: `PREFIXconv:<id>` holds the tier index for `ttl_s`
    seconds, refreshed by every turn that sets it (so a conversation idle for `ttl_s` is forgotten)."""

    def __init__(self, client: Redis, prefix: str = "gearshift:", *, ttl_s: int = 86_400) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    def _key(self, conversation_id: str) -> str:
        return f"{self.prefix}conv:{conversation_id}"

    async def get(self, conversation_id: str) -> int | None:
        raw = await self.client.get(self._key(conversation_id))
        return int(raw) if raw is not None else None

    async def set(self, conversation_id: str, tier_index: int) -> None:
        await self.client.set(self._key(conversation_id), int(tier_index), ex=self.ttl_s)


class RedisShareWindows:
    """`ShareWindowStore` shared by all gateways: `PREFIXstrongshare:<key id>` is a list of the key's last
    `window` outcomes; `admit` checks the cap, pushes and trims in one Lua script."""

    def __init__(self, client: Redis, prefix: str = "gearshift:", *, ttl_s: int = _SHARE_WINDOW_TTL_S) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._admit = client.register_script(_SHARE_ADMIT)

    def _key(self, key_id: str) -> str:
        return f"{self.prefix}strongshare:{key_id}"

    async def strong_count(self, key_id: str, window: int) -> int:
        items = await self.client.lrange(self._key(key_id), 0, window - 1)
        return sum(1 for v in items if v in (b"1", "1"))

    async def admit(self, key_id: str, strong: bool, max_strong: float, window: int) -> bool:
        at_cap = await self._admit(keys=[self._key(key_id)],
                                   args=["1" if strong else "0", repr(float(max_strong)), int(window), self.ttl_s])
        return bool(int(at_cap))


@dataclass
class SharedState:
    """The Redis-backed parts of one gateway; `aclose` releases the client's connections. `gate` is in
    front of the client: after an outage every part skips Redis for `retry_s` (they all fall back at once)."""

    client: Redis
    gate: RedisGate
    breakers: BreakerStore  # a FallbackBreakerStore over the RedisBreakerStore (per-process during an outage)
    limiter: RedisRateLimiter
    budgets: RedisBudgetLedger
    counters: RedisCounters
    conversations: RedisConversationStore
    share_windows: RedisShareWindows
    slo: RedisSLOStore  # the fleet's SLO windows and alert claims (store/redis_slo.py)

    @classmethod
    def from_settings(cls, url: str, prefix: str, auth: Any, *, conversation_ttl_s: int = 86_400,
                      timeout_s: float = 0.5, retry_s: float = 1.0, errors: FailOpenLog | None = None) -> SharedState:
        """From `[redis]` (url, prefix, timeout_s, retry_s), `[auth]` (per-key rpm and daily budgets),
        `[conversations] ttl_s`; Redis outages of the breakers are reported to `errors`."""
        gate = RedisGate(retry_s)
        client = connect(url, timeout_s=timeout_s, gate=gate)
        return cls(
            client=client,
            gate=gate,
            breakers=FallbackBreakerStore(RedisBreakerStore(client, prefix), InMemoryBreakerStore(),
                                          errors or FailOpenLog()),
            limiter=RedisRateLimiter(client, {k.id: k.rpm for k in auth.keys if k.rpm is not None}, prefix),
            budgets=RedisBudgetLedger(client, {k.id: k.budget_usd_per_day for k in auth.keys
                                               if k.budget_usd_per_day is not None}, prefix),
            counters=RedisCounters(client, prefix),
            conversations=RedisConversationStore(client, prefix, ttl_s=conversation_ttl_s),
            share_windows=RedisShareWindows(client, prefix),
            slo=RedisSLOStore(client, prefix),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

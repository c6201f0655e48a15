"""Shared state on the real local Redis: two gateways (two clients, one prefix) see one breaker, bucket, budget."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from gearshift.gateway.budgets import BudgetLedger
from gearshift.gateway.ratelimit import RateLimiter
from gearshift.policy.conversations import FailOpenConversationStore, LRUConversationStore
from gearshift.policy.share_cap import InMemoryShareWindows, ShareWindowStore, StrongShareCap
from gearshift.providers.breaker import (
    BreakerConfig,
    BreakerRegistry,
    BreakerSnapshot,
    BreakerState,
    InMemoryBreakerStore,
)
from gearshift.records.failopen import FailOpenLog, RedisGate, RedisOutError
from gearshift.store.redis_state import (
    FallbackBreakerStore,
    RedisBreakerStore,
    RedisBudgetLedger,
    RedisConversationStore,
    RedisCounters,
    RedisRateLimiter,
    RedisShareWindows,
    SharedState,
    connect,
)
from support.tcp_proxy import TcpProxy


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def two_clients(redis_target: tuple[str, str]) -> AsyncIterator[tuple[object, object, str]]:
    url, prefix = redis_target
    a, b = connect(url), connect(url)
    yield a, b, prefix
    await a.aclose()
    await b.aclose()


async def test_a_breaker_opened_by_one_gateway_is_open_for_the_other(two_clients: tuple) -> None:
    a, b, prefix = two_clients
    clock = _Clock()
    cfg = BreakerConfig(failure_threshold=3, cooldown_s=10.0)
    gw1 = BreakerRegistry(RedisBreakerStore(a, prefix), config=cfg, clock=clock)
    gw2 = BreakerRegistry(RedisBreakerStore(b, prefix), config=cfg, clock=clock)
    for _ in range(3):
        await gw1.get("dep-a").record_failure()
    assert await gw2.get("dep-a").state() is BreakerState.OPEN
    assert not await gw2.get("dep-a").allow_request()
    assert await gw2.get("dep-b").allow_request()  # other deployments are untouched
    clock.now += 10.0
    # past the cooldown exactly one of the two gateways gets the half-open probe
    probes = await asyncio.gather(gw1.get("dep-a").allow_request(), gw2.get("dep-a").allow_request())
    assert sorted(probes) == [False, True]
    await gw2.get("dep-a").record_success()
    assert await gw1.get("dep-a").state() is BreakerState.CLOSED


async def test_concurrent_breaker_updates_lose_nothing(two_clients: tuple) -> None:
    """40 interleaved read-modify-writes from two clients all land (the per-key lock serialises them)."""
    a, b, prefix = two_clients
    stores = [RedisBreakerStore(a, prefix), RedisBreakerStore(b, prefix)]

    def bump(s: BreakerSnapshot) -> BreakerSnapshot:
        return BreakerSnapshot(consecutive_failures=s.consecutive_failures + 1)

    await asyncio.gather(*(stores[i % 2].update("dep", bump) for i in range(40)))
    assert (await stores[0].get("dep")).consecutive_failures == 40


async def test_rate_limit_is_shared_across_gateways(two_clients: tuple) -> None:
    a, b, prefix = two_clients
    gw1, gw2 = RedisRateLimiter(a, {"k": 3}, prefix), RedisRateLimiter(b, {"k": 3}, prefix)
    assert isinstance(gw1, RateLimiter)
    results = [await (gw1 if i % 2 else gw2).allow("k") for i in range(4)]
    assert [ok for ok, _ in results] == [True, True, True, False]
    assert 0.0 < results[-1][1] <= 20.0  # 3 rpm: next token within 20 s
    assert (await gw1.allow("unlimited")) == (True, 0.0)


async def test_budget_spent_on_one_gateway_blocks_the_other(two_clients: tuple) -> None:
    a, b, prefix = two_clients
    clock = _Clock()
    gw1 = RedisBudgetLedger(a, {"k": 1.0}, prefix, clock=clock)
    gw2 = RedisBudgetLedger(b, {"k": 1.0}, prefix, clock=clock)
    assert isinstance(gw1, BudgetLedger)
    assert await gw1.spend("k", 0.6)
    assert (await gw2.allow("k"))[0]
    assert not await gw2.spend("k", 0.6)  # 1.2 > 1.0
    ok, wait = await gw1.allow("k")
    assert not ok and 0 < wait <= 86_400
    clock.now += 86_400  # a new UTC day starts a new budget
    assert (await gw1.allow("k"))[0] and await gw2.spent_today("k") == 0.0


async def test_counters_and_shared_state_from_settings(redis_target: tuple[str, str]) -> None:
    from gearshift.gateway.settings import ApiKeySettings, AuthSettings

    url, prefix = redis_target
    auth = AuthSettings(keys=[ApiKeySettings(id="k", sha256="0" * 64, rpm=1, budget_usd_per_day=2.0)])
    state = SharedState.from_settings(url, prefix, auth)
    try:
        assert await state.counters.incr("shadow") == 1
        other = RedisCounters(state.client, prefix)
        assert await other.incr("shadow", 2) == 3 and await state.counters.get("shadow") == 3
        assert (await state.limiter.allow("k"))[0] and not (await state.limiter.allow("k"))[0]
        assert await state.budgets.spend("k", 1.5)
    finally:
        await state.aclose()


async def test_a_conversation_pin_set_by_one_gateway_is_read_by_the_other(two_clients: tuple) -> None:
    a, b, prefix = two_clients
    gw1, gw2 = RedisConversationStore(a, prefix, ttl_s=300), RedisConversationStore(b, prefix, ttl_s=300)
    assert await gw2.get("c1") is None
    await gw1.set("c1", 2)
    assert await gw2.get("c1") == 2
    await gw2.set("c1", 1)  # a later turn moves it and refreshes the TTL
    assert await gw1.get("c1") == 1
    assert 0 < await a.ttl(f"{prefix}conv:c1") <= 300
    assert await LRUConversationStore().get("c1") is None  # the in-memory default shares nothing


async def test_share_windows_match_the_in_memory_ones_and_hold_under_concurrency(two_clients: tuple) -> None:
    a, b, prefix = two_clients
    shared = [RedisShareWindows(a, prefix), RedisShareWindows(b, prefix)]
    local = InMemoryShareWindows()
    assert isinstance(shared[0], ShareWindowStore) and isinstance(local, ShareWindowStore)
    wants = [True, True, False, True, True, True, False, False, True, True, True]
    got = [await shared[i % 2].admit("k", w, 2.0, 4) for i, w in enumerate(wants)]
    assert got == [await local.admit("k", w, 2.0, 4) for w in wants]
    assert await shared[1].strong_count("k", 4) == await local.strong_count("k", 4)
    assert await a.llen(f"{prefix}strongshare:k") == 4
    # 40 concurrent strong requests from two gateways serve exactly as many strong answers as one process
    # serving them in a row (check and push are one step: no two requests take the same last slot)
    results = await asyncio.gather(*(shared[i % 2].admit("burst", True, 5.0, 10) for i in range(40)))
    serial = [await local.admit("burst", True, 5.0, 10) for _ in range(40)]
    assert results.count(False) == serial.count(False) == 20
    assert await shared[0].strong_count("burst", 10) == await local.strong_count("burst", 10) <= 5


class _Down:
    async def get(self, conversation_id: str) -> int | None:
        raise ConnectionError("redis down")

    async def set(self, conversation_id: str, tier_index: int) -> None:
        raise ConnectionError("redis down")

    async def strong_count(self, key_id: str, window: int) -> int:
        raise ConnectionError("redis down")

    async def admit(self, key_id: str, strong: bool, max_strong: float, window: int) -> bool:
        raise ConnectionError("redis down")


async def test_a_failing_store_fails_open_counts_each_failure_and_logs_once_per_burst(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gearshift.records.failopen")
    counted: list[str] = []
    clock = _Clock()
    errors = FailOpenLog(counted.append, quiet_s=60.0, clock=clock)
    conv = FailOpenConversationStore(_Down(), errors)
    cap = StrongShareCap({"k": (0.0, 10)}, _Down(), errors)  # a cap of 0 would cap every strong request
    for _ in range(3):
        assert await conv.get("c") is None
        await conv.set("c", 1)
        assert await cap.limit("k", 1, 2) == 1 and not await cap.would_cap("k", 2)
    assert counted == ["conversation_get", "conversation_set", "strong_share", "strong_share"] * 3
    assert len([r for r in caplog.records if "fail open" in r.getMessage()]) == 3  # one per op
    clock.now += 60.0  # still failing a minute later: one reminder per op
    assert await conv.get("c") is None
    assert len([r for r in caplog.records if "still failing" in r.getMessage()]) == 1
    errors.recovered("conversation_get")
    assert any("works again" in r.getMessage() for r in caplog.records)


async def test_the_fallback_breaker_store_is_local_during_an_outage_and_shared_again_after(
        redis_target: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """Gateway 1 reaches Redis through a proxy that goes down; gateway 2 keeps talking to Redis directly."""
    url, prefix = redis_target
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    clock, mono = _Clock(), _Clock()
    cfg = BreakerConfig(failure_threshold=2, cooldown_s=60.0)
    counted: list[str] = []
    with TcpProxy(host, int(port)) as proxy:
        gate = RedisGate(1.0, clock=mono)
        c1, c2 = connect(f"redis://127.0.0.1:{proxy.port}/0", timeout_s=0.5, gate=gate), connect(url)
        try:
            primary = RedisBreakerStore(c1, prefix)
            store = FallbackBreakerStore(primary, InMemoryBreakerStore(), FailOpenLog(counted.append))
            gw1 = BreakerRegistry(store, config=cfg, clock=clock)
            gw2 = BreakerRegistry(RedisBreakerStore(c2, prefix), config=cfg, clock=clock)
            await gw1.get("dep").record_failure()  # shared: gateway 2 sees it
            assert (await RedisBreakerStore(c2, prefix).get("dep")).consecutive_failures == 1
            proxy.set_mode("down")
            # the outage: gateway 1's breaker works on its own state (starting closed), counted as `breaker`
            assert await gw1.get("dep").allow_request()
            assert counted == ["breaker"] and gate.open_for() == 1.0
            proxy.set_mode("hung")  # within retry_s Redis is not tried again (a hung one would cost 0.5 s a call)
            started = asyncio.get_running_loop().time()
            for _ in range(2):  # the local breaker trips; each skipped call still counts as a failure
                await gw1.get("dep").record_failure()
            assert not await gw1.get("dep").allow_request()
            assert asyncio.get_running_loop().time() - started < 0.3 and counted == ["breaker"] * 4
            proxy.set_mode("down")
            mono.now += 1.0  # Redis is tried again, still down: one more failure, still local
            assert await gw1.get("dep").state() is BreakerState.OPEN and counted == ["breaker"] * 5
            await gw2.get("other").record_failure()
            await gw2.get("other").record_failure()  # opened fleet-wide while gateway 1 is cut off
            assert await gw1.get("other").allow_request()  # gateway 1 cannot know
            proxy.set_mode("up")
            mono.now += 1.0
            # back: the shared state is used again (the fleet-wide trip is honoured; the local one is gone)
            assert not await gw1.get("other").allow_request()
            assert await gw1.get("dep").allow_request()
            assert await gw1.get("dep").state() is BreakerState.CLOSED
            assert counted == ["breaker"] * 6 and gate.open_for() == 0.0
        finally:
            await c1.aclose()
            await c2.aclose()


async def test_the_fallback_breaker_store_passes_other_errors_through() -> None:
    class _Broken(InMemoryBreakerStore):
        async def get(self, key: str) -> BreakerSnapshot:
            raise ValueError("not an outage")

    counted: list[str] = []
    store = FallbackBreakerStore(_Broken(), InMemoryBreakerStore(), FailOpenLog(counted.append))
    with pytest.raises(ValueError):
        await store.get("dep")
    assert counted == []


async def test_the_redis_gate_skips_redis_for_retry_s_after_an_outage_then_probes_it_again() -> None:
    mono = _Clock()
    gate = RedisGate(1.0, clock=mono)
    calls: list[str] = []
    replies: list[BaseException | None] = []

    async def command(*args: str) -> str:
        calls.append(args[0])
        reply = replies.pop(0) if replies else None
        if reply is not None:
            raise reply
        return "OK"

    guarded = gate.guard(command)
    assert await guarded("GET") == "OK" and gate.open_for() == 0.0
    replies.append(TimeoutError("Timeout reading from socket"))
    with pytest.raises(TimeoutError):
        await guarded("GET")
    for t in (0.0, 0.5, 0.99):  # out for retry_s: not sent, an outage error the callers fall back on
        mono.now = 1_000_000.0 + t
        with pytest.raises(RedisOutError, match="TimeoutError: Timeout reading"):
            await guarded("SET")
    assert calls == ["GET", "GET"]
    mono.now += 0.01  # retry_s is up: the next call probes Redis (while it is in flight, the others skip)
    assert gate.open_for() == 0.0 and gate.open_for() == pytest.approx(1.0)
    gate.tripped(ConnectionError("refused"))  # the probe failed: another retry_s
    mono.now += 0.5
    with pytest.raises(RedisOutError):
        await guarded("GET")
    mono.now += 0.5
    assert await guarded("GET") == "OK"  # the probe answers: Redis is used again by every call
    assert await guarded("GET") == "OK" and calls == ["GET", "GET", "GET", "GET"] and gate.open_for() == 0.0
    replies.append(ValueError("a bug, not an outage"))  # other errors surface and do not close Redis off
    with pytest.raises(ValueError):
        await guarded("GET")
    assert gate.open_for() == 0.0
    gate.tripped(ConnectionError("reset"))
    gate.ok()  # e.g. a call sent before the trip answered late: Redis works
    assert gate.open_for() == 0.0

"""The fleet's SLO windows on the real local Redis and PostgreSQL, one contract: two gateways (two clients of
one prefix / schema) add to one window, and one of them claims each alert."""

from __future__ import annotations

import asyncio

import pytest

from gearshift.closed_loop.fleet import FleetWindows
from gearshift.closed_loop.sli import DecisionEvent, QualityEvent, SLIConfig
from gearshift.store.postgres_slo import PostgresSLOStore
from gearshift.store.redis_slo import RedisSLOStore
from gearshift.store.redis_state import connect
from support.services import pg_schema, redis_prefix

pytestmark = [pytest.mark.services]

CONFIG = SLIConfig(window_s=60.0, quality_window_s=600.0)


async def _contract(a: FleetWindows, b: FleetWindows) -> None:
    now = 10_000.0
    for i in range(3):
        a.observe(DecisionEvent(now - i, 1, {"language": "de"}, escalated=True))
        b.observe(DecisionEvent(now - i, 0, {"language": "en"}))
    a.observe(DecisionEvent(now - 120.0, 1, {"language": "de"}))  # outside the 60 s window
    a.observe_quality(QualityEvent(now - 300.0, True, {"language": "de"}))  # inside the 600 s one
    b.observe_quality(QualityEvent(now, False, {"language": "de"}))
    await asyncio.gather(a.flush(), b.flush())
    await a.flush()  # nothing pending: nothing added twice
    for fleet in (a, b):
        decisions, quality = await fleet.window(now)
        assert decisions["*"] == {"n": 6, "strong": 3, "esc": 3, "t0": 3, "t1": 3}
        assert decisions["language=de"]["n"] == 3 and decisions["language=en"]["esc"] == 0
        assert quality["language=de"] == {"judged": 2, "loss": 1}
    later, _ = await a.window(now + 61.0)  # the window moved past every decision
    assert later == {}
    claims = await asyncio.gather(*(f.store.claim("quality_loss|language=de|high", 5.0) for f in (a, b, a)))
    assert sorted(claims) == [False, False, True]
    assert await a.store.claim("short|*|high", 0.05) and not await b.store.claim("short|*|high", 5.0)
    await asyncio.sleep(0.2)
    assert await b.store.claim("short|*|high", 5.0)  # the claim expired: the next gateway takes it over
    await a.store.log_alerts([{"kind": "quality_loss", "segment": "language=de"}])
    assert await b.store.recent_alerts() == [{"kind": "quality_loss", "segment": "language=de"}]


async def _on_redis(url: str, prefix: str) -> None:
    clients = [connect(url), connect(url)]
    try:
        a, b = (FleetWindows(RedisSLOStore(c, prefix), CONFIG) for c in clients)
        await _contract(a, b)
        ttl = await clients[0].ttl(a.store.bucket_key("d", 2.0, int(10_000.0 // 2.0)))
        assert 0 < ttl <= 64  # a bucket lives as long as a window (and two buckets), no longer
    finally:
        for c in clients:
            await c.aclose()


async def _on_postgres(url: str) -> None:
    stores = [PostgresSLOStore(url), PostgresSLOStore(url)]
    try:
        await _contract(*(FleetWindows(s, CONFIG) for s in stores))
    finally:
        for s in stores:
            s.close()


def test_two_gateways_share_one_window_on_redis() -> None:
    with redis_prefix() as (url, prefix):
        asyncio.run(_on_redis(url, prefix))


def test_two_gateways_share_one_window_on_postgresql() -> None:
    with pg_schema("gs_slo") as url:
        asyncio.run(_on_postgres(url))

"""The circuit breaker state machine, driven by a fake clock (no sleeping)."""

from __future__ import annotations

from gearshift.providers.breaker import BreakerConfig, BreakerRegistry, BreakerState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_opens_after_consecutive_failures_then_half_opens_and_closes() -> None:
    clock = Clock()
    reg = BreakerRegistry(config=BreakerConfig(failure_threshold=3, cooldown_s=10.0), clock=clock)
    b = reg.get("primary")
    for _ in range(2):
        await b.record_failure()
    assert await b.state() is BreakerState.CLOSED and await b.allow_request()
    await b.record_failure()
    assert await b.state() is BreakerState.OPEN
    assert not await b.allow_request()
    clock.now += 10.0
    assert await b.allow_request()  # the one probe
    assert not await b.allow_request()  # others wait while it is in flight
    await b.record_success()
    assert await b.state() is BreakerState.CLOSED and await b.allow_request()


async def test_a_straggler_success_while_open_does_not_close_the_circuit() -> None:
    clock = Clock()
    b = BreakerRegistry(config=BreakerConfig(failure_threshold=2, cooldown_s=10.0), clock=clock).get("d")
    await b.record_failure()
    await b.record_failure()
    clock.now += 1.0
    await b.record_success()  # a request sent before the trip answers late
    assert await b.state() is BreakerState.OPEN
    assert not await b.allow_request()
    clock.now += 9.0
    assert await b.allow_request()  # the probe, after the full cooldown
    await b.record_success()
    assert await b.state() is BreakerState.CLOSED


async def test_failed_probe_reopens_for_another_cooldown() -> None:
    clock = Clock()
    b = BreakerRegistry(config=BreakerConfig(failure_threshold=1, cooldown_s=5.0), clock=clock).get("d")
    await b.record_failure()
    clock.now += 5.0
    assert await b.allow_request()
    await b.record_failure()
    assert await b.state() is BreakerState.OPEN
    clock.now += 4.0
    assert not await b.allow_request()
    clock.now += 1.0
    assert await b.allow_request()


async def test_failure_rate_opens_even_without_a_streak() -> None:
    clock = Clock()
    cfg = BreakerConfig(failure_threshold=100, failure_rate=0.5, min_requests=10, window_s=60.0)
    b = BreakerRegistry(config=cfg, clock=clock).get("flaky")
    for _ in range(5):
        await b.record_success()
        clock.now += 1
        await b.record_failure()
        clock.now += 1
    assert await b.state() is BreakerState.OPEN


async def test_old_outcomes_leave_the_window() -> None:
    clock = Clock()
    cfg = BreakerConfig(failure_threshold=100, failure_rate=0.5, min_requests=4, window_s=10.0)
    reg = BreakerRegistry(config=cfg, clock=clock)
    b, control = reg.get("d"), reg.get("control")
    for _ in range(3):  # below min_requests: no rate trip yet
        await b.record_failure()
        await control.record_failure()
    assert await b.state() is BreakerState.CLOSED
    await control.record_failure()  # a 4th failure inside the window trips the rate
    assert await control.state() is BreakerState.OPEN
    clock.now += 30.0
    await b.record_failure()  # the same 4th failure after the window moved on: only 1 outcome counts
    assert await b.state() is BreakerState.CLOSED


async def test_breakers_are_per_deployment() -> None:
    reg = BreakerRegistry(config=BreakerConfig(failure_threshold=1), clock=Clock())
    await reg.get("a").record_failure()
    assert not await reg.get("a").allow_request()
    assert await reg.get("b").allow_request()

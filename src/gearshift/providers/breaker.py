"""Per-deployment circuit breakers: stop sending traffic to a deployment that keeps failing.

closed --(N consecutive failures, or failure rate over a window)--> open --(cooldown)--> half-open:
one probe request goes through; its success closes the circuit, its failure re-opens it.

The logic lives in :class:`CircuitBreaker`; the state lives behind :class:`BreakerStore` so several
gateway processes can later share it (a Redis store), and the clock is injectable so tests need no sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

Clock = Callable[[], float]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When to open, and how long to stay open. `failure_rate` applies once `min_requests` are in the window."""

    failure_threshold: int = 5
    failure_rate: float = 0.5
    min_requests: int = 20
    window_s: float = 30.0
    cooldown_s: float = 15.0


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """The stored state of one breaker; `outcomes` are (time, ok) pairs inside the rate window."""

    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: float | None = None
    probe_started_at: float | None = None
    outcomes: tuple[tuple[float, bool], ...] = field(default_factory=tuple)


class BreakerStore(Protocol):
    """Where breaker state lives. `update` applies `fn` atomically (per key) and returns the new snapshot."""

    async def get(self, key: str) -> BreakerSnapshot: ...

    async def update(self, key: str, fn: Callable[[BreakerSnapshot], BreakerSnapshot]) -> BreakerSnapshot: ...


class InMemoryBreakerStore:
    """One process's breakers. Updates are synchronous, so they are atomic on the event loop."""

    def __init__(self) -> None:
        self._states: dict[str, BreakerSnapshot] = {}

    async def get(self, key: str) -> BreakerSnapshot:
        return self._states.get(key, BreakerSnapshot())

    async def update(self, key: str, fn: Callable[[BreakerSnapshot], BreakerSnapshot]) -> BreakerSnapshot:
        new = fn(self._states.get(key, BreakerSnapshot()))
        self._states[key] = new
        return new


class CircuitBreaker:
    """The breaker for one deployment (`key` is the deployment name)."""

    def __init__(self, key: str, *, store: BreakerStore, config: BreakerConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.key = key
        self.store = store
        self.config = config or BreakerConfig()
        self.clock = clock

    async def state(self) -> BreakerState:
        """The current state as a caller would see it (an open circuit past its cooldown reads half-open)."""
        snap = await self.store.get(self.key)
        if snap.state is BreakerState.OPEN and self._cooled(snap, self.clock()):
            return BreakerState.HALF_OPEN
        return snap.state

    def _cooled(self, snap: BreakerSnapshot, now: float) -> bool:
        return snap.opened_at is not None and now - snap.opened_at >= self.config.cooldown_s

    async def allow_request(self) -> bool:
        """May a request go to this deployment now? Past the cooldown, exactly one caller gets the probe."""
        now = self.clock()
        allowed = False

        def step(snap: BreakerSnapshot) -> BreakerSnapshot:
            # Safe to re-run (a shared store may retry an optimistic transaction): reset the verdict first.
            nonlocal allowed
            allowed = False
            if snap.state is BreakerState.CLOSED:
                allowed = True
                return snap
            probe_stuck = snap.probe_started_at is not None and now - snap.probe_started_at >= self.config.cooldown_s
            if (snap.state is BreakerState.OPEN and self._cooled(snap, now)) or \
                    (snap.state is BreakerState.HALF_OPEN and probe_stuck):
                allowed = True
                return replace(snap, state=BreakerState.HALF_OPEN, probe_started_at=now)
            return snap

        await self.store.update(self.key, step)
        return allowed

    async def record_success(self) -> None:
        now = self.clock()

        def step(snap: BreakerSnapshot) -> BreakerSnapshot:
            if snap.state is BreakerState.OPEN:
                # A straggler sent before the trip proves nothing about the deployment now: only the
                # half-open probe (granted by allow_request) may close the circuit.
                return snap
            if snap.state is BreakerState.HALF_OPEN:
                return BreakerSnapshot(outcomes=((now, True),))
            return replace(snap, consecutive_failures=0, outcomes=self._window(snap, now, True))

        await self.store.update(self.key, step)

    async def record_failure(self) -> None:
        now = self.clock()
        cfg = self.config

        def step(snap: BreakerSnapshot) -> BreakerSnapshot:
            outcomes = self._window(snap, now, False)
            failures = snap.consecutive_failures + 1
            if snap.state is not BreakerState.CLOSED:
                return BreakerSnapshot(BreakerState.OPEN, failures, opened_at=now, outcomes=outcomes)
            n_fail = sum(1 for _, ok in outcomes if not ok)
            rate_trip = len(outcomes) >= cfg.min_requests and n_fail / len(outcomes) >= cfg.failure_rate
            if failures >= cfg.failure_threshold or rate_trip:
                return BreakerSnapshot(BreakerState.OPEN, failures, opened_at=now, outcomes=outcomes)
            return replace(snap, consecutive_failures=failures, outcomes=outcomes)

        await self.store.update(self.key, step)

    def _window(self, snap: BreakerSnapshot, now: float, ok: bool) -> tuple[tuple[float, bool], ...]:
        horizon = now - self.config.window_s
        kept = snap.outcomes
        # outcomes are appended in clock order, so the oldest tells whether any fell out of the window
        if kept and kept[0][0] < horizon:
            kept = tuple(o for o in kept if o[0] >= horizon)
        return (*kept[-(4 * max(self.config.min_requests, 1)):], (now, ok))


class BreakerRegistry:
    """One :class:`CircuitBreaker` per deployment name, sharing a store, config and clock."""

    def __init__(self, store: BreakerStore | None = None, *, config: BreakerConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.store: BreakerStore = store or InMemoryBreakerStore()
        self.config = config or BreakerConfig()
        self.clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, key: str) -> CircuitBreaker:
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(key, store=self.store, config=self.config, clock=self.clock)
            self._breakers[key] = breaker
        return breaker

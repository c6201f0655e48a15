"""Per-key spend limits (dollars per UTC day) that a burst of concurrent requests cannot overshoot.

A request reserves its worst-case cost at admission (`reserve`: input bound + `max_tokens` x `n` at the
deployment's prices) and settles the difference once the answer's cost is known (`settle`). Check and booking
are one step, so twenty requests in flight on a nearly spent key cannot all pass a "spent < limit" check
before any of them is booked. `BudgetLedger` is a small async protocol so a shared store (Redis) can replace
the in-memory ledger. The strong-tier share cap, the other per-key limit, is part of the routing decision:
`policy/share_cap.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from gearshift.providers.registry import DeploymentSettings

_DAY_S = 86_400.0


@runtime_checkable
class BudgetLedger(Protocol):
    async def allow(self, key_id: str) -> tuple[bool, float]:
        """(False, seconds until the budget resets) when the key has spent its daily budget."""
        ...

    async def reserve(self, key_id: str, usd: float) -> tuple[bool, float]:
        """Book `usd` in one step if the key's spend plus it stays within the budget; else (False, seconds
        until the budget resets) and nothing is booked. Keys without a budget always pass."""
        ...

    async def spend(self, key_id: str, usd: float) -> bool:
        """Add `usd` (negative: give back part of a reservation); False when the key is now over its budget."""
        ...


class InMemoryBudgetLedger:
    """Daily budgets per key, reset at UTC midnight; keys without a budget always pass."""

    def __init__(self, usd_per_day: Mapping[str, float], *, clock: Callable[[], float] = time.time) -> None:
        self._limit = dict(usd_per_day)
        self._spent: dict[str, tuple[int, float]] = {}
        self._clock = clock
        self._lock = asyncio.Lock()

    def _today(self, key_id: str) -> tuple[int, float]:
        day = int(self._clock() // _DAY_S)
        d, spent = self._spent.get(key_id, (day, 0.0))
        return (day, spent) if d == day else (day, 0.0)

    def _reset_in(self, day: int) -> float:
        return (day + 1) * _DAY_S - self._clock()

    async def allow(self, key_id: str) -> tuple[bool, float]:
        limit = self._limit.get(key_id)
        if limit is None:
            return True, 0.0
        async with self._lock:
            day, spent = self._today(key_id)
        if spent < limit:
            return True, 0.0
        return False, self._reset_in(day)

    async def reserve(self, key_id: str, usd: float) -> tuple[bool, float]:
        limit = self._limit.get(key_id)
        if limit is None:
            return True, 0.0
        async with self._lock:
            day, spent = self._today(key_id)
            if spent + max(0.0, usd) > limit:
                return False, self._reset_in(day)
            self._spent[key_id] = (day, spent + max(0.0, usd))
        return True, 0.0

    async def spend(self, key_id: str, usd: float) -> bool:
        async with self._lock:
            day, spent = self._today(key_id)
            spent = max(0.0, spent + usd)  # a refund after midnight must not make the new day negative
            self._spent[key_id] = (day, spent)
        limit = self._limit.get(key_id)
        return limit is None or spent <= limit

    def spent_today(self, key_id: str) -> float:
        return self._today(key_id)[1]


def worst_case_usd(input_tokens: int, output_tokens_per_tier: Sequence[int], n: int,
                   tiers: Iterable[Sequence[DeploymentSettings]]) -> float:
    """The most a request can cost (`input_tokens`: an upper bound, e.g. the request's size in bytes, since a
    token is at least one byte): for each tier it may be sent to (one, or the cascade's tiers from the
    first), the dearest deployment there at `input_tokens` in and `n` x that tier's output cap out."""
    total = 0.0
    for out_tokens, deps in zip(output_tokens_per_tier, tiers, strict=True):
        if not deps:
            continue
        total += max(input_tokens * d.input_price_per_m + n * out_tokens * d.output_price_per_m for d in deps) / 1e6
    return total

"""Per-key spend limits (dollars per UTC day).

`BudgetLedger` is a small async protocol so a shared store (Redis) can replace the in-memory ledger. The
strong-tier share cap, the other per-key limit, is part of the routing decision: `policy/share_cap.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

_DAY_S = 86_400.0


@runtime_checkable
class BudgetLedger(Protocol):
    async def allow(self, key_id: str) -> tuple[bool, float]:
        """(False, seconds until the budget resets) when the key has spent its daily budget."""
        ...

    async def spend(self, key_id: str, usd: float) -> bool:
        """Add spend; False when the key is now over its budget (the request itself is already served)."""
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

    async def allow(self, key_id: str) -> tuple[bool, float]:
        limit = self._limit.get(key_id)
        if limit is None:
            return True, 0.0
        async with self._lock:
            day, spent = self._today(key_id)
        if spent < limit:
            return True, 0.0
        return False, (day + 1) * _DAY_S - self._clock()

    async def spend(self, key_id: str, usd: float) -> bool:
        async with self._lock:
            day, spent = self._today(key_id)
            spent += max(0.0, usd)
            self._spent[key_id] = (day, spent)
        limit = self._limit.get(key_id)
        return limit is None or spent <= limit

    def spent_today(self, key_id: str) -> float:
        return self._today(key_id)[1]

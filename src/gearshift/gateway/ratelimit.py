"""Per-key request-rate limits: a small async protocol and an in-memory token bucket.

The protocol is one atomic call (`allow`) so a shared implementation (Redis, a Lua script) can replace
the in-memory one without changing the gateway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class RateLimiter(Protocol):
    async def allow(self, key_id: str) -> tuple[bool, float]:
        """Take one request token; (False, seconds until one is available) when the key is over its rate."""
        ...


class TokenBucketLimiter:
    """`rpm` tokens per minute per key, bursting up to `rpm`; keys without a limit always pass."""

    def __init__(self, rpm: Mapping[str, int], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = {k: v / 60.0 for k, v in rpm.items()}
        self._cap = {k: float(v) for k, v in rpm.items()}
        self._tokens = dict(self._cap)
        self._stamp: dict[str, float] = {}
        self._clock = clock
        self._lock = asyncio.Lock()

    async def allow(self, key_id: str) -> tuple[bool, float]:
        rate = self._rate.get(key_id)
        if rate is None:
            return True, 0.0
        async with self._lock:
            now = self._clock()
            last = self._stamp.get(key_id, now)
            tokens = min(self._cap[key_id], self._tokens[key_id] + (now - last) * rate)
            self._stamp[key_id] = now
            if tokens >= 1.0:
                self._tokens[key_id] = tokens - 1.0
                return True, 0.0
            self._tokens[key_id] = tokens
            return False, (1.0 - tokens) / rate

"""The strong-tier share cap: a per-key limit on how often the strongest tier answers.

It defends against cost-amplification prompts (text crafted to make the router pick the strong tier every
time): over a rolling window of a key's requests, once the strong tier's share would pass the key's cap, the
request goes to a cheaper tier and an alert is logged and counted. It is a step of the routing decision
(`policy/decide.py`), so the served tier, its deployments, the context fit and the logged propensity agree.
The windows are kept by a `ShareWindowStore` (async protocol): in memory by default, in Redis with
`[redis] url` (`store.redis_state.RedisShareWindows`) so a fleet enforces one cap per key, not one per process.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from gearshift.records.failopen import FailOpenLog

log = logging.getLogger(__name__)


@runtime_checkable
class ShareWindowStore(Protocol):
    """Each key's last `window` outcomes (True: served by the strongest tier), oldest dropped first."""

    async def strong_count(self, key_id: str, window: int) -> int:
        """Strong outcomes among the key's last `window` requests."""
        ...

    async def admit(self, key_id: str, strong: bool, max_strong: float, window: int) -> bool:
        """In one step: whether the key is at its cap (strong count + 1 > `max_strong`), and record the
        outcome (`strong` and not at the cap). Returns the first."""
        ...


class InMemoryShareWindows:
    """`ShareWindowStore` in one process's memory (the default without `[redis] url`)."""

    def __init__(self) -> None:
        self._windows: dict[str, deque[bool]] = {}

    def _window(self, key_id: str, window: int) -> deque[bool]:
        w = self._windows.get(key_id)
        if w is None or w.maxlen != window:
            w = self._windows[key_id] = deque(w or (), maxlen=window)
        return w

    async def strong_count(self, key_id: str, window: int) -> int:
        return sum(self._window(key_id, window))

    async def admit(self, key_id: str, strong: bool, max_strong: float, window: int) -> bool:
        w = self._window(key_id, window)  # no await in between: one step on the event loop
        at_cap = sum(w) + 1 > max_strong
        w.append(strong and not at_cap)
        return at_cap


class StrongShareCap:
    """Rolling-window share of a key's requests served by the strongest tier, capped per key.

    The windows live in a `ShareWindowStore`: per process by default, in Redis (`RedisShareWindows`) for
    a fleet, so the cap holds across every gateway. A store failure fails open (no cap), reported to
    `errors`.
    """

    def __init__(self, caps: Mapping[str, tuple[float, int]], store: ShareWindowStore | None = None,
                 errors: FailOpenLog | None = None) -> None:
        self._caps = dict(caps)  # key id -> (max share, window size in requests)
        self.store: ShareWindowStore = store or InMemoryShareWindows()
        self.errors = errors or FailOpenLog()
        self.alerts = 0

    def _budget(self, key_id: str) -> tuple[float, int]:
        # at most cap x window strong answers among the key's last `window` requests (a budget, not a ratio
        # of what has been seen so far, so a fresh key is not capped on its first request)
        cap, window = self._caps[key_id]
        return cap * window, window

    async def would_cap(self, key_id: str | None, n_tiers: int) -> bool:
        """Whether a strong-tier request of this key would be capped right now (the window is not touched)."""
        if key_id is None or key_id not in self._caps or n_tiers < 2:
            return False
        max_strong, window = self._budget(key_id)
        try:
            count = await self.store.strong_count(key_id, window)
        except Exception as exc:
            self.errors.failed("strong_share", exc)
            return False
        self.errors.recovered("strong_share")
        return count + 1 > max_strong

    async def decide(self, key_id: str | None, tier_index: int, n_tiers: int) -> tuple[int, bool]:
        """(the tier to serve, whether the key was at its cap), adding this request to the key's window.

        The tier is `tier_index`, or one lower when it is the strongest and the strong share would pass the
        key's cap. Check and record are one step of the store, so gateways sharing it cannot overshoot.
        """
        if key_id is None or key_id not in self._caps or n_tiers < 2:
            return tier_index, False
        max_strong, window = self._budget(key_id)
        strong = n_tiers - 1
        try:
            at_cap = await self.store.admit(key_id, tier_index == strong, max_strong, window)
        except Exception as exc:
            self.errors.failed("strong_share", exc)
            return tier_index, False
        self.errors.recovered("strong_share")
        if tier_index == strong and at_cap:
            self.alerts += 1
            log.warning("key %s: strong-tier share over its cap %.2f in the last %d requests; routing to a "
                        "cheaper tier (possible cost-amplification prompts)", key_id, self._caps[key_id][0], window)
            tier_index = strong - 1
        return tier_index, at_cap

    async def limit(self, key_id: str | None, tier_index: int, n_tiers: int) -> int:
        """The tier to serve: `tier_index`, or one lower when the strong share would pass the key's cap."""
        return (await self.decide(key_id, tier_index, n_tiers))[0]

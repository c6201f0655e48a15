"""Shared state the gateway serves through when Redis fails: count every failure, log once per burst.

Conversation pins and strong-share windows are advisory (losing one downgrades a conversation or skips a
cap for a moment), so a Redis outage must not turn into failed requests: the caller falls back ("no pin",
"no cap") and reports here. Each failure increments `gearshift_shared_state_errors_total{op}`; the log
gets one warning when an op starts failing, then at most one per `quiet_s` while it keeps failing, and an
info line when it works again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class FailOpenLog:
    """`failed(op, exc)` on every fall-back, `recovered(op)` on every success of a shared-state call."""

    def __init__(self, count: Callable[[str], None] | None = None, *, quiet_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._count = count
        self.quiet_s = quiet_s
        self._clock = clock
        self._failing: dict[str, float] = {}  # op -> when its last warning was logged
        self.failures = 0

    def failed(self, op: str, exc: BaseException) -> None:
        self.failures += 1
        if self._count is not None:
            try:
                self._count(op)
            except Exception:  # a metrics problem must not break the fall-back either
                log.debug("could not count a shared-state failure", exc_info=True)
        now = self._clock()
        last = self._failing.get(op)
        if last is None or now - last >= self.quiet_s:
            self._failing[op] = now
            log.warning("shared state (Redis) failed for %s%s: %s: %s; serving without it (fail open)", op,
                        "" if last is None else " (still failing)", type(exc).__name__, exc)

    def recovered(self, op: str) -> None:
        if self._failing and self._failing.pop(op, None) is not None:
            log.info("shared state (Redis) works again for %s", op)

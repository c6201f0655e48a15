"""Shared state the gateway serves through when Redis fails: count every failure, log once per burst.

Conversation pins and strong-share windows are advisory (losing one downgrades a conversation or skips a
cap for a moment), so a Redis outage must not turn into failed requests: the caller falls back ("no pin",
"no cap") and reports here. Each failure increments `gearshift_shared_state_errors_total{op}`; the log
gets one warning when an op starts failing, then at most one per `quiet_s` while it keeps failing, and an
info line when it works again.

`RedisGate` keeps a hung Redis from costing a timeout on every call: after an outage error on any shared-state
call, every call of the process skips Redis for `retry_s` (it raises `RedisOutError`, itself an outage error,
so each caller falls back, counts and logs exactly as on a failure), then one call probes Redis again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def outage_errors() -> tuple[type[BaseException], ...]:
    """What a shared-state call raises when Redis is down (refused, reset) or hung (socket timeout).

    Only these are served through: any other error (a bug, a bad script) still surfaces.
    """
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is installed wherever `[redis] url` can be set
        return (OSError,)
    return (RedisConnectionError, RedisTimeoutError, OSError)


class FailOpenLog:
    """`failed(op, exc)` on every fall-back, `recovered(op)` on every success of a shared-state call."""

    def __init__(self, count: Callable[[str], None] | None = None, *, quiet_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._count = count
        self.quiet_s = quiet_s
        self._clock = clock
        self._failing: dict[str, float] = {}  # op -> when its last warning was logged
        self.failures = 0

    def failed(self, op: str, exc: BaseException, *, refused: bool = False) -> None:
        """`refused`: the caller fails closed for this op (the request is refused, not served without it)."""
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
            log.warning("shared state (Redis) failed for %s%s: %s: %s; %s", op,
                        "" if last is None else " (still failing)", type(exc).__name__, exc,
                        "refusing requests that need it (fail closed)" if refused
                        else "serving without it (fail open)")

    def recovered(self, op: str) -> None:
        if self._failing and self._failing.pop(op, None) is not None:
            log.info("shared state (Redis) works again for %s", op)


class RedisOutError(ConnectionError):
    """A shared-state call not sent: Redis failed less than `retry_s` ago (an outage error: callers fall back)."""


class RedisGate:
    """The process's one "Redis is out" switch, in front of every Redis command (`guard`).

    `tripped(exc)` on an outage error closes Redis off for `retry_s`: `open_for()` is then the seconds left
    and `guard` raises `RedisOutError` instead of waiting on the socket, so a hung Redis costs one
    `[redis] timeout_s` per `retry_s` per process instead of one per call. When the time is up the next
    call probes Redis (the others keep skipping while it is in flight); `ok()` (any success) reopens it.
    """

    def __init__(self, retry_s: float = 1.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_s = retry_s
        self._clock = clock
        self._until: float | None = None  # None: Redis is in use; else it is skipped until then
        self._cause: BaseException | None = None

    def open_for(self) -> float:
        """Seconds Redis is still skipped for; 0.0: call it (after an outage this caller is the probe)."""
        if self._until is None:
            return 0.0
        left = self._until - self._clock()
        if left > 0:
            return left
        self._until = self._clock() + self.retry_s  # the probe: the others skip until it answers or fails
        return 0.0

    def tripped(self, exc: BaseException) -> None:
        self._until, self._cause = self._clock() + self.retry_s, exc

    def ok(self) -> None:
        self._until = self._cause = None

    def guard(self, call: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Coroutine[Any, Any, T]]:
        """`call` (a Redis client's `execute_command`, which every command and script goes through) behind the gate."""
        outage = outage_errors()

        async def guarded(*args: Any, **kwargs: Any) -> T:
            left = self.open_for()
            if left > 0:
                cause = self._cause
                raise RedisOutError(f"not tried for {left:.1f}s after {type(cause).__name__}: {cause}")
            try:
                result = await call(*args, **kwargs)
            except outage as exc:
                self.tripped(exc)
                raise
            self.ok()
            return result

        return guarded

"""Retries, deadlines, circuit breakers and failover, wrapped around plain providers.

`FailoverExecutor` tries an ordered list of deployments (across providers), skips open circuits, retries
retryable errors with jittered backoff (honouring `Retry-After`), and never runs past the request
deadline: every attempt is bounded by `min(deployment.timeout_s, time left)`, and a stream is bounded as
a whole, so a server trickling one byte a second cannot keep a request alive. Each try becomes an
:class:`Attempt`, so the decision log can show exactly what happened.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gearshift.errors import (
    UPSTREAM_FAILURES,
    ProviderError,
    ProviderResponseTooLargeError,
    UpstreamError,
    UpstreamRateLimitedError,
)
from gearshift.providers.attempts import Attempt, RetryPolicy, attempt_timeout_error, failure_kind, make_attempt
from gearshift.providers.base import ChatProvider, ChatResult, Deployment
from gearshift.providers.breaker import BreakerRegistry
from gearshift.providers.streaming import StreamExecution, open_stream


@dataclass(slots=True)
class ExecutionResult:
    """A successful non-streamed request: the answer, the deployment that gave it, and every try on the way."""

    result: ChatResult
    deployment: Deployment
    attempts: list[Attempt] = field(default_factory=list)


class FailoverExecutor:
    """Runs one request against an ordered list of deployments. See the module docstring."""

    def __init__(self, providers: Mapping[str, ChatProvider], retry: RetryPolicy | None = None,
                 breakers: BreakerRegistry | None = None, *, rng: random.Random | None = None,
                 midstream_failover: bool = False) -> None:
        self.providers = dict(providers)
        self.midstream_failover = midstream_failover  # see providers/continuation.py
        self.retry = retry or RetryPolicy()
        self.breakers = breakers or BreakerRegistry()
        self.rng = rng or random.Random()

    def provider_for(self, dep: Deployment) -> ChatProvider:
        provider = self.providers.get(dep.provider)
        if provider is None:
            raise ProviderError(f"no provider {dep.provider!r} for deployment {dep.name!r}", retryable=False)
        return provider

    async def record_outcome(self, dep: Deployment, exc: ProviderError | None) -> None:
        """Feed the breaker: retryable failures count against the deployment; client-side 4xx do not."""
        breaker = self.breakers.get(dep.name)
        if exc is None:
            await breaker.record_success()
        elif exc.retryable:
            await breaker.record_failure()

    async def backoff(self, retry: int, exc: ProviderError, deadline: float) -> bool:
        """Sleep before the next retry; False when the retry would not fit before the deadline."""
        delay = self.retry.delay(retry, exc.retry_after_s, self.rng)
        loop = asyncio.get_running_loop()
        if loop.time() + delay >= deadline:
            return False
        await asyncio.sleep(delay)
        return True

    def fail(self, attempts: list[Attempt], deadline_hit: bool) -> UpstreamError:
        """The error the client gets, by the status table `errors.UPSTREAM_FAILURES`."""
        kind = failure_kind(attempts, deadline_hit)
        tried = [a for a in attempts if a.outcome != "skipped_open_circuit"]
        rows = [a.to_dict() for a in attempts]
        if not tried:
            msg = "every deployment's circuit is open"
        elif kind == "bad_request":  # the upstream's own words: the client has something to fix
            msg = tried[-1].error_message or "the upstream refused the request"
        else:
            last = tried[-1]
            msg = f"all deployments failed ({len(tried)} attempts); last: {last.error_message}"
        if deadline_hit:
            msg += " (request deadline reached)"
        if kind == "rate_limited":
            waits = [a.retry_after_s for a in tried if a.retry_after_s is not None]
            return UpstreamRateLimitedError(msg, attempts=rows, retry_after_s=min(waits) if waits else None)
        return UPSTREAM_FAILURES[kind](msg, attempts=rows)

    async def complete(self, deployments: Sequence[Deployment], request: dict[str, Any], *,
                       deadline_s: float, attempts: list[Attempt] | None = None) -> ExecutionResult:
        """`attempts`: the caller's list, appended to as tries end, so they survive a cancellation."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        attempts = [] if attempts is None else attempts
        for dep in deployments:
            if not await self.breakers.get(dep.name).allow_request():
                attempts.append(make_attempt(dep, "skipped_open_circuit", 0, None))
                continue
            for retry in range(self.retry.max_retries + 1):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise self.fail(attempts, True)
                start = time.perf_counter()
                limit = min(dep.timeout_s, remaining)
                try:
                    async with asyncio.timeout(limit):
                        result = await self.provider_for(dep).complete(dep, request)
                except ProviderError as exc:
                    err = exc
                except TimeoutError:
                    err = attempt_timeout_error(dep, limit)
                except asyncio.CancelledError:  # the client left, the deadline passed, or shutdown
                    attempts.append(make_attempt(dep, "cancelled", retry, start))
                    raise
                else:
                    attempts.append(make_attempt(dep, "ok", retry, start))
                    await self.record_outcome(dep, None)
                    return ExecutionResult(result, dep, attempts)
                attempts.append(make_attempt(dep, "error", retry, start, err))
                await self.record_outcome(dep, err)
                if isinstance(err, ProviderResponseTooLargeError):  # never replaced silently by another answer
                    raise self.fail(attempts, False)
                if not err.retryable or retry == self.retry.max_retries:
                    break
                if not await self.backoff(retry, err, deadline):
                    break
        raise self.fail(attempts, loop.time() >= deadline)

    async def stream(self, deployments: Sequence[Deployment], request: dict[str, Any], *,
                     deadline_s: float, attempts: list[Attempt] | None = None) -> StreamExecution:
        """Fail over until one deployment produced its first content chunk (or a complete empty answer).

        Raises `UpstreamError` when none did, so the caller can still answer with an HTTP error status.
        """
        return await open_stream(self, deployments, request, deadline_s=deadline_s, attempts=attempts)


__all__ = ["Attempt", "ExecutionResult", "FailoverExecutor", "RetryPolicy", "StreamExecution"]

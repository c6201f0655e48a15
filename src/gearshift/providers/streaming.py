"""Streaming failover: transparent until the first content chunk, then committed to one deployment.

Before any generated text reached the client, a failed or slow deployment is simply replaced by the next
(role-only header chunks are held back, so the client never sees two beginnings). After the first
token, switching would duplicate or contradict text, so a failure raises
`ProviderError(after_first_token=True)` and the caller ends the stream with an error event. The whole
stream, not each read, is bounded by the request deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from gearshift.errors import ProviderError, ProviderResponseTooLargeError, ProviderTimeoutError, UpstreamError
from gearshift.providers.attempts import (
    Attempt,
    Outcome,
    RetryPolicy,
    attempt_timeout_error,
    make_attempt,
    ms_since,
)
from gearshift.providers.base import ChatProvider, Deployment, StreamChunk
from gearshift.providers.breaker import BreakerRegistry


class FailoverExecutor(Protocol):
    """What a stream needs of `reliability.FailoverExecutor` (which opens it): breakers, retries, the providers.

    A protocol here so the executor's module can import this one and not the other way round."""

    breakers: BreakerRegistry
    retry: RetryPolicy

    def provider_for(self, dep: Deployment) -> ChatProvider: ...

    async def record_outcome(self, dep: Deployment, exc: ProviderError | None) -> None: ...

    async def backoff(self, retry: int, exc: ProviderError, deadline: float) -> bool: ...

    def fail(self, attempts: list[Attempt], deadline_hit: bool) -> UpstreamError: ...


def has_content(data: Mapping[str, Any] | None) -> bool:
    """A chunk payload carrying generated output (text or tool calls) rather than a role header or keep-alive."""
    for choice in (data or {}).get("choices") or []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls") or delta.get("function_call")):
            return True
    return False


class StreamExecution:
    """An opened stream. Iterate it once (`async for chunk in execution`); the last chunk has `done=True`.

    `deployment` is the deployment serving the stream; `attempts` gains its final entry (ok, error or
    cancelled) when iteration ends. Always iterate to the end or call :meth:`aclose` (or use `async with`),
    which closes the upstream response.
    """

    def __init__(self, executor: FailoverExecutor, deployment: Deployment, upstream: AsyncIterator[StreamChunk],
                 prefix: list[StreamChunk], attempts: list[Attempt], *, deadline: float, retry: int,
                 started: float, ttft_ms: float) -> None:
        self._executor = executor
        self.deployment = deployment
        self._upstream = upstream
        self._prefix = prefix
        self.attempts = attempts
        self._deadline = deadline
        self._retry = retry
        self._started = started
        self.ttft_ms = ttft_ms
        self.finished = False
        self.error: ProviderError | None = None
        self._iterating = False

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        if self._iterating:
            raise RuntimeError("a StreamExecution can be iterated only once")
        self._iterating = True
        return self._iterate()

    async def __aenter__(self) -> StreamExecution:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _finish(self, err: ProviderError | None, *, cancelled: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        self.error = err
        dep = self.deployment
        outcome: Outcome = "cancelled" if cancelled else ("error" if err is not None else "ok")
        self.attempts.append(make_attempt(dep, outcome, self._retry, self._started, err))
        if not cancelled:
            await self._executor.record_outcome(dep, err)

    async def _iterate(self) -> AsyncGenerator[StreamChunk, None]:
        loop = asyncio.get_running_loop()
        try:
            for chunk in self._prefix:
                yield chunk
                if chunk.done:
                    await self._finish(None)
                    return
            self._prefix = []
            while True:
                remaining = self._deadline - loop.time()
                try:
                    async with asyncio.timeout(max(remaining, 0.0)):
                        chunk = await anext(self._upstream)
                except TimeoutError:
                    err: ProviderError = ProviderTimeoutError(
                        f"upstream {self.deployment.name!r} stream passed the request deadline", retryable=True,
                        after_first_token=True)
                    await self._finish(err)
                    raise err from None
                except StopAsyncIteration:
                    err = ProviderError(f"upstream {self.deployment.name!r} stream ended without [DONE]",
                                        retryable=True, after_first_token=True)
                    await self._finish(err)
                    raise err from None
                except ProviderError as exc:
                    exc.after_first_token = True
                    await self._finish(exc)
                    raise
                yield chunk
                if chunk.done:
                    await self._finish(None)
                    return
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop reading and close the upstream response (client went away, or iteration ended)."""
        close = getattr(self._upstream, "aclose", None)
        if close is not None:
            await close()
        await self._finish(None, cancelled=True)


async def _first_content(upstream: AsyncIterator[StreamChunk], limit: float) -> list[StreamChunk]:
    """Read until the first content chunk (or `[DONE]`), within `limit` seconds."""
    prefix: list[StreamChunk] = []
    async with asyncio.timeout(limit):
        while True:
            try:
                chunk = await anext(upstream)
            except StopAsyncIteration:
                raise ProviderError("upstream stream ended without [DONE]", retryable=True) from None
            prefix.append(chunk)
            if chunk.done or has_content(chunk.data):
                return prefix


async def open_stream(executor: FailoverExecutor, deployments: Sequence[Deployment], request: dict[str, Any], *,
                      deadline_s: float, attempts: list[Attempt] | None = None) -> StreamExecution:
    """See `FailoverExecutor.stream`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    attempts = [] if attempts is None else attempts
    for dep in deployments:
        if not await executor.breakers.get(dep.name).allow_request():
            attempts.append(make_attempt(dep, "skipped_open_circuit", 0, None))
            continue
        for retry in range(executor.retry.max_retries + 1):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise executor.fail(attempts, True)
            start = time.perf_counter()
            limit = min(dep.timeout_s, remaining)
            upstream: AsyncIterator[StreamChunk] | None = None
            try:
                upstream = executor.provider_for(dep).stream(dep, request)
                prefix = await _first_content(upstream, limit)
            except ProviderError as exc:
                err = exc
            except TimeoutError:
                err = attempt_timeout_error(dep, limit)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):  # the client left, the deadline passed, or shutdown
                    attempts.append(make_attempt(dep, "cancelled", retry, start))
                await _close(upstream)
                raise
            else:
                return StreamExecution(executor, dep, upstream, prefix, attempts, deadline=deadline, retry=retry,
                                       started=start, ttft_ms=ms_since(start))
            await _close(upstream)
            attempts.append(make_attempt(dep, "error", retry, start, err))
            await executor.record_outcome(dep, err)
            if isinstance(err, ProviderResponseTooLargeError):  # never replaced silently by another answer
                raise executor.fail(attempts, False)
            if not err.retryable or retry == executor.retry.max_retries:
                break
            if not await executor.backoff(retry, err, deadline):
                break
    raise executor.fail(attempts, loop.time() >= deadline)


async def _close(upstream: AsyncIterator[StreamChunk] | None) -> None:
    close = getattr(upstream, "aclose", None)
    if close is not None:
        await close()

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
from gearshift.providers.continuation import can_continue, continuation_request


class FailoverExecutor(Protocol):
    """What a stream needs of `reliability.FailoverExecutor` (which opens it): breakers, retries, the providers.

    A protocol here so the executor's module can import this one and not the other way round."""

    breakers: BreakerRegistry
    retry: RetryPolicy
    midstream_failover: bool

    def provider_for(self, dep: Deployment) -> ChatProvider: ...

    async def record_outcome(self, dep: Deployment, exc: ProviderError | None) -> None: ...

    async def backoff(self, retry: int, exc: ProviderError, deadline: float) -> bool: ...

    def fail(self, attempts: list[Attempt], deadline_hit: bool) -> UpstreamError: ...


def _carries_more(data: Mapping[str, Any] | None) -> bool:
    """A chunk that is more than a role header: a finish reason or usage."""
    if not data:
        return False
    return bool(data.get("usage")) or any(isinstance(c, dict) and c.get("finish_reason")
                                          for c in data.get("choices") or [])


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
                 started: float, ttft_ms: float, request: dict[str, Any] | None = None,
                 later: Sequence[Deployment] = ()) -> None:
        self._executor = executor
        self._request = request or {}
        self._later = [d for d in later if can_continue(d)]  # where a cut answer may continue (mid-stream failover)
        self._text: list[str] | None = []  # the answer so far (choice 0); None once continuing could not be exact
        self._id: Any = None  # the first stream's chunk id, kept on a continuation's chunks: one answer
        self.continued = 0  # how many times the answer continued on another deployment
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
            while True:
                err: ProviderError | None = None
                if self._prefix:
                    chunk = self._prefix.pop(0)
                else:
                    try:
                        async with asyncio.timeout(max(self._deadline - loop.time(), 0.0)):
                            chunk = await anext(self._upstream)
                    except TimeoutError:
                        err = ProviderTimeoutError(
                            f"upstream {self.deployment.name!r} stream passed the request deadline", retryable=True,
                            after_first_token=True)
                    except StopAsyncIteration:
                        err = ProviderError(f"upstream {self.deployment.name!r} stream ended without [DONE]",
                                            retryable=True, after_first_token=True)
                    except ProviderError as exc:
                        exc.after_first_token = True
                        err = exc
                if err is not None:
                    if await self._continue_elsewhere(err):
                        continue
                    await self._finish(err)
                    raise err
                yield self._seen(chunk)
                if chunk.done:
                    await self._finish(None)
                    return
        finally:
            await self.aclose()

    def _seen(self, chunk: StreamChunk) -> StreamChunk:
        """Keep the answer's text (for a continuation) and give a continuation's chunks the first stream's id."""
        data = chunk.data
        if data is None:
            return chunk
        if self._id is None:
            self._id = data.get("id")
        elif self.continued and data.get("id") != self._id:
            chunk = StreamChunk({**data, "id": self._id}, chunk.done)
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                self._text = None  # several choices: a prefix cannot continue them all
            elif self._text is not None and isinstance(choice.get("delta"), dict):
                content = choice["delta"].get("content")
                if isinstance(content, str):
                    self._text.append(content)
                elif choice["delta"].get("tool_calls") or choice["delta"].get("function_call"):
                    self._text = None  # a tool call cannot be continued as text
        return chunk

    async def _continue_elsewhere(self, err: ProviderError) -> bool:
        """Mid-stream failover: re-ask the next deployment that can continue a prefix with the answer so far;
        True when one took over (its header chunks dropped: the client sees one answer going on)."""
        ex = self._executor
        loop = asyncio.get_running_loop()
        if (not ex.midstream_failover or not self._later or self._text is None
                or isinstance(err, ProviderResponseTooLargeError) or self._deadline - loop.time() <= 0):
            return False
        self.attempts.append(make_attempt(self.deployment, "error", self._retry, self._started, err))
        await ex.record_outcome(self.deployment, err)
        await _close(self._upstream)
        partial = "".join(self._text)
        while self._later:
            dep = self._later.pop(0)
            try:
                nxt = await open_stream(ex, [dep], continuation_request(self._request, partial, dep),
                                        deadline_s=self._deadline - loop.time(), attempts=self.attempts)
            except UpstreamError:
                continue
            self.deployment, self._upstream, self._retry, self._started = dep, nxt._upstream, nxt._retry, nxt._started
            self._prefix = [c for c in nxt._prefix if c.done or has_content(c.data) or _carries_more(c.data)]
            self.continued += 1
            return True
        self.finished, self.error = True, err  # the failed try is recorded above; every continuation failed too
        raise err

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
                later = list(deployments[list(deployments).index(dep) + 1:])
                return StreamExecution(executor, dep, upstream, prefix, attempts, deadline=deadline, retry=retry,
                                       started=start, ttft_ms=ms_since(start), request=request, later=later)
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

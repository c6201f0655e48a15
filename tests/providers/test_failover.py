"""FailoverExecutor against real HTTP servers: every fault either fails over or fails cleanly in time."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from gearshift.errors import ProviderError, UpstreamError
from gearshift.providers.base import Deployment, StreamChunk
from gearshift.providers.breaker import BreakerConfig, BreakerRegistry
from gearshift.providers.openai_compat import OpenAICompatProvider
from gearshift.providers.reliability import FailoverExecutor, RetryPolicy
from support.fake_upstream import Behaviour, FakeUpstream, closed_port

SECRET = "sk-failover-SECRET-42"
REQUEST = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
FAST_RETRY = RetryPolicy(max_retries=1, base_delay_s=0.01, max_delay_s=0.02, max_retry_after_s=0.3)

FAULTS = {
    "429": Behaviour.status_code(429),
    "500": Behaviour.status_code(500),
    "502": Behaviour.status_code(502),
    "503": Behaviour.status_code(503),
    "400": Behaviour.status_code(400),
    "error_body_200": Behaviour.error_body_200(),
    "no_choices": Behaviour.no_choices(),
    "malformed_json": Behaviour.malformed_json(),
    "slow_headers": Behaviour(latency_s=5.0),
    "stall_body": Behaviour.stall_body(),
    "trickle": Behaviour.trickle(bytes_per_tick=1, tick_s=0.05),
    "oversized": Behaviour.oversized(100 * 1024),
    "reset": Behaviour.reset(),
}
STREAM_FAULTS = {
    **{k: FAULTS[k] for k in ("429", "503", "400", "slow_headers", "reset")},
    "malformed_sse": Behaviour.malformed_sse(),
    "error_event": Behaviour.error_event(),
    "cut_before_text": Behaviour.cut_stream(after_chunks=1),
    "stall_before_text": Behaviour.stall_stream(after_chunks=1),
}


@pytest.fixture
def good() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="healthy answer") as up:
        yield up


@pytest.fixture
async def openai() -> AsyncIterator[OpenAICompatProvider]:
    p = OpenAICompatProvider(max_response_bytes=32 * 1024)
    yield p
    await p.aclose()


def deployment(name: str, url: str, *, timeout_s: float = 0.3, provider: str = "openai") -> Deployment:
    return Deployment(name=name, provider=provider, model=f"model-{name}", base_url=url, api_key=SECRET,
                      timeout_s=timeout_s)


def executor(openai: OpenAICompatProvider, retry: RetryPolicy = FAST_RETRY,
             breakers: BreakerRegistry | None = None) -> FailoverExecutor:
    return FailoverExecutor({"openai": openai}, retry, breakers, rng=random.Random(0))


@pytest.mark.parametrize("fault", [f for f in FAULTS if f != "oversized"])  # a cut answer: see below
async def test_complete_fails_over_to_a_healthy_deployment(fault: str, openai: OpenAICompatProvider,
                                                           fake_upstream: FakeUpstream, good: FakeUpstream) -> None:
    fake_upstream.default = FAULTS[fault]
    deps = [deployment("bad", fake_upstream.base_url), deployment("good", good.base_url)]
    start = time.perf_counter()
    res = await executor(openai).complete(deps, dict(REQUEST), deadline_s=2.0)
    assert time.perf_counter() - start < 2.0
    assert res.deployment.name == "good"
    assert res.result.body["choices"][0]["message"]["content"] == "healthy answer"
    assert good.chat_requests[-1].json["model"] == "model-good"
    assert [a.outcome for a in res.attempts][-1] == "ok" and len(res.attempts) >= 2
    assert all(a.outcome == "error" and a.deployment == "bad" for a in res.attempts[:-1])
    assert all(SECRET not in (a.error_message or "") for a in res.attempts)


@pytest.mark.parametrize("fault", ["503", "stall_body", "trickle", "malformed_json"])
async def test_complete_raises_upstream_error_within_the_deadline(fault: str, openai: OpenAICompatProvider,
                                                                  fake_upstream: FakeUpstream) -> None:
    fake_upstream.default = FAULTS[fault]
    deps = [deployment("a", fake_upstream.base_url, timeout_s=5.0),
            deployment("b", f"http://127.0.0.1:{closed_port()}/v1", timeout_s=5.0)]
    start = time.perf_counter()
    with pytest.raises(UpstreamError) as info:
        await executor(openai, RetryPolicy(max_retries=5, base_delay_s=0.05)).complete(deps, dict(REQUEST),
                                                                                        deadline_s=0.6)
    assert time.perf_counter() - start < 0.9
    attempts = info.value.attempts
    assert attempts and all(a["outcome"] == "error" for a in attempts)
    assert SECRET not in str(attempts) and SECRET not in info.value.message


async def test_retries_honour_retry_after(openai: OpenAICompatProvider, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(Behaviour.status_code(429, retry_after="0.25"))
    deps = [deployment("only", fake_upstream.base_url)]
    res = await executor(openai).complete(deps, dict(REQUEST), deadline_s=2.0)
    first, second = fake_upstream.chat_requests
    assert second.received_at - first.received_at >= 0.25
    assert [(a.outcome, a.retry, a.upstream_status) for a in res.attempts] == [("error", 0, 429), ("ok", 1, None)]


async def test_retry_after_past_the_deadline_fails_over_instead_of_waiting(
        openai: OpenAICompatProvider, fake_upstream: FakeUpstream, good: FakeUpstream) -> None:
    fake_upstream.default = Behaviour.status_code(429, retry_after="0.3")
    deps = [deployment("bad", fake_upstream.base_url), deployment("good", good.base_url)]
    start = time.perf_counter()
    res = await executor(openai).complete(deps, dict(REQUEST), deadline_s=0.2)
    assert time.perf_counter() - start < 0.2 and res.deployment.name == "good"
    assert len(fake_upstream.chat_requests) == 1


async def test_non_retryable_error_is_not_retried_but_fails_over(
        openai: OpenAICompatProvider, fake_upstream: FakeUpstream, good: FakeUpstream) -> None:
    fake_upstream.default = Behaviour.status_code(401)
    deps = [deployment("bad", fake_upstream.base_url), deployment("good", good.base_url)]
    res = await executor(openai).complete(deps, dict(REQUEST), deadline_s=2.0)
    assert len(fake_upstream.chat_requests) == 1 and res.deployment.name == "good"


async def test_open_circuit_is_skipped_then_probed_and_closed(
        openai: OpenAICompatProvider, fake_upstream: FakeUpstream, good: FakeUpstream) -> None:
    now = [0.0]
    breakers = BreakerRegistry(config=BreakerConfig(failure_threshold=2, cooldown_s=30.0), clock=lambda: now[0])
    ex = executor(openai, RetryPolicy(max_retries=0), breakers)
    deps = [deployment("bad", fake_upstream.base_url), deployment("good", good.base_url)]
    fake_upstream.default = Behaviour.status_code(500)
    for _ in range(2):
        await ex.complete(deps, dict(REQUEST), deadline_s=2.0)
    res = await ex.complete(deps, dict(REQUEST), deadline_s=2.0)
    assert [a.outcome for a in res.attempts] == ["skipped_open_circuit", "ok"]
    assert len(fake_upstream.chat_requests) == 2
    fake_upstream.default = Behaviour()
    now[0] += 30.0
    res = await ex.complete(deps, dict(REQUEST), deadline_s=2.0)  # the half-open probe succeeds
    assert res.deployment.name == "bad"
    res = await ex.complete(deps, dict(REQUEST), deadline_s=2.0)
    assert res.deployment.name == "bad" and [a.outcome for a in res.attempts] == ["ok"]


async def test_all_circuits_open_is_an_upstream_error(openai: OpenAICompatProvider,
                                                      fake_upstream: FakeUpstream) -> None:
    breakers = BreakerRegistry(config=BreakerConfig(failure_threshold=1))
    await breakers.get("a").record_failure()
    with pytest.raises(UpstreamError, match="circuit is open") as info:
        await executor(openai, breakers=breakers).complete([deployment("a", fake_upstream.base_url)], dict(REQUEST),
                                                           deadline_s=1.0)
    assert info.value.attempts[0]["outcome"] == "skipped_open_circuit"
    assert fake_upstream.chat_requests == []


async def text_of(execution: AsyncIterator[StreamChunk]) -> str:
    parts = []
    async for chunk in execution:
        if chunk.data:
            parts += [c["delta"].get("content") or "" for c in chunk.data["choices"]]
    return "".join(parts)


@pytest.mark.parametrize("fault", list(STREAM_FAULTS))
async def test_stream_fails_over_before_the_first_token(fault: str, openai: OpenAICompatProvider,
                                                        fake_upstream: FakeUpstream, good: FakeUpstream) -> None:
    fake_upstream.default = STREAM_FAULTS[fault]
    deps = [deployment("bad", fake_upstream.base_url), deployment("good", good.base_url)]
    start = time.perf_counter()
    execution = await executor(openai).stream(deps, dict(REQUEST), deadline_s=2.0)
    assert execution.deployment.name == "good"
    assert await text_of(execution) == "healthy answer"
    assert time.perf_counter() - start < 2.0
    assert [a.outcome for a in execution.attempts][-1] == "ok"
    assert {a.deployment for a in execution.attempts[:-1]} == {"bad"}


async def test_stream_all_failing_raises_before_any_chunk(openai: OpenAICompatProvider,
                                                          fake_upstream: FakeUpstream) -> None:
    fake_upstream.default = Behaviour.cut_stream(after_chunks=1)
    with pytest.raises(UpstreamError) as info:
        await executor(openai).stream([deployment("a", fake_upstream.base_url)], dict(REQUEST), deadline_s=1.0)
    assert len(info.value.attempts) == 2  # one retry


@pytest.mark.parametrize("fault", [Behaviour.cut_stream(after_chunks=3),
                                   Behaviour.cut_stream(after_chunks=3, abort=True),
                                   Behaviour.stall_stream(after_chunks=3)])
async def test_failure_after_the_first_token_is_an_error_not_a_success(
        fault: Behaviour, openai: OpenAICompatProvider, fake_upstream: FakeUpstream, good: FakeUpstream) -> None:
    fake_upstream.default = fault
    deps = [deployment("bad", fake_upstream.base_url, timeout_s=5.0), deployment("good", good.base_url)]
    start = time.perf_counter()
    execution = await executor(openai).stream(deps, dict(REQUEST), deadline_s=0.5)
    assert execution.deployment.name == "bad"
    with pytest.raises(ProviderError) as info:
        await text_of(execution)
    assert info.value.after_first_token
    assert time.perf_counter() - start < 0.9  # the deadline bounds the whole stream, not each read
    assert execution.attempts[-1].outcome == "error" and execution.attempts[-1].after_first_token
    assert good.chat_requests == []


async def test_client_disconnect_closes_the_upstream_response(openai: OpenAICompatProvider,
                                                              fake_upstream: FakeUpstream) -> None:
    fake_upstream.default = Behaviour.stall_stream(after_chunks=3)
    execution = await executor(openai).stream([deployment("a", fake_upstream.base_url, timeout_s=5.0)],
                                              dict(REQUEST), deadline_s=5.0)

    async def consume() -> None:
        async for _ in execution:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert execution.attempts[-1].outcome == "cancelled"
    connector = openai._session.connector if openai._session else None
    assert connector is not None
    await asyncio.sleep(0)
    assert sum(len(v) for v in connector._conns.values()) == 0  # not returned to the pool half-read


async def test_complete_cancellation_propagates(openai: OpenAICompatProvider, fake_upstream: FakeUpstream) -> None:
    fake_upstream.default = Behaviour(latency_s=5.0)
    task = asyncio.create_task(executor(openai).complete([deployment("a", fake_upstream.base_url, timeout_s=5.0)],
                                                         dict(REQUEST), deadline_s=5.0))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

"""OpenAICompatProvider against a real HTTP server: what it sends, and how it classifies each failure."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from email.utils import formatdate

import pytest

from gearshift.errors import ProviderError
from gearshift.providers.base import Deployment, StreamChunk
from gearshift.providers.openai_compat import OpenAICompatProvider, parse_retry_after
from gearshift.providers.streaming import has_content
from support.fake_upstream import Behaviour, FakeUpstream, closed_port

SECRET = "sk-test-SECRET-0123456789"
REQUEST = {"model": "client-alias", "messages": [{"role": "user", "content": "hello there"}], "temperature": 0.3,
           "user": "u-42"}


@pytest.fixture
async def provider() -> AsyncIterator[OpenAICompatProvider]:
    p = OpenAICompatProvider(max_response_bytes=64 * 1024)
    yield p
    await p.aclose()


def dep(up: FakeUpstream | None = None, *, base_url: str | None = None, timeout_s: float = 2.0) -> Deployment:
    url = base_url or (up.base_url if up else "")
    return Deployment(name="primary", provider="openai", model="fake-large", base_url=url, api_key=SECRET,
                      timeout_s=timeout_s)


async def collect(provider: OpenAICompatProvider, d: Deployment) -> list[StreamChunk]:
    return [c async for c in provider.stream(d, dict(REQUEST))]


async def test_complete_sends_auth_rewrites_model_and_passes_fields(
        provider: OpenAICompatProvider, fake_upstream: FakeUpstream) -> None:
    result = await provider.complete(dep(fake_upstream), dict(REQUEST))
    assert result.body["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    assert result.body["usage"]["completion_tokens"] == 5
    sent = fake_upstream.chat_requests[-1]
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"
    assert sent.json["model"] == "fake-large"
    assert sent.json["temperature"] == 0.3 and sent.json["user"] == "u-42"
    assert "stream" not in sent.json


async def test_no_auth_header_without_key(provider: OpenAICompatProvider, fake_upstream: FakeUpstream) -> None:
    d = Deployment(name="open", provider="openai", model="m", base_url=fake_upstream.base_url)
    await provider.complete(d, dict(REQUEST))
    assert "Authorization" not in fake_upstream.chat_requests[-1].headers


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (408, True), (409, True), (429, True), (500, True), (502, True),
     (503, True)],
)
async def test_status_codes_are_classified(provider: OpenAICompatProvider, fake_upstream: FakeUpstream,
                                           status: int, retryable: bool) -> None:
    fake_upstream.script(Behaviour.status_code(status))
    with pytest.raises(ProviderError) as info:
        await provider.complete(dep(fake_upstream), dict(REQUEST))
    assert info.value.upstream_status == status
    assert info.value.retryable is retryable
    assert f"fake upstream status {status}" in info.value.message


async def test_retry_after_seconds_and_http_date(provider: OpenAICompatProvider, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(Behaviour.status_code(429, retry_after="3"),
                         Behaviour.status_code(503, retry_after=formatdate(time.time() + 60, usegmt=True)))
    with pytest.raises(ProviderError) as first:
        await provider.complete(dep(fake_upstream), dict(REQUEST))
    assert first.value.retry_after_s == 3.0
    with pytest.raises(ProviderError) as second:
        await provider.complete(dep(fake_upstream), dict(REQUEST))
    assert second.value.retry_after_s is not None and 55 < second.value.retry_after_s <= 60
    assert parse_retry_after("garbage") is None


@pytest.mark.parametrize(
    ("behaviour", "match"),
    [(Behaviour.malformed_json(), "not JSON"), (Behaviour.error_body_200(), "upstream exploded"),
     (Behaviour.no_choices(), "no choices")],
)
async def test_a_200_that_is_not_a_completion_is_an_error(provider: OpenAICompatProvider, fake_upstream: FakeUpstream,
                                                          behaviour: Behaviour, match: str) -> None:
    fake_upstream.script(behaviour)
    with pytest.raises(ProviderError, match=match) as info:
        await provider.complete(dep(fake_upstream), dict(REQUEST))
    assert info.value.upstream_status == 200


async def test_oversized_response_is_refused(provider: OpenAICompatProvider, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(Behaviour.oversized(200 * 1024))
    with pytest.raises(ProviderError, match="limit") as info:
        await provider.complete(dep(fake_upstream), dict(REQUEST))
    assert info.value.retryable is False


async def test_connection_refused_and_reset_are_retryable(provider: OpenAICompatProvider,
                                                          fake_upstream: FakeUpstream) -> None:
    with pytest.raises(ProviderError) as refused:
        await provider.complete(dep(base_url=f"http://127.0.0.1:{closed_port()}/v1"), dict(REQUEST))
    assert refused.value.retryable and refused.value.upstream_status is None
    fake_upstream.script(Behaviour.reset())
    with pytest.raises(ProviderError) as reset:
        await provider.complete(dep(fake_upstream), dict(REQUEST))
    assert reset.value.retryable


async def test_stalled_body_times_out(provider: OpenAICompatProvider, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(Behaviour.stall_body())
    start = time.perf_counter()
    with pytest.raises(ProviderError, match="timed out"):
        await provider.complete(dep(fake_upstream, timeout_s=0.2), dict(REQUEST))
    assert time.perf_counter() - start < 1.0


async def test_stream_yields_chunks_then_done(provider: OpenAICompatProvider, fake_upstream: FakeUpstream) -> None:
    chunks = await collect(provider, dep(fake_upstream))
    assert chunks[-1].done and chunks[-1].data is None
    text = "".join(c.data["choices"][0]["delta"].get("content", "") for c in chunks[:-1] if c.data)
    assert text == "Hello from the fake upstream."
    assert fake_upstream.chat_requests[-1].json["stream"] is True


@pytest.mark.parametrize(
    ("behaviour", "after_first_token"),
    [(Behaviour.cut_stream(after_chunks=3), True), (Behaviour.cut_stream(after_chunks=3, abort=True), True),
     (Behaviour.cut_stream(after_chunks=1), False), (Behaviour.malformed_sse(), False),
     (Behaviour.error_event(), False)],
)
async def test_broken_streams_raise(provider: OpenAICompatProvider, fake_upstream: FakeUpstream,
                                    behaviour: Behaviour, after_first_token: bool) -> None:
    fake_upstream.script(behaviour)
    got: list[StreamChunk] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in provider.stream(dep(fake_upstream), dict(REQUEST)):
            got.append(chunk)
    assert not any(c.done for c in got)
    assert info.value.after_first_token is after_first_token


async def test_stream_error_status_is_classified(provider: OpenAICompatProvider, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(Behaviour.status_code(429, retry_after="2"))
    with pytest.raises(ProviderError) as info:
        await collect(provider, dep(fake_upstream))
    assert info.value.upstream_status == 429 and info.value.retry_after_s == 2.0


async def test_api_key_never_in_messages_or_reprs(provider: OpenAICompatProvider, fake_upstream: FakeUpstream) -> None:
    leaky = f'{{"error": {{"message": "Incorrect API key provided: {SECRET}"}}}}'.encode()
    fake_upstream.script(Behaviour.status_code(401, body=leaky))
    d = dep(fake_upstream)
    with pytest.raises(ProviderError) as info:
        await provider.complete(d, dict(REQUEST))
    assert "Incorrect API key" in info.value.message
    for text in (str(info.value), repr(info.value), info.value.message, repr(d), repr(provider)):
        assert SECRET not in text


@pytest.mark.parametrize(("data", "content"), [
    ({"choices": [{"delta": {"role": "assistant"}}]}, False), ({"choices": [{"delta": {"content": "hi"}}]}, True),
    ({"choices": [{"delta": {"tool_calls": [{"index": 0}]}}]}, True), ({"choices": ["junk", {"delta": "x"}]}, False),
    ({"choices": None}, False), (None, False),
])
def test_content_detection_tolerates_odd_chunk_shapes(data: dict[str, object] | None, content: bool) -> None:
    # Decides when streaming failover commits; an odd upstream chunk must not crash it with a non-ProviderError.
    assert has_content(data) is content

"""AnthropicProvider against a fake Messages API: the request it sends, the OpenAI answer and stream it gives back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gearshift.errors import ProviderError, UntranslatableError
from gearshift.providers.anthropic import AnthropicProvider
from gearshift.providers.base import Deployment, StreamChunk
from support.fake_formats import FakeAnthropic
from support.fake_upstream import Behaviour

KEY = "sk-ant-test-0123456789abcdef"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}


@pytest.fixture
def anthropic_up() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(answer="Bonjour from Claude") as up:
        yield up


@pytest.fixture
async def provider() -> AsyncIterator[AnthropicProvider]:
    p = AnthropicProvider()
    yield p
    await p.aclose()


def dep(up: FakeAnthropic) -> Deployment:
    return Deployment(name="claude", provider="anthropic", model="claude-haiku-4-5", base_url=up.root_url,
                      api_key=KEY, timeout_s=5.0)


async def collect(provider: AnthropicProvider, d: Deployment, request: dict[str, Any]) -> list[StreamChunk]:
    return [c async for c in provider.stream(d, request)]


async def test_request_carries_system_headers_sampling_and_tools(provider: AnthropicProvider,
                                                                 anthropic_up: FakeAnthropic) -> None:
    await provider.complete(dep(anthropic_up), {
        "model": "alias", "max_tokens": 77, "temperature": 0.2, "stop": "END", "user": "u-1",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}],
        "tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": False})
    sent = anthropic_up.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent.headers
    body = sent.json
    assert body["model"] == "claude-haiku-4-5" and body["max_tokens"] == 77 and body["temperature"] == 0.2
    assert body["system"] == "Be terse."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert body["stop_sequences"] == ["END"] and body["metadata"] == {"user_id": "u-1"}
    assert body["tools"] == [{"name": "get_weather", "description": "Weather in a city",
                              "input_schema": WEATHER["function"]["parameters"]}]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert "stream" not in body


async def test_images_become_base64_and_url_sources(provider: AnthropicProvider, anthropic_up: FakeAnthropic) -> None:
    await provider.complete(dep(anthropic_up), {"model": "m", "max_tokens": 10, "messages": [{"role": "user",
                                                                                             "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]})
    blocks = anthropic_up.requests[-1].json["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                     "data": "iVBORw0KGgo="}}
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}


async def test_tool_results_go_back_in_one_user_turn(provider: AnthropicProvider, anthropic_up: FakeAnthropic) -> None:
    calls = [{"id": f"toolu_{i}", "type": "function",
              "function": {"name": "get_weather", "arguments": json.dumps({"city": city}, separators=(",", ":"))}}
             for i, city in ((1, "Paris"), (2, "Oslo"))]
    result = await provider.complete(dep(anthropic_up), {"model": "m", "max_tokens": 10, "tools": [WEATHER],
                                                         "messages": [
        {"role": "user", "content": "weather in Paris and Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "4C"}]},
        {"role": "user", "content": "and tomorrow?"}]})
    msgs = anthropic_up.requests[-1].json["messages"]  # the fake refuses roles that do not alternate
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}}]
    assert msgs[2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                                  {"type": "tool_result", "tool_use_id": "toolu_2", "content": "4C"},
                                  {"type": "text", "text": "and tomorrow?"}]
    assert result.body["choices"][0]["message"]["content"] == "Bonjour from Claude"


async def test_answer_usage_counts_cache_reads_and_writes(provider: AnthropicProvider,
                                                          anthropic_up: FakeAnthropic) -> None:
    anthropic_up.cache_read, anthropic_up.cache_write = 1000, 200
    result = await provider.complete(dep(anthropic_up), {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    body = result.body
    assert anthropic_up.requests[-1].json["max_tokens"] == 4096  # required upstream: a default when absent
    assert body["object"] == "chat.completion" and body["model"] == "claude-haiku-4-5"
    assert body["choices"][0] == {"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "Bonjour from Claude"}}
    fresh = len(json.dumps(anthropic_up.requests[-1].json["messages"]).split())
    assert body["usage"] == {"prompt_tokens": fresh + 1200, "completion_tokens": 3, "total_tokens": fresh + 1203,
                             "prompt_tokens_details": {"cached_tokens": 1000, "cache_creation_tokens": 200}}


@pytest.mark.parametrize(("stop_reason", "finish"), [("max_tokens", "length"), ("stop_sequence", "stop"),
                                                     ("refusal", "content_filter")])
async def test_stop_reasons_map_to_finish_reasons(provider: AnthropicProvider, anthropic_up: FakeAnthropic,
                                                  stop_reason: str, finish: str) -> None:
    anthropic_up.script(Behaviour(finish_reason=stop_reason))
    result = await provider.complete(dep(anthropic_up), {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert result.body["choices"][0]["finish_reason"] == finish


async def test_tool_use_answer_becomes_tool_calls(provider: AnthropicProvider, anthropic_up: FakeAnthropic) -> None:
    anthropic_up.tool_calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    anthropic_up.script(Behaviour(text=""))
    result = await provider.complete(dep(anthropic_up), {"model": "m", "tools": [WEATHER],
                                                         "messages": [{"role": "user", "content": "weather?"}]})
    choice = result.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "toolu_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]


async def test_stream_translates_events_to_openai_chunks(provider: AnthropicProvider,
                                                         anthropic_up: FakeAnthropic) -> None:
    anthropic_up.cache_read = 50
    chunks = await collect(provider, dep(anthropic_up), {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert anthropic_up.requests[-1].json["stream"] is True
    assert chunks[-1].done and chunks[-1].data is None
    data = [c.data for c in chunks[:-1] if c.data is not None]
    assert data[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert data[0]["id"] == "msg_fake" and data[0]["object"] == "chat.completion.chunk"
    text = "".join(d["choices"][0]["delta"].get("content") or "" for d in data if d["choices"])
    assert text == "Bonjour from Claude"
    assert [d["choices"][0]["finish_reason"] for d in data if d["choices"] and d["choices"][0]["finish_reason"]] == [
        "stop"]
    usage = data[-1]["usage"]
    assert data[-1]["choices"] == [] and usage["completion_tokens"] == 3
    assert usage["prompt_tokens_details"]["cached_tokens"] == 50


async def test_stream_tool_use_becomes_tool_call_deltas(provider: AnthropicProvider,
                                                        anthropic_up: FakeAnthropic) -> None:
    anthropic_up.tool_calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    chunks = await collect(provider, dep(anthropic_up), {"model": "m", "tools": [WEATHER],
                                                         "messages": [{"role": "user", "content": "weather?"}]})
    calls: dict[int, dict[str, str]] = {}
    for c in chunks:
        for choice in (c.data or {}).get("choices") or []:
            for tc in choice["delta"].get("tool_calls") or []:
                slot = calls.setdefault(tc["index"], {"id": "", "name": "", "arguments": ""})
                slot["id"] += tc.get("id") or ""
                slot["name"] += tc.get("function", {}).get("name") or ""
                slot["arguments"] += tc.get("function", {}).get("arguments") or ""
    assert calls == {0: {"id": "toolu_0", "name": "get_weather", "arguments": '{"city": "Paris"}'},
                     1: {"id": "toolu_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    finishes = [ch["finish_reason"] for c in chunks for ch in (c.data or {}).get("choices") or []
                if ch["finish_reason"]]
    assert finishes == ["tool_calls"]


async def test_overloaded_529_is_retryable_with_retry_after(provider: AnthropicProvider,
                                                            anthropic_up: FakeAnthropic) -> None:
    anthropic_up.script(Behaviour.status_code(529, retry_after="7"), Behaviour.status_code(400))
    with pytest.raises(ProviderError) as overloaded:
        await provider.complete(dep(anthropic_up), {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert overloaded.value.upstream_status == 529 and overloaded.value.retryable
    assert overloaded.value.retry_after_s == 7.0
    assert "fake anthropic status 529" in overloaded.value.message
    with pytest.raises(ProviderError) as bad:
        await provider.complete(dep(anthropic_up), {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert bad.value.upstream_status == 400 and not bad.value.retryable


async def test_overloaded_event_before_text_is_a_retryable_failure(provider: AnthropicProvider,
                                                                   anthropic_up: FakeAnthropic) -> None:
    anthropic_up.script(Behaviour.error_event())
    with pytest.raises(ProviderError) as info:
        await collect(provider, dep(anthropic_up), {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert info.value.retryable and info.value.upstream_status == 529 and not info.value.after_first_token
    assert "overloaded_error" in info.value.message


async def test_cut_stream_after_text_is_truncation_not_success(provider: AnthropicProvider,
                                                               anthropic_up: FakeAnthropic) -> None:
    anthropic_up.script(Behaviour.cut_stream(after_chunks=5))  # start, ping, block start, two text deltas
    with pytest.raises(ProviderError) as info:
        await collect(provider, dep(anthropic_up), {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert info.value.after_first_token


async def test_what_anthropic_cannot_express_is_refused_before_sending(provider: AnthropicProvider,
                                                                       anthropic_up: FakeAnthropic) -> None:
    with pytest.raises(UntranslatableError) as info:
        await provider.complete(dep(anthropic_up), {"model": "m", "n": 2,
                                                    "messages": [{"role": "user", "content": "x"}]})
    assert not info.value.retryable and "n > 1" in info.value.message
    assert anthropic_up.requests == []


@pytest.mark.parametrize("assistant", [
    {"role": "assistant", "tool_calls": 5},
    {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 3}}]},
    {"role": "assistant", "content": [7]}])
async def test_malformed_fields_are_untranslatable_not_a_crash(provider: AnthropicProvider,
                                                               anthropic_up: FakeAnthropic,
                                                               assistant: dict[str, Any]) -> None:
    with pytest.raises(UntranslatableError):
        await provider.complete(dep(anthropic_up), {"model": "m", "messages": [
            {"role": "user", "content": "x"}, assistant, {"role": "user", "content": "y"}]})
    assert anthropic_up.requests == []

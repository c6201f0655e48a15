"""GeminiProvider against a fake Gemini API: contents/parts out, OpenAI answers and streams back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gearshift.errors import ProviderError, UntranslatableError
from gearshift.providers.base import Deployment, StreamChunk
from gearshift.providers.gemini import GeminiProvider
from support.fake_formats import FakeGemini
from support.fake_upstream import Behaviour

KEY = "AIzaSyTESTKEY0123456789"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": CITY}}


@pytest.fixture
def gemini_up() -> Iterator[FakeGemini]:
    with FakeGemini(answer="Hallo from Gemini") as up:
        yield up


@pytest.fixture
async def provider() -> AsyncIterator[GeminiProvider]:
    p = GeminiProvider()
    yield p
    await p.aclose()


def dep(up: FakeGemini) -> Deployment:
    return Deployment(name="flash", provider="gemini", model="gemini-2.5-flash", base_url=up.root_url, api_key=KEY,
                      timeout_s=5.0)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


async def collect(provider: GeminiProvider, d: Deployment, request: dict[str, Any]) -> list[StreamChunk]:
    return [c async for c in provider.stream(d, request)]


async def test_request_maps_roles_system_config_and_tools(provider: GeminiProvider, gemini_up: FakeGemini) -> None:
    await provider.complete(dep(gemini_up), {
        "model": "alias", "max_tokens": 64, "temperature": 0.1, "top_p": 0.9, "stop": ["END"],
        "messages": [{"role": "system", "content": "Be terse."}, user("hi"),
                     {"role": "assistant", "content": "hello"}, user("weather?")],
        "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {"type": "json_object"}})
    sent = gemini_up.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    body = sent.json
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]},
                                {"role": "model", "parts": [{"text": "hello"}]},
                                {"role": "user", "parts": [{"text": "weather?"}]}]
    assert body["generationConfig"] == {"temperature": 0.1, "topP": 0.9, "maxOutputTokens": 64,
                                        "stopSequences": ["END"], "responseMimeType": "application/json"}
    assert body["tools"] == [{"functionDeclarations": [{"name": "get_weather", "description": "Weather in a city",
                                                        "parametersJsonSchema": WEATHER["function"]["parameters"]}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}


async def test_answer_and_usage_metadata(provider: GeminiProvider, gemini_up: FakeGemini) -> None:
    gemini_up.cache_read = 300
    result = await provider.complete(dep(gemini_up), {"model": "m", "messages": [user("hi")]})
    body = result.body
    assert body["choices"] == [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "Hallo from Gemini"}}]
    assert body["model"] == "gemini-2.5-flash" and body["id"] == "resp-fake"
    prompt = len(json.dumps(gemini_up.requests[-1].json["contents"]).split()) + 300
    assert body["usage"]["prompt_tokens"] == prompt and body["usage"]["completion_tokens"] == 3
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 300}


@pytest.mark.parametrize(("reason", "finish"), [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
                                                ("RECITATION", "content_filter"), ("OTHER", "stop")])
async def test_finish_reasons_keep_safety_blocks_apart(provider: GeminiProvider, gemini_up: FakeGemini,
                                                       reason: str, finish: str) -> None:
    gemini_up.script(Behaviour(finish_reason=reason))
    result = await provider.complete(dep(gemini_up), {"model": "m", "messages": [user("hi")]})
    assert result.body["choices"][0]["finish_reason"] == finish


async def test_blocked_prompt_is_a_content_filter_answer(provider: GeminiProvider, gemini_up: FakeGemini) -> None:
    gemini_up.block_prompt = "SAFETY"
    result = await provider.complete(dep(gemini_up), {"model": "m", "messages": [user("something bad")]})
    assert result.body["choices"][0]["finish_reason"] == "content_filter"
    assert result.body["choices"][0]["message"]["content"] == ""
    chunks = await collect(provider, dep(gemini_up), {"model": "m", "messages": [user("something bad")]})
    assert chunks[-1].done
    assert [ch["finish_reason"] for c in chunks for ch in (c.data or {}).get("choices") or []
            if ch["finish_reason"]] == ["content_filter"]


async def test_function_call_round_trip_keeps_names_and_signature(provider: GeminiProvider,
                                                                  gemini_up: FakeGemini) -> None:
    gemini_up.tool_calls = [("get_weather", {"city": "Paris"})]
    gemini_up.script(Behaviour(text=""))
    first = await provider.complete(dep(gemini_up), {"model": "m", "tools": [WEATHER], "messages": [user("weather?")]})
    choice = first.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert "+" not in call["id"] and "/" not in call["id"]  # any client (and Anthropic's id rules) can carry it
    gemini_up.tool_calls = []
    await provider.complete(dep(gemini_up), {"model": "m", "tools": [WEATHER], "messages": [
        user("weather?"), {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 18}'},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]})
    contents = gemini_up.requests[-1].json["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": gemini_up.signature}]}
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}},
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}]}


async def test_stream_text_tool_calls_finish_and_usage(provider: GeminiProvider, gemini_up: FakeGemini) -> None:
    gemini_up.tool_calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    chunks = await collect(provider, dep(gemini_up), {"model": "m", "tools": [WEATHER], "messages": [user("hi")]})
    assert gemini_up.requests[-1].path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert chunks[-1].done
    data = [c.data for c in chunks if c.data]
    assert data[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(d["choices"][0]["delta"].get("content") or "" for d in data if d["choices"])
    assert text == "Hallo from Gemini"
    calls = [tc for d in data if d["choices"] for tc in d["choices"][0]["delta"].get("tool_calls") or []]
    assert [(c["index"], c["function"]["arguments"]) for c in calls] == [(0, '{"city":"Paris"}'),
                                                                         (1, '{"city":"Oslo"}')]
    assert [d["choices"][0]["finish_reason"] for d in data if d["choices"] and d["choices"][0]["finish_reason"]] == [
        "tool_calls"]
    assert data[-1]["choices"] == [] and data[-1]["usage"]["completion_tokens"] == 3


async def test_stream_without_finish_reason_is_truncated(provider: GeminiProvider, gemini_up: FakeGemini) -> None:
    gemini_up.script(Behaviour.cut_stream(after_chunks=2))
    with pytest.raises(ProviderError) as info:
        await collect(provider, dep(gemini_up), {"model": "m", "messages": [user("hi")]})
    assert info.value.after_first_token


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (503, True), (400, False), (403, False)])
async def test_error_statuses(provider: GeminiProvider, gemini_up: FakeGemini, status: int, retryable: bool) -> None:
    gemini_up.script(Behaviour.status_code(status, retry_after="2"))
    with pytest.raises(ProviderError) as info:
        await provider.complete(dep(gemini_up), {"model": "m", "messages": [user("hi")]})
    assert info.value.upstream_status == status and info.value.retryable is retryable
    assert f"fake gemini status {status}" in info.value.message


async def test_image_urls_are_refused_data_urls_inlined(provider: GeminiProvider, gemini_up: FakeGemini) -> None:
    with pytest.raises(UntranslatableError):
        await provider.complete(dep(gemini_up), {"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]})
    await provider.complete(dep(gemini_up), {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A=="}}]}]})
    assert gemini_up.requests[-1].json["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/jpeg",
                                                                                     "data": "/9j/4A=="}}

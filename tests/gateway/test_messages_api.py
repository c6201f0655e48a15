"""`POST /v1/messages` with the official Anthropic SDK as the client: plain, streaming, tools, errors, limits.

The gateway routes the translated request like any chat completion, to OpenAI-, Anthropic- and Gemini-format
fake upstreams, and records it; answers, events and errors come back in Anthropic's shapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from gateway.harness import GatewayServer, serve
from gearshift.gateway.settings import hash_key, parse_settings
from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from support.fake_formats import FakeAnthropic, FakeGemini
from support.fake_upstream import Behaviour, FakeUpstream

APP_KEY = "gs-app-key-0123456789abcdef"
WEATHER: Any = {"name": "get_weather", "description": "Weather in a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def ups() -> Iterator[tuple[FakeUpstream, FakeAnthropic, FakeGemini]]:
    with FakeUpstream(answer="openai says hi") as o, FakeAnthropic(answer="claude says hi") as a, \
            FakeGemini(answer="gemini says hi") as g:
        yield o, a, g


@pytest.fixture
def gateway(ups: tuple[FakeUpstream, FakeAnthropic, FakeGemini], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayServer]:
    o, a, g = ups
    for up in ups:
        up.reset()
        if isinstance(up, (FakeAnthropic, FakeGemini)):
            up.tool_calls, up.cache_read, up.cache_write = [], 0, 0
    monkeypatch.setenv("TEST_UPSTREAM_KEY", "sk-upstream-0123456789")
    settings = parse_settings({
        "tiers": [
            {"name": "cheap", "deployments": [
                {"name": "gpt-mini", "provider": "openai", "model": "gpt-4o-mini", "base_url": o.base_url,
                 "input_price_per_m": 0.15, "output_price_per_m": 0.6, "timeout_s": 5.0},
                {"name": "gemini-flash", "provider": "gemini", "model": "gemini-2.5-flash", "base_url": g.root_url,
                 "api_key_env": "TEST_UPSTREAM_KEY", "timeout_s": 5.0}]},
            {"name": "strong", "deployments": [
                {"name": "claude-opus", "provider": "anthropic", "model": "claude-opus-4-1", "base_url": a.root_url,
                 "api_key_env": "TEST_UPSTREAM_KEY", "input_price_per_m": 15.0, "output_price_per_m": 75.0,
                 "timeout_s": 5.0}]}],
        "router": {"name": "heuristic", "thresholds": [0.5]},
        "store": {"path": str(tmp_path / "decisions.sqlite")},
        "reliability": {"max_retries": 0, "base_delay_s": 0.0},
        "limits": {"max_body_bytes": 20_000, "request_timeout_s": 5.0},
        "auth": {"keys": [{"id": "app", "sha256": hash_key(APP_KEY), "scopes": ["inference"], "rpm": 5}]},
    }, "test")
    server = serve(settings)
    yield server
    server.stop()


def sdk(server: GatewayServer, key: str = APP_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.root, api_key=key, max_retries=0)


def rows(server: GatewayServer) -> list[dict[str, Any]]:
    server.flush()
    store = SQLiteDecisionStore(server.gateway.settings.store.path)
    try:
        return store.query(DecisionQuery(limit=None))
    finally:
        store.close()


def test_plain_message_is_routed_translated_and_recorded(
        gateway: GatewayServer, ups: tuple[FakeUpstream, FakeAnthropic, FakeGemini]) -> None:
    o, _, _ = ups
    msg = sdk(gateway).messages.create(model="gearshift/auto", max_tokens=200, system="Be terse.",
                                       messages=[{"role": "user", "content": "hi"}], stop_sequences=["END"])
    assert msg.type == "message" and msg.role == "assistant"
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == "openai says hi"
    assert msg.stop_reason == "end_turn" and msg.usage.output_tokens == 3 and msg.usage.input_tokens > 0
    sent = o.chat_requests[-1].json
    assert sent["messages"] == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]
    assert sent["stop"] == ["END"] and sent["max_tokens"] == 200 and sent["model"] == "gpt-4o-mini"
    (row,) = rows(gateway)
    assert row["tier"] == "cheap" and row["deployment"] == "gpt-mini" and row["api_key_id"] == "app"
    assert row["requested_model"] == "gearshift/auto" and row["tokens_out"] == 3 and row["status"] == "ok"


def test_streaming_through_the_sdk(gateway: GatewayServer) -> None:
    with sdk(gateway).messages.stream(model="gearshift/auto", max_tokens=100,
                                      messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "openai says hi"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 3
    (row,) = rows(gateway)
    assert row["stream"] and row["status"] == "ok" and row["deployment"] == "gpt-mini"


def test_raw_stream_events_are_anthropics(gateway: GatewayServer) -> None:
    with httpx.Client(base_url=gateway.root, timeout=10) as c:
        r = c.post("/v1/messages", headers={"x-api-key": APP_KEY, "anthropic-version": "2023-06-01"},
                   json={"model": "gearshift/auto", "max_tokens": 50, "stream": True,
                         "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    names = [line.removeprefix("event: ") for line in r.text.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[1] == "content_block_start"
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[2:-3]) == {"content_block_delta"}


def test_tool_round_trip_to_an_anthropic_upstream(
        gateway: GatewayServer, ups: tuple[FakeUpstream, FakeAnthropic, FakeGemini]) -> None:
    _, a, _ = ups
    a.tool_calls = [("get_weather", {"city": "Paris"})]
    a.script(Behaviour(text=""))
    client = sdk(gateway)
    first = client.messages.create(model="claude-opus", max_tokens=100, tools=[WEATHER],
                                   tool_choice={"type": "tool", "name": "get_weather"},
                                   messages=[{"role": "user", "content": "weather in Paris?"}])
    assert first.stop_reason == "tool_use"
    (use,) = first.content
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}
    assert a.requests[-1].json["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert a.requests[-1].json["tools"][0]["input_schema"] == WEATHER["input_schema"]
    a.tool_calls = []
    second = client.messages.create(model="claude-opus", max_tokens=100, tools=[WEATHER], messages=[
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C and sunny"}]}])
    assert second.content[0].text == "claude says hi"
    upstream_msgs = a.requests[-1].json["messages"]
    assert upstream_msgs[1]["content"] == [{"type": "tool_use", "id": use.id, "name": "get_weather",
                                            "input": {"city": "Paris"}}]
    assert upstream_msgs[2]["content"] == [{"type": "tool_result", "tool_use_id": use.id, "content": "18C and sunny"}]


def test_streamed_tool_use_accumulates_in_the_sdk(
        gateway: GatewayServer, ups: tuple[FakeUpstream, FakeAnthropic, FakeGemini]) -> None:
    _, a, _ = ups
    a.tool_calls = [("get_weather", {"city": "Oslo"})]
    with sdk(gateway).messages.stream(model="claude-opus", max_tokens=100, tools=[WEATHER],
                                      messages=[{"role": "user", "content": "weather in Oslo?"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"city": "Oslo"}


def test_gemini_upstream_with_an_image(gateway: GatewayServer,
                                       ups: tuple[FakeUpstream, FakeAnthropic, FakeGemini]) -> None:
    _, _, g = ups
    msg = sdk(gateway).messages.create(model="gemini-flash", max_tokens=50, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "text", "text": "what is this?"}]}])
    assert msg.content[0].text == "gemini says hi"
    assert g.requests[-1].json["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}, {"text": "what is this?"}]


def test_errors_come_back_in_anthropics_shape(gateway: GatewayServer,
                                              ups: tuple[FakeUpstream, FakeAnthropic, FakeGemini]) -> None:
    with pytest.raises(anthropic.AuthenticationError) as denied:
        sdk(gateway, "gs-wrong-key-000000000").messages.create(
            model="gearshift/auto", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    body: Any = denied.value.body
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert body["error"]["code"] == "invalid_api_key"
    with httpx.Client(base_url=gateway.root, timeout=10) as c:
        r = c.post("/v1/messages", headers={"x-api-key": APP_KEY},
                   json={"model": "gearshift/auto", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]
    with pytest.raises(anthropic.BadRequestError, match="document"):
        sdk(gateway).messages.create(model="gearshift/auto", max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}])
    _, a, _ = ups
    a.script(Behaviour.status_code(529))
    with pytest.raises(anthropic.APIStatusError) as upstream:
        sdk(gateway).messages.create(model="claude-opus", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert upstream.value.status_code == 502 and upstream.value.body["error"]["type"] == "api_error"


def test_limits_apply_as_for_chat_completions(gateway: GatewayServer) -> None:
    client = sdk(gateway)
    with pytest.raises(anthropic.APIStatusError) as too_big:  # [limits] max_body_bytes = 20 000
        client.messages.create(model="gearshift/auto", max_tokens=10,
                               messages=[{"role": "user", "content": "x" * 30_000}])
    assert too_big.value.status_code == 413
    assert too_big.value.body["error"]["type"] == "request_too_large"
    with pytest.raises(anthropic.RateLimitError) as limited:  # rpm = 5 for this key
        for _ in range(10):
            client.messages.create(model="gearshift/auto", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert limited.value.response.headers.get("retry-after")
    assert limited.value.body["error"]["type"] == "rate_limit_error"
    ordered = sorted(rows(gateway), key=lambda r: r["time"])  # every one recorded, refusals too
    statuses = [(r["status"], r["http_status"]) for r in ordered]
    assert statuses[0] == ("error", 413) and statuses[-1] == ("error", 429)
    assert set(statuses[1:-1]) == {("ok", 200)}


def test_models_are_listed_in_each_surfaces_shape(gateway: GatewayServer) -> None:
    listed = [m.id for m in sdk(gateway).models.list()]
    assert listed[0] == "gearshift/auto" and {"gpt-mini", "gemini-flash", "claude-opus"} <= set(listed)
    with httpx.Client(base_url=gateway.root, timeout=10) as c:
        openai_shape = c.get("/v1/models", headers={"authorization": f"Bearer {APP_KEY}"}).json()
        refused = c.get("/v1/models", headers={"x-api-key": "gs-wrong-000000000", "anthropic-version": "2023-06-01"})
    assert [m["id"] for m in openai_shape["data"]] == listed
    owners = {m["id"]: m["owned_by"] for m in openai_shape["data"]}
    assert owners["claude-opus"] == "anthropic" and owners["gemini-flash"] == "gemini"
    assert owners["gearshift/auto"] == "gearshift"
    assert refused.status_code == 401


def test_failure_after_the_first_token_ends_with_an_error_event(
        gateway: GatewayServer, ups: tuple[FakeUpstream, FakeAnthropic, FakeGemini]) -> None:
    _, a, _ = ups
    a.script(Behaviour.cut_stream(after_chunks=5))  # message_start, ping, block start, two words: then EOF
    seen: list[str] = []
    with pytest.raises(anthropic.APIError, match="stream ended"), sdk(gateway).messages.stream(
            model="claude-opus", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as stream:
        for text in stream.text_stream:
            seen.append(text)
    assert "".join(seen) == "claude says"  # the two words that arrived, then Anthropic's error event
    import time

    deadline = time.monotonic() + 5  # the record is written as the stream's generator closes, just after the event
    while not (recorded := rows(gateway)) and time.monotonic() < deadline:
        time.sleep(0.05)
    row = recorded[-1]
    assert row["status"] == "truncated" and row["deployment"] == "claude-opus"


def test_shed_load_answers_in_anthropics_shape(tmp_path: Path) -> None:
    import threading

    with FakeUpstream(default=Behaviour(latency_s=1.0)) as slow:
        dep = {"model": "m", "base_url": slow.base_url, "timeout_s": 5.0}
        server = serve(parse_settings({
            "tiers": [{"name": "cheap", "deployments": [{**dep, "name": "a"}]},
                      {"name": "strong", "deployments": [{**dep, "name": "b"}]}],
            "router": {"thresholds": [0.5]}, "store": {"path": str(tmp_path / "d.sqlite")},
            "limits": {"max_in_flight": 1}}, "test"))
        try:
            body = {"model": "a", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
            busy = threading.Thread(target=lambda: httpx.post(server.root + "/v1/messages", json=body, timeout=10))
            busy.start()
            while slow.chat_requests == []:  # the first request holds the one slot
                threading.Event().wait(0.01)
            r = httpx.post(server.root + "/v1/messages", json=body, timeout=10)
            busy.join()
        finally:
            server.stop()
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "overloaded_error"

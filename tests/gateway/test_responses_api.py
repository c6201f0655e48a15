"""`POST /v1/responses` (stateless subset) with the official OpenAI SDK's `responses` client: input items,
instructions, tools and function-call round trips, streaming events, `previous_response_id` refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.harness import GatewayServer, serve
from gearshift.gateway.settings import parse_settings
from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from support.fake_formats import FakeAnthropic
from support.fake_upstream import FakeUpstream

TOOLS: Any = [{"type": "function", "name": "get_weather", "description": "Weather in a city", "strict": None,
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


@pytest.fixture
def ups() -> Iterator[tuple[FakeUpstream, FakeAnthropic]]:
    with FakeUpstream(answer="openai says hi") as o, FakeAnthropic(answer="claude says hi") as a:
        yield o, a


@pytest.fixture
def gateway(ups: tuple[FakeUpstream, FakeAnthropic], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayServer]:
    o, a = ups
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-resp-0123456789")
    server = serve(parse_settings({
        "tiers": [{"name": "cheap", "deployments": [{"name": "mini", "provider": "openai", "model": "mini",
                                                     "base_url": o.base_url, "timeout_s": 5.0}]},
                  {"name": "strong", "deployments": [{"name": "opus", "provider": "anthropic", "model": "opus",
                                                      "base_url": a.root_url, "timeout_s": 5.0,
                                                      "api_key_env": "TEST_ANTHROPIC_KEY"}]}],
        "router": {"name": "heuristic", "thresholds": [0.5]},
        "store": {"path": str(tmp_path / "d.sqlite")},
        "reliability": {"max_retries": 0},
    }, "test"))
    yield server
    server.stop()


def client(server: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def rows(server: GatewayServer) -> list[dict[str, Any]]:
    server.flush()
    store = SQLiteDecisionStore(server.gateway.settings.store.path)
    try:
        return sorted(store.query(DecisionQuery(limit=None)), key=lambda r: r["time"])
    finally:
        store.close()


def test_string_input_with_instructions(gateway: GatewayServer, ups: tuple[FakeUpstream, FakeAnthropic]) -> None:
    o, _ = ups
    r = client(gateway).responses.create(model="gearshift/auto", input="hi", instructions="Be terse.",
                                         max_output_tokens=64)
    assert r.object == "response" and r.status == "completed" and r.output_text == "openai says hi"
    assert r.usage is not None and r.usage.output_tokens == 3
    assert o.chat_requests[-1].json["messages"] == [{"role": "system", "content": "Be terse."},
                                                    {"role": "user", "content": "hi"}]
    assert o.chat_requests[-1].json["max_tokens"] == 64
    (row,) = rows(gateway)
    assert row["tier"] == "cheap" and row["status"] == "ok" and row["tokens_out"] == 3


def test_function_call_round_trip_through_an_anthropic_upstream(
        gateway: GatewayServer, ups: tuple[FakeUpstream, FakeAnthropic]) -> None:
    _, a = ups
    a.tool_calls = [("get_weather", {"city": "Paris"})]
    c = client(gateway)
    first = c.responses.create(model="opus", input=[{"role": "user", "content": "weather in Paris?"}], tools=TOOLS,
                               tool_choice={"type": "function", "name": "get_weather"})
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"city": "Paris"}
    assert a.requests[-1].json["tool_choice"] == {"type": "tool", "name": "get_weather"}
    a.tool_calls = []
    second = c.responses.create(model="opus", tools=TOOLS, input=[
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather", "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C"}])
    assert second.output_text == "claude says hi"
    sent = a.requests[-1].json["messages"]
    assert sent[1]["content"][-1] == {"type": "tool_use", "id": calls[0].call_id, "name": "get_weather",
                                      "input": {"city": "Paris"}}
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": calls[0].call_id, "content": "18C"}]


def test_stream_events(gateway: GatewayServer, ups: tuple[FakeUpstream, FakeAnthropic]) -> None:
    _, a = ups
    a.tool_calls = [("get_weather", {"city": "Oslo"})]
    events = list(client(gateway).responses.create(model="opus", input="weather in Oslo?", tools=TOOLS, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert text == "claude says hi" and json.loads(args) == {"city": "Oslo"}
    final = events[-1].response
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output_text == "claude says hi" and final.usage is not None and final.usage.output_tokens == 3


def test_previous_response_id_and_builtin_tools_are_refused(gateway: GatewayServer) -> None:
    c = client(gateway)
    with pytest.raises(openai.BadRequestError) as info:
        c.responses.create(model="gearshift/auto", input="and then?", previous_response_id="resp_123")
    assert info.value.body["param"] == "previous_response_id"
    assert "stores no responses" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="only function tools"):
        c.responses.create(model="gearshift/auto", input="news?", tools=[{"type": "web_search"}])
    assert [r["http_status"] for r in rows(gateway)] == [400, 400]

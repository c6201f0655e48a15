"""Tool-result stickiness: the turn returning tool results goes back to the tier that issued the calls (a
recorded rule, `tool_result`), even when routing alone would send it cheaper; unknown calls route as usual."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from gateway.harness import GatewayServer, serve
from gearshift.gateway.settings import parse_settings
from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from support.fake_formats import FakeAnthropic
from support.fake_upstream import FakeUpstream

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture
def ups() -> Iterator[tuple[FakeUpstream, FakeAnthropic]]:
    with FakeUpstream(answer="cheap answer") as cheap, FakeAnthropic(answer="strong answer") as strong:
        yield cheap, strong


@pytest.fixture
def gateway(ups: tuple[FakeUpstream, FakeAnthropic], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayServer]:
    cheap, strong = ups
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-sticky-0123456789")
    server = serve(parse_settings({
        "tiers": [{"name": "cheap", "deployments": [{"name": "mini", "provider": "openai", "model": "mini",
                                                     "base_url": cheap.base_url, "timeout_s": 5.0}]},
                  {"name": "strong", "deployments": [{"name": "opus", "provider": "anthropic", "model": "opus",
                                                      "base_url": strong.root_url, "timeout_s": 5.0,
                                                      "api_key_env": "TEST_ANTHROPIC_KEY"}]}],
        "router": {"name": "heuristic", "thresholds": [0.5]},
        "store": {"path": str(tmp_path / "d.sqlite")},
        "reliability": {"max_retries": 0},
    }, "test"))
    yield server
    server.stop()


def rows(server: GatewayServer) -> list[dict[str, Any]]:
    server.flush()
    store = SQLiteDecisionStore(server.gateway.settings.store.path)
    try:
        return sorted(store.query(DecisionQuery(limit=None)), key=lambda r: r["time"])
    finally:
        store.close()


def tool_turn(call_id: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "18C"}]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_results_return_to_the_issuing_tier(gateway: GatewayServer, ups: tuple[FakeUpstream, FakeAnthropic],
                                                 stream: bool) -> None:
    _, strong = ups
    strong.tool_calls = [("get_weather", {"city": "Paris"})]
    with httpx.Client(base_url=gateway.root, timeout=10) as c:
        first = c.post("/v1/chat/completions", json={"model": "opus", "stream": stream, "tools": TOOLS,
                                                     "messages": [{"role": "user", "content": "weather?"}]})
        assert first.status_code == 200 and "toolu_0" in first.text  # the strong tier issued call toolu_0
        strong.tool_calls = []
        back = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "tools": TOOLS,
                                                    "messages": tool_turn("toolu_0")})
        other = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "tools": TOOLS,
                                                     "messages": tool_turn("call_unknown")})
    assert back.json()["choices"][0]["message"]["content"] == "strong answer"
    assert back.headers["x-gearshift-tier"] == "strong" and back.headers["x-gearshift-rule"] == "tool_result"
    assert other.json()["choices"][0]["message"]["content"] == "cheap answer"  # what routing alone picks
    _, sticky, plain = rows(gateway)
    assert sticky["tier"] == "strong" and sticky["rule"] == "tool_result"
    assert "tool results moved back to tier strong, which issued the call" in sticky["reason"]
    assert plain["tier"] == "cheap" and plain["rule"] != "tool_result"


def test_anthropic_sdk_tool_loop_stays_on_its_tier(gateway: GatewayServer,
                                                   ups: tuple[FakeUpstream, FakeAnthropic]) -> None:
    _, strong = ups
    strong.tool_calls = [("get_weather", {"city": "Oslo"})]
    client = anthropic.Anthropic(base_url=gateway.root, api_key="unused", max_retries=0)
    tools: Any = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    first = client.messages.create(model="opus", max_tokens=50, tools=tools,
                                   messages=[{"role": "user", "content": "weather in Oslo?"}])
    use = next(b for b in first.content if b.type == "tool_use")
    strong.tool_calls = []
    second = client.messages.create(model="gearshift/auto", max_tokens=50, tools=tools, messages=[
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "4C"}]}])
    assert second.content[0].type == "text" and second.content[0].text == "strong answer"
    assert rows(gateway)[-1]["rule"] == "tool_result"

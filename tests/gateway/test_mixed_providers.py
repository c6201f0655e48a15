"""A gateway whose tiers mix wire formats: Anthropic and OpenAI in the cheap tier, Gemini as the strong one.

Through the real app and the official OpenAI SDK: failover across formats before the first token (JSON and
stream), prices per deployment with cached-input prices, and every answer in OpenAI's shape whatever spoke it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.harness import GatewayServer, serve
from gearshift.gateway.settings import GatewaySettings, parse_settings
from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from support.fake_formats import FakeAnthropic, FakeGemini
from support.fake_upstream import Behaviour, FakeUpstream

ANTHROPIC_KEY = "sk-ant-mixed-0123456789"
GEMINI_KEY = "AIzaMIXEDKEY0123456789"


@pytest.fixture
def ups() -> Iterator[tuple[FakeAnthropic, FakeUpstream, FakeGemini]]:
    with FakeAnthropic(answer="claude says hi") as a, FakeUpstream(answer="openai says hi") as o, \
            FakeGemini(answer="gemini says hi") as g:
        yield a, o, g


def mixed_settings(ups: tuple[FakeAnthropic, FakeUpstream, FakeGemini], db: Path) -> GatewaySettings:
    a, o, g = ups
    return parse_settings({
        "tiers": [
            {"name": "cheap", "deployments": [
                {"name": "claude-haiku", "provider": "anthropic", "model": "claude-haiku-4-5", "base_url": a.root_url,
                 "api_key_env": "TEST_ANTHROPIC_KEY", "input_price_per_m": 1.0, "output_price_per_m": 5.0,
                 "cached_input_price_per_m": 0.1, "cache_write_price_per_m": 1.25, "timeout_s": 5.0},
                {"name": "gpt-mini", "provider": "openai", "model": "gpt-4o-mini", "base_url": o.base_url,
                 "input_price_per_m": 0.15, "output_price_per_m": 0.6, "timeout_s": 5.0}]},
            {"name": "strong", "deployments": [
                {"name": "gemini-pro", "provider": "gemini", "model": "gemini-2.5-pro", "base_url": g.root_url,
                 "api_key_env": "TEST_GEMINI_KEY", "input_price_per_m": 1.25, "output_price_per_m": 10.0,
                 "cached_input_price_per_m": 0.31, "timeout_s": 5.0}]}],
        "router": {"name": "heuristic", "thresholds": [0.5]},
        "store": {"path": str(db)},
        "reliability": {"max_retries": 0, "base_delay_s": 0.0},
        "limits": {"max_body_bytes": 50_000, "request_timeout_s": 5.0},
    }, "test")


@pytest.fixture
def gateway(ups: tuple[FakeAnthropic, FakeUpstream, FakeGemini], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayServer]:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("TEST_GEMINI_KEY", GEMINI_KEY)
    server = serve(mixed_settings(ups, tmp_path / "decisions.sqlite"))
    yield server
    server.stop()


def rows(server: GatewayServer) -> list[dict[str, Any]]:
    server.flush()
    store = SQLiteDecisionStore(server.gateway.settings.store.path)
    try:
        return store.query(DecisionQuery(limit=None))
    finally:
        store.close()


def client(server: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def test_anthropic_answers_chat_completions_with_cached_prices(
        gateway: GatewayServer, ups: tuple[FakeAnthropic, FakeUpstream, FakeGemini]) -> None:
    a, _, _ = ups
    a.cache_read, a.cache_write = 2000, 100
    r = client(gateway).chat.completions.create(model="gearshift/auto", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "claude says hi" and r.choices[0].finish_reason == "stop"
    assert a.requests[-1].headers["x-api-key"] == ANTHROPIC_KEY
    (row,) = rows(gateway)
    assert row["deployment"] == "claude-haiku" and row["tier"] == "cheap"
    fresh = r.usage.prompt_tokens - 2100 if r.usage else 0
    assert fresh > 0 and row["tokens_in"] == fresh + 2100 and row["tokens_out"] == 3
    # fresh at 1.0, 2000 cache reads at 0.1, 100 cache writes at 1.25, 3 output at 5.0 ($ per million)
    assert row["cost_usd"] == pytest.approx((fresh * 1.0 + 2000 * 0.1 + 100 * 1.25 + 3 * 5.0) / 1e6)


def test_anthropic_failing_before_first_token_fails_over_to_openai(
        gateway: GatewayServer, ups: tuple[FakeAnthropic, FakeUpstream, FakeGemini]) -> None:
    a, o, _ = ups
    a.script(Behaviour.status_code(529))
    r = client(gateway).chat.completions.create(model="gearshift/auto", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "openai says hi"
    assert len(a.requests) == 1 and len(o.chat_requests) == 1
    (row,) = rows(gateway)
    assert row["deployment"] == "gpt-mini" and row["status"] == "ok"
    assert [(t["deployment"], t["provider"], t["outcome"], t["upstream_status"]) for t in row["attempts"]] == [
        ("claude-haiku", "anthropic", "error", 529), ("gpt-mini", "openai", "ok", None)]


def test_stream_fails_over_across_formats_before_the_first_token(
        gateway: GatewayServer, ups: tuple[FakeAnthropic, FakeUpstream, FakeGemini]) -> None:
    a, _, _ = ups
    a.script(Behaviour.error_event())  # message_start, then overloaded_error: no text reached anyone
    stream = client(gateway).chat.completions.create(model="gearshift/auto", stream=True,
                                                     messages=[{"role": "user", "content": "hi"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "openai says hi"
    (row,) = rows(gateway)
    assert row["deployment"] == "gpt-mini" and row["status"] == "ok"
    assert [t["outcome"] for t in row["attempts"]] == ["error", "ok"]
    assert row["attempts"][0]["upstream_status"] == 529


def test_anthropic_stream_and_tool_calls_reach_openai_clients(
        gateway: GatewayServer, ups: tuple[FakeAnthropic, FakeUpstream, FakeGemini]) -> None:
    a, _, _ = ups
    a.tool_calls = [("get_weather", {"city": "Paris"})]
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    stream = client(gateway).chat.completions.create(model="gearshift/auto", stream=True, tools=tools,
                                                     messages=[{"role": "user", "content": "hi"}])
    args, finish = "", None
    for c in stream:
        for ch in c.choices:
            for tc in ch.delta.tool_calls or []:
                args += (tc.function.arguments or "") if tc.function else ""
            finish = ch.finish_reason or finish
    assert json.loads(args) == {"city": "Paris"} and finish == "tool_calls"
    assert a.requests[-1].json["tools"][0]["name"] == "get_weather"


def test_gemini_strong_tier_by_name_streams_with_usage(
        gateway: GatewayServer, ups: tuple[FakeAnthropic, FakeUpstream, FakeGemini]) -> None:
    _, _, g = ups
    g.cache_read = 40
    stream = client(gateway).chat.completions.create(model="gemini-pro", stream=True,
                                                     stream_options={"include_usage": True},
                                                     messages=[{"role": "user", "content": "hi"}])
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "gemini says hi"
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 3
    (row,) = rows(gateway)
    assert row["deployment"] == "gemini-pro" and row["tokens_in"] == usage.prompt_tokens
    fresh = usage.prompt_tokens - 40
    assert row["cost_usd"] == pytest.approx((fresh * 1.25 + 40 * 0.31 + 3 * 10.0) / 1e6)

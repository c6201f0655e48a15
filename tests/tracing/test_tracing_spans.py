"""One OpenTelemetry span per gateway request, read back through the SDK's InMemorySpanExporter."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.harness import GatewayServer, deployment
from gearshift.gateway.app import create_app
from gearshift.gateway.settings import GatewaySettings, parse_settings
from gearshift.tracing import TracingSettings, build_tracer
from support.fake_upstream import Behaviour, FakeUpstream


@pytest.fixture
def ups() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with FakeUpstream(answer="short answer") as cheap, FakeUpstream(answer="a long and careful answer") as strong:
        yield cheap, strong


def _settings(cheap: FakeUpstream, strong: FakeUpstream, db: Path, **sections: Any) -> GatewaySettings:
    return parse_settings({
        "tiers": [{"name": "cheap", "deployments": [deployment("cheap-a", cheap)]},
                  {"name": "strong", "deployments": [deployment("strong", strong)]}],
        "router": {"name": "heuristic", "thresholds": [0.5]},
        "store": {"path": str(db)}, "reliability": {"max_retries": 0}, **sections}, "test")


def _traced(settings: GatewaySettings) -> tuple[GatewayServer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    app = create_app(settings)
    gw = app.state.gateway
    gw.tracer = build_tracer(TracingSettings(enabled=True, exporter="none", service_name="gw-test"),
                             [d for t in gw.tiers for d in t], span_processor=SimpleSpanProcessor(exporter))
    return GatewayServer(app).start(), exporter


def _chat(server: GatewayServer, model: str, text: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", timeout=10,
                      json={"model": model, "messages": [{"role": "user", "content": text}]})


def test_each_request_is_one_span_with_genai_and_routing_attributes(ups: Any, tmp_path: Path) -> None:
    cheap, strong = ups
    server, exporter = _traced(_settings(cheap, strong, tmp_path / "gw.sqlite"))
    try:
        t0 = time.time()
        ok = _chat(server, "gearshift/auto", "hi there")
        strong.script(Behaviour(finish_reason="length"))
        forced = _chat(server, "strong", "please answer")
        cheap.script(Behaviour.status_code(500))
        failed = _chat(server, "cheap-a", "this one fails")
    finally:
        server.stop()
    assert ok.status_code == 200 and forced.status_code == 200 and failed.status_code >= 500
    spans = {s.attributes["gearshift.request_id"]: s for s in exporter.get_finished_spans()}
    assert len(spans) == 3
    s = spans[ok.headers["x-gearshift-request-id"]]
    a = s.attributes
    assert s.name == "chat gearshift/auto" and s.kind == SpanKind.CLIENT
    assert s.resource.attributes["service.name"] == "gw-test"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == "gearshift/auto" and a["gen_ai.response.model"] == "cheap-a-upstream"
    usage = ok.json()["usage"]
    assert a["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert a["gearshift.tier"] == ok.headers["x-gearshift-tier"] == "cheap"
    assert a["gearshift.router"] == "heuristic"
    assert a["gearshift.score"] == pytest.approx(float(ok.headers["x-gearshift-score"]), abs=1e-4)
    assert a["gearshift.propensity"] == 1.0 and a["gearshift.cascade.steps"] == 0
    # why the tier was chosen, as the record says it (issue #15: spans carry the decision's reason and confidence)
    assert a["gearshift.reason"].startswith("p_strong=") and 0.0 <= a["gearshift.confidence"] <= 1.0
    assert a["gearshift.router_version"] and a["gearshift.explored"] is False
    # the span covers the request: it starts when the gateway got it and lasts its recorded latency
    assert t0 - 1 < s.start_time / 1e9 < s.end_time / 1e9 < time.time() + 1
    f = spans[forced.headers["x-gearshift-request-id"]].attributes
    assert f["gearshift.tier"] == "strong" and tuple(f["gen_ai.response.finish_reasons"]) == ("length",)
    err = [sp for sp in spans.values() if sp.attributes["gearshift.status"] == "error"]
    assert len(err) == 1 and err[0].status.status_code == StatusCode.ERROR
    assert err[0].attributes["http.response.status_code"] >= 500 and "error.type" in err[0].attributes


def test_tracing_is_built_from_config_and_off_by_default(ups: Any, tmp_path: Path) -> None:
    cheap, strong = ups
    off = create_app(_settings(cheap, strong, tmp_path / "a.sqlite")).state.gateway
    on = create_app(_settings(cheap, strong, tmp_path / "b.sqlite",
                              tracing={"enabled": True, "exporter": "console", "service_name": "x"})).state.gateway
    assert off.tracer is None
    assert on.tracer is not None and on.tracer.providers == {"cheap-a": "openai", "strong": "openai"}
    on.tracer.shutdown()
    with pytest.raises(Exception, match="tracing"):
        parse_settings({"tiers": [], "tracing": {"exporter": "jaeger"}}, "test")


def test_without_the_sdk_tracing_is_a_no_op(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real_import = builtins.__import__

    def no_otel(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("opentelemetry"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_otel)
    assert build_tracer(TracingSettings(enabled=True, exporter="console")) is None
    assert "not installed" in caplog.text


#: The attributes a span carried before the field list drove them: none may go missing.
ATTRIBUTES_BEFORE_THE_FIELD_LIST = {
    "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system", "gen_ai.request.model", "gen_ai.response.model",
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.response.finish_reasons",
    "gearshift.request_id", "gearshift.route", "gearshift.tier", "gearshift.router", "gearshift.router_version",
    "gearshift.score", "gearshift.propensity", "gearshift.reason", "gearshift.confidence", "gearshift.rule",
    "gearshift.explored", "gearshift.escalated", "gearshift.cascade.steps", "gearshift.deployment",
    "gearshift.cost_usd", "gearshift.usage_estimated", "gearshift.status", "gearshift.stream",
    "gearshift.segment.language", "gearshift.segment.length_bucket", "gearshift.segment.has_code",
    "http.response.status_code", "error.type"}


def test_every_field_the_list_names_a_span_attribute_is_on_the_span_with_its_value() -> None:
    from gearshift.records.fields import SPAN_FIELDS
    from gearshift.records.record import DecisionRecord
    from gearshift.tracing.spans import record_attributes
    from support.records import full_record

    row = full_record()
    attrs = record_attributes(DecisionRecord.model_validate(row), {"strong-a": "anthropic"})
    for f in SPAN_FIELDS:
        assert attrs[str(f.span)] == f.get(row), f.name
    computed = {"gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system", "gearshift.cascade.steps",
                "gen_ai.response.finish_reasons"}
    assert set(attrs) == {f.span for f in SPAN_FIELDS} | computed
    assert set(attrs) >= ATTRIBUTES_BEFORE_THE_FIELD_LIST
    assert attrs["gen_ai.provider.name"] == "anthropic" and attrs["gearshift.cascade.steps"] == 1
    # what a record leaves unset (None, an empty reason) is no attribute at all
    bare = record_attributes(DecisionRecord(request_id="r", time=1.0))
    assert "gearshift.reason" not in bare and "gearshift.tier" not in bare and bare["gearshift.request_id"] == "r"

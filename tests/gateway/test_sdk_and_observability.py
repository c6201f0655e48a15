"""The official OpenAI SDK against the gateway, /v1/models, /metrics, and `gearshift decisions`."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from gateway.conftest import Upstreams
from gateway.harness import GatewayServer, make_settings, serve
from gearshift.cli import main


def test_openai_sdk_works_unchanged_including_streaming(gateway: GatewayServer) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    resp = client.chat.completions.create(model="gearshift/auto", messages=[{"role": "user", "content": "hello"}])
    assert resp.choices[0].message.content == "cheap a answer"
    assert resp.usage is not None and resp.usage.completion_tokens == 3
    raw = client.chat.completions.with_raw_response.create(
        model="router-heuristic-0.0", messages=[{"role": "user", "content": "hello"}])
    assert raw.headers["x-gearshift-tier"] == "strong"
    stream = client.chat.completions.create(model="gearshift/auto", messages=[{"role": "user", "content": "hello"}],
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "cheap a answer"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "gearshift/auto" and "router-heuristic-0.5" in ids
    assert {"cheap-a", "cheap-b", "strong"} <= set(ids)


def test_metrics_expose_requests_tiers_failovers_and_latency(gateway: GatewayServer, upstreams: Upstreams) -> None:
    from support.fake_upstream import Behaviour

    upstreams.cheap_a.script(Behaviour.status_code(500))
    body = {"model": "gearshift/auto", "messages": [{"role": "user", "content": "hello"}]}
    with gateway.client() as c:
        c.post("/v1/chat/completions", json=body)
        c.post("/v1/chat/completions", json=body)
        c.post("/v1/chat/completions", json={"model": "strong", "messages": body["messages"]})
        c.post("/v1/chat/completions", json={"model": "nope", "messages": body["messages"]})
        text = c.get("/metrics").text
    assert 'gearshift_requests_total{route="auto",status="ok"} 2.0' in text
    assert 'gearshift_requests_total{route="none",status="error"} 1.0' in text
    assert 'gearshift_tier_requests_total{tier="cheap"} 2.0' in text
    assert 'gearshift_tier_requests_total{tier="strong"} 1.0' in text
    assert 'gearshift_failovers_total{deployment="cheap-a"} 1.0' in text
    for dep in ("cheap-a", "cheap-b", "strong"):  # first request failed over to b, the second went to a again
        assert f'gearshift_upstream_latency_seconds_count{{deployment="{dep}",kind="complete"}} 1.0' in text
    assert "gearshift_decision_records_dropped 0.0" in text
    # request latency by the tier that answered (issue #15); a request refused before routing has none
    assert 'gearshift_request_latency_seconds_count{stream="false",tier="cheap"} 2.0' in text
    assert 'gearshift_request_latency_seconds_count{stream="false",tier="strong"} 1.0' in text
    assert 'gearshift_request_latency_seconds_count{stream="false",tier="none"} 1.0' in text


def test_healthz(gateway: GatewayServer) -> None:
    with gateway.client() as c:
        body = c.get("/healthz").json()
    assert body["status"] == "ok" and body["tiers"]["cheap"] == ["cheap-a", "cheap-b"]


def test_decisions_cli_queries_what_the_gateway_wrote(upstreams: Upstreams, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "d.sqlite"
    server = serve(make_settings([upstreams.cheap_a], upstreams.strong, db))
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    try:
        with server.client() as c:
            for model in ("gearshift/auto", "strong", "strong", "nope"):
                c.post("/v1/chat/completions", json={"model": model, "messages": msgs})
    finally:
        server.stop()  # lifespan shutdown flushes the writer
    capsys.readouterr()
    assert main(["decisions", "--db", str(db), "--json", "--tier", "strong"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(r["tier"] == "strong" and r["deployment"] == "strong" for r in rows)
    assert rows[0]["cost_usd"] > 0 and rows[0]["segment"]["language"] == "en"
    assert main(["decisions", "--db", str(db), "--json", "--status", "error", "--since", "1h"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["requested_model"], r["error_type"]) for r in rows] == [("nope", "model_not_found")]
    assert main(["decisions", "--db", str(db), "--limit", "3"]) == 0
    assert "3 decision(s)" in capsys.readouterr().out
    assert main(["decisions", "--db", str(tmp_path / "missing.sqlite")]) == 1

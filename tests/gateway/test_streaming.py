"""SSE through the gateway: pass-through with usage, failover before the first token, errors after it."""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.conftest import Upstreams
from gateway.harness import GatewayServer
from gearshift.store.base import DecisionQuery
from support.fake_upstream import Behaviour

EASY = [{"role": "user", "content": "hello, thanks"}]


def _events(text: str) -> list[Any]:
    out: list[Any] = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def _record(gateway: GatewayServer, request_id: str) -> dict[str, Any]:
    gateway.flush()
    store = gateway.gateway.store
    assert store is not None
    rows = [r for r in store.query(DecisionQuery(limit=None)) if r["request_id"] == request_id]
    assert len(rows) == 1
    return rows[0]


def _content(events: list[Any]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in events
                   if isinstance(c, dict) and c.get("choices"))


def test_stream_passes_chunks_through_with_usage(gateway: GatewayServer, upstreams: Upstreams) -> None:
    body = {"model": "gearshift/auto", "messages": EASY, "stream": True, "stream_options": {"include_usage": True}}
    with gateway.client() as c:
        r = c.post("/v1/chat/completions", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-gearshift-tier"] == "cheap"
    events = _events(r.text)
    assert events[-1] == "[DONE]"
    assert _content(events) == "cheap a answer"
    usage = [e["usage"] for e in events[:-1] if e.get("usage")]
    assert len(usage) == 1 and usage[0]["completion_tokens"] == 3
    # usage is asked upstream even when the client did not ask for it
    assert upstreams.cheap_a.chat_requests[0].json["stream_options"] == {"include_usage": True}
    rec = _record(gateway, r.headers["x-gearshift-request-id"])
    assert rec["status"] == "ok" and rec["stream"] and rec["tokens_out"] == 3 and not rec["usage_estimated"]


def test_stream_without_usage_request_gets_no_usage_chunk_but_record_has_tokens(gateway: GatewayServer) -> None:
    with gateway.client() as c:
        r = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": EASY, "stream": True})
    events = _events(r.text)
    assert not any(isinstance(e, dict) and e.get("usage") for e in events)
    assert _record(gateway, r.headers["x-gearshift-request-id"])["tokens_out"] == 3


def test_stream_fails_over_before_the_first_token(gateway: GatewayServer, upstreams: Upstreams) -> None:
    upstreams.cheap_a.script(Behaviour.status_code(500))
    with gateway.client() as c:
        r = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": EASY, "stream": True})
    assert r.status_code == 200
    assert _content(_events(r.text)) == "cheap b answer"
    rec = _record(gateway, r.headers["x-gearshift-request-id"])
    assert [(a["deployment"], a["outcome"]) for a in rec["attempts"]] == [("cheap-a", "error"), ("cheap-b", "ok")]


def test_stream_all_failing_before_first_token_is_a_502(gateway: GatewayServer, upstreams: Upstreams) -> None:
    upstreams.cheap_a.script(Behaviour.status_code(500))
    upstreams.cheap_b.script(Behaviour.status_code(500))
    with gateway.client() as c:
        r = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": EASY, "stream": True})
    assert r.status_code == 502 and len(r.json()["error"]["attempts"]) == 2


def test_stream_cut_after_first_token_ends_with_error_event_and_truncated(gateway: GatewayServer,
                                                                          upstreams: Upstreams) -> None:
    upstreams.cheap_a.script(Behaviour.cut_stream(after_chunks=2))
    with gateway.client() as c:
        r = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": EASY, "stream": True})
    events = _events(r.text)
    assert "[DONE]" not in events
    assert "error" in events[-1] and events[-1]["error"]["type"] == "upstream_error"
    assert upstreams.cheap_b.chat_requests == []  # no failover once text has reached the client
    rec = _record(gateway, r.headers["x-gearshift-request-id"])
    assert rec["status"] == "truncated" and rec["error_type"]


def test_client_disconnect_cancels_upstream_and_is_recorded(gateway: GatewayServer, upstreams: Upstreams) -> None:
    upstreams.cheap_a.script(Behaviour.stall_stream(after_chunks=2, stall_s=20))
    with gateway.client() as c, c.stream("POST", "/v1/chat/completions",
                                         json={"model": "gearshift/auto", "messages": EASY, "stream": True}) as r:
        rid = r.headers["x-gearshift-request-id"]
        first = next(r.iter_raw())
        assert first.startswith(b"data: ")
    # the connection is closed now; the gateway must notice and record it without waiting for the stall
    deadline = time.monotonic() + 5
    store = gateway.gateway.store
    assert store is not None
    while time.monotonic() < deadline:
        gateway.flush()
        rows = [x for x in store.query(DecisionQuery(limit=None)) if x["request_id"] == rid]
        if rows:
            break
        time.sleep(0.05)
    assert rows and rows[0]["status"] == "client_disconnected"
    assert rows[0]["attempts"][-1]["outcome"] == "cancelled"

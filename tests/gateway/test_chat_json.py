"""Non-streaming chat through the real gateway under uvicorn, against real fake-upstream servers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.conftest import Upstreams
from gateway.harness import GatewayServer, make_settings
from gearshift.gateway.app import create_app
from gearshift.routers.heuristic import HeuristicRouter
from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore

EASY = "hi there, thanks!"
HARD = ("Prove step by step that the integral of x^2 from 0 to 3 equals 9, then write a Python function that "
        "computes the derivative of a polynomial, and explain why the algorithm is correct. Also compare it "
        "with a symbolic approach and analyze the trade-offs. " * 3)


def chat(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def test_auto_routes_easy_prompt_to_cheap_and_hard_to_strong(gateway: GatewayServer, upstreams: Upstreams) -> None:
    with gateway.client() as c:
        easy = c.post("/v1/chat/completions", json=chat("gearshift/auto", EASY))
        hard = c.post("/v1/chat/completions", json=chat("gearshift/auto", HARD))
    assert easy.status_code == 200 and hard.status_code == 200
    assert easy.json()["choices"][0]["message"]["content"] == "cheap a answer"
    assert hard.json()["choices"][0]["message"]["content"] == "strong answer here"
    assert easy.headers["x-gearshift-tier"] == "cheap" and hard.headers["x-gearshift-tier"] == "strong"
    assert easy.headers["x-gearshift-router"].startswith("heuristic@")
    assert float(easy.headers["x-gearshift-score"]) < 0.5 < float(hard.headers["x-gearshift-score"])
    assert easy.headers["x-gearshift-request-id"] != hard.headers["x-gearshift-request-id"]
    # the upstream saw its own model name, never the client's alias
    assert [r.json["model"] for r in upstreams.cheap_a.chat_requests] == ["cheap-a-upstream"]
    assert [r.json["model"] for r in upstreams.strong.chat_requests] == ["strong-upstream"]
    usage = easy.json()["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_router_model_name_sets_the_threshold_per_request(gateway: GatewayServer, upstreams: Upstreams) -> None:
    prompt = "Write a Python function that reverses a linked list."
    p = HeuristicRouter().score([{"role": "user", "content": prompt}]).p_strong
    assert 0.1 < p < 0.9, p  # the prompt must sit between the two thresholds for this test to mean anything
    with gateway.client() as c:
        low = c.post("/v1/chat/completions", json=chat("router-heuristic-0.1", prompt))
        high = c.post("/v1/chat/completions", json=chat("router-heuristic-0.9", prompt))
    assert low.headers["x-gearshift-tier"] == "strong"
    assert high.headers["x-gearshift-tier"] == "cheap"
    assert len(upstreams.strong.chat_requests) == 1 and len(upstreams.cheap_a.chat_requests) == 1
    assert abs(float(low.headers["x-gearshift-score"]) - p) < 1e-3


def test_concrete_model_passes_through_without_routing(gateway: GatewayServer, upstreams: Upstreams) -> None:
    with gateway.client() as c:
        r = c.post("/v1/chat/completions", json=chat("strong", EASY))
        b = c.post("/v1/chat/completions", json=chat("cheap-b", HARD))
    assert r.status_code == 200 and r.headers["x-gearshift-tier"] == "strong"
    assert r.headers["x-gearshift-router"] == "none" and "x-gearshift-score" not in r.headers
    assert b.json()["choices"][0]["message"]["content"] == "cheap b answer"
    assert upstreams.cheap_a.chat_requests == []


def test_failover_to_second_deployment_when_first_returns_500(gateway: GatewayServer, upstreams: Upstreams) -> None:
    from support.fake_upstream import Behaviour

    upstreams.cheap_a.script(Behaviour.status_code(500))
    with gateway.client() as c:
        r = c.post("/v1/chat/completions", json=chat("gearshift/auto", EASY))
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "cheap b answer"
    assert len(upstreams.cheap_a.chat_requests) == 1 and len(upstreams.cheap_b.chat_requests) == 1
    gateway.flush()
    rec = gateway.gateway.store.query(_q())[0]  # type: ignore[union-attr]
    assert rec["deployment"] == "cheap-b" and rec["status"] == "ok"
    assert [(a["deployment"], a["outcome"]) for a in rec["attempts"]] == [("cheap-a", "error"), ("cheap-b", "ok")]


def test_all_deployments_failing_gives_502_listing_attempts(gateway: GatewayServer, upstreams: Upstreams) -> None:
    from support.fake_upstream import Behaviour

    upstreams.cheap_a.script(Behaviour.status_code(500))
    upstreams.cheap_b.script(Behaviour.status_code(503))
    with gateway.client() as c:
        r = c.post("/v1/chat/completions", json=chat("gearshift/auto", EASY))
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "all_deployments_failed"
    assert [(a["deployment"], a["upstream_status"]) for a in err["attempts"]] == [("cheap-a", 500), ("cheap-b", 503)]
    assert "Traceback" not in r.text
    assert r.headers["x-gearshift-tier"] == "cheap"


def _q() -> Any:
    from gearshift.store.base import DecisionQuery

    return DecisionQuery(limit=10)


def test_an_answer_the_client_could_not_receive_is_still_recorded(upstreams: Upstreams, db: Path) -> None:
    """The record is written after the answer's bytes are handed to the server (gateway/chat.py `AfterSend`), so
    the client never waits for it; a send that fails (the connection reset as the answer goes out) must not lose it,
    as a background task of Starlette's would."""
    app = create_app(make_settings([upstreams.cheap_a], upstreams.strong, db))
    body = json.dumps(chat("gearshift/auto", EASY)).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    sent: list[str] = []

    async def run() -> None:
        gone = asyncio.Event()
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])
            if message["type"] == "http.response.body":
                gone.set()
                raise ConnectionResetError("the client went away")

        async with app.router.lifespan_context(app):
            with pytest.raises(ConnectionResetError):
                await app(scope, receive, send)

    asyncio.run(run())
    assert sent[:2] == ["http.response.start", "http.response.body"]
    assert len(upstreams.cheap_a.chat_requests) == 1
    store = SQLiteDecisionStore(db)
    try:
        (row,) = store.query(DecisionQuery())
    finally:
        store.close()
    assert row["status"] == "ok" and row["tier"] == "cheap" and row["deployment"] == "cheap-a"

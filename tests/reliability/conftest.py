"""Helpers for driving the real gateway (uvicorn on 127.0.0.1) against faulty fake upstreams."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.harness import GatewayServer, serve
from gearshift.gateway.settings import GatewaySettings, parse_settings
from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from support.fake_upstream import FakeUpstream

PROMPT = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def faulty_up() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="faulty upstream answer with several words") as up:
        yield up


@pytest.fixture(scope="module")
def healthy_up() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="healthy fallback answer") as up:
        yield up


@pytest.fixture
def ups(faulty_up: FakeUpstream, healthy_up: FakeUpstream) -> tuple[FakeUpstream, FakeUpstream]:
    faulty_up.reset()
    healthy_up.reset()
    return faulty_up, healthy_up


def dep(name: str, base_url: str, timeout_s: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": "openai", "model": f"{name}-model", "base_url": base_url,
            "input_price_per_m": 1.0, "output_price_per_m": 2.0, "timeout_s": timeout_s, **extra}


def settings_for(cheap: list[dict[str, Any]], strong_url: str, db: Path, *, deadline_s: float = 1.0,
                 **sections: Any) -> GatewaySettings:
    data: dict[str, Any] = {
        "tiers": [{"name": "cheap", "deployments": cheap},
                  {"name": "strong", "deployments": [dep("strong", strong_url, 5.0)]}],
        "router": {"name": "heuristic", "thresholds": [0.5]},
        "store": {"path": str(db)},
        "reliability": {"max_retries": 0, "base_delay_s": 0.0},
        "limits": {"max_body_bytes": 50_000, "request_timeout_s": deadline_s},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return parse_settings(data, "test")


@dataclass
class Outcome:
    status: int
    body: Any
    elapsed_s: float
    events: list[Any]
    raw: str
    headers: dict[str, str] = field(default_factory=dict)


def chat(server: GatewayServer, model: str, *, stream: bool = False, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> Outcome:
    payload = {"model": model, "messages": PROMPT, "stream": stream}
    with httpx.Client(base_url=server.root, timeout=timeout) as c:
        if not stream:
            r = c.post("/v1/chat/completions", json=payload, headers=headers)
            return Outcome(r.status_code, r.json(), r.elapsed.total_seconds(), [], r.text, dict(r.headers))
        with c.stream("POST", "/v1/chat/completions", json=payload, headers=headers) as r:
            raw = r.read().decode()
            elapsed = r.elapsed.total_seconds()
        events: list[Any] = []
        for line in raw.splitlines():
            if line.startswith("data: "):
                data = line[6:]
                events.append(data if data == "[DONE]" else json.loads(data))
        body = json.loads(raw) if r.status_code != 200 else None
        return Outcome(r.status_code, body, elapsed, events, raw, dict(r.headers))


def records(server: GatewayServer, db: Path) -> list[dict[str, Any]]:
    server.flush()
    store = SQLiteDecisionStore(db)
    try:
        return store.query(DecisionQuery(limit=None))
    finally:
        store.close()


def request_counts(server: GatewayServer) -> dict[str, float]:
    """`gearshift_requests_total` by status, read from the real /metrics endpoint."""
    text = httpx.get(server.root + "/metrics", timeout=5).text
    counts: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == "gearshift_requests":
            for s in fam.samples:
                if s.name.endswith("_total"):
                    counts[s.labels["status"]] = counts.get(s.labels["status"], 0.0) + s.value
    return counts


def assert_openai_error(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert {"message", "type", "param", "code"} <= set(err)
    return err


@contextlib.contextmanager
def running(settings: GatewaySettings, **kwargs: Any) -> Iterator[GatewayServer]:
    """A started gateway, stopped on exit (lifespan shutdown drains the decision writer)."""
    server = serve(settings, **kwargs)
    try:
        yield server
    finally:
        server.stop()

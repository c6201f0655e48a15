"""Routing rules through the real gateway: LLM-as-router, a cheap gate before a costlier router, category
routes to named deployments, context-window fit, and the record naming the rule that decided."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.conftest import Upstreams
from gateway.harness import GatewayServer, deployment
from gearshift.errors import ConfigError
from gearshift.gateway.app import create_app
from gearshift.gateway.settings import hash_key, parse_settings
from gearshift.routers.base import PromptLike, Router, RoutingScore, prompt_text
from gearshift.store.base import DecisionQuery
from support.fake_upstream import Behaviour, FakeUpstream

HELLO = "hello, thanks!"  # heuristic p_strong ~0.05
MIDDLE = "Explain why the sky is blue."  # ~0.43
HARD = ("Prove step by step that the integral of x^2 from 0 to 3 is finite, then analyze the complexity and the "
        "trade-offs. Also compare designs.")  # ~0.85
CODE = "Why does this crash?\n```\nx = [1][3]\n```"


@dataclass
class Extra:
    router: FakeUpstream
    coder: FakeUpstream


@pytest.fixture(scope="module")
def _extra() -> Iterator[Extra]:
    ex = Extra(FakeUpstream(answer="simple"), FakeUpstream(answer="coder answer"))
    ex.router.start()
    ex.coder.start()
    yield ex
    ex.router.stop()
    ex.coder.stop()


@pytest.fixture
def extra(_extra: Extra) -> Extra:
    _extra.router.reset()
    _extra.coder.reset()
    return _extra


class Counting(Router):
    """The 'costlier' router: a fixed p_strong, and the prompts it was asked about."""

    name = "counting"

    def __init__(self, p: float) -> None:
        self.p = p
        self.seen: list[str] = []

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        self.seen.extend(prompt_text(p) for p in prompts)
        return [RoutingScore(self.p, 1.0, f"counting {self.p}") for _ in prompts]


def settings(ups: Upstreams, db: Path, cheap: list[dict[str, Any]] | None = None, **sections: Any) -> Any:
    data: dict[str, Any] = {
        "tiers": [{"name": "cheap", "deployments": cheap or [deployment("cheap-a", ups.cheap_a)]},
                  {"name": "strong", "deployments": [deployment("strong", ups.strong)]}],
        "router": {"name": "heuristic"},
        "store": {"path": str(db)},
        "reliability": {"max_retries": 0, "base_delay_s": 0.0},
        "limits": {"max_body_bytes": 200_000, "request_timeout_s": 5.0},
        "conversations": {"enabled": False},
        **sections,
    }
    return parse_settings(data, "test")


def gateway_for(cfg: Any, **kwargs: Any) -> GatewayServer:
    return GatewayServer(create_app(cfg, **kwargs))  # started (and stopped) by `with`


def ask(c: httpx.Client, text: str, **extra: Any) -> httpx.Response:
    r = c.post("/v1/chat/completions",
               json={"model": "gearshift/auto", "messages": [{"role": "user", "content": text}], **extra})
    assert r.status_code == 200, r.text
    return r


def records(server: GatewayServer) -> dict[str, dict[str, Any]]:
    server.flush()
    store = server.gateway.store
    assert store is not None
    return {r["request_id"]: r for r in store.query(DecisionQuery(limit=None))}


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert m is not None, f"{name} not in /metrics"
    return float(m.group(1))


def test_llm_router_labels_map_to_tiers_and_garbage_falls_back_counted(upstreams: Upstreams, extra: Extra,
                                                                        tmp_path: Path) -> None:
    cfg = settings(upstreams, tmp_path / "d.sqlite",
                   router={"kind": "llm", "llm": {"deployment": "router-model", "default_tier": "cheap",
                                                  "labels": {"simple": "cheap", "complex": "strong"},
                                                  "max_tokens": 3}},
                   extra_deployments=[deployment("router-model", extra.router)])
    extra.router.script(Behaviour(text="complex"), Behaviour(text="Simple."), Behaviour(text="banana soup"))
    with gateway_for(cfg) as server, server.client() as c:
        ids = [ask(c, p).headers["x-gearshift-request-id"] for p in ("Plan a migration", "Capital of Peru?", "hm")]
        text = c.get("/metrics").text
        rows = records(server)
    strong, simple, garbage = (rows[i] for i in ids)
    assert (strong["tier"], strong["deployment"], strong["rule"]) == ("strong", "strong", "router")
    assert "llm label 'complex'" in strong["reason"] and strong["router"] == "llm"
    assert (simple["tier"], simple["deployment"]) == ("cheap", "cheap-a")
    assert (garbage["tier"], garbage["deployment"]) == ("cheap", "cheap-a") and "unparseable" in garbage["reason"]
    assert len(upstreams.strong.chat_requests) == 1 and len(upstreams.cheap_a.chat_requests) == 2
    sent = extra.router.chat_requests
    assert len(sent) == 3 and sent[0].json["max_tokens"] == 3 and sent[0].json["model"] == "router-model-upstream"
    assert "simple, complex" in sent[0].json["messages"][0]["content"]
    assert "Plan a migration" in sent[0].json["messages"][1]["content"]
    assert metric(text, "gearshift_llm_router_calls_total") == 3.0
    assert metric(text, "gearshift_llm_router_unparseable_total") == 1.0
    assert metric(text, "gearshift_llm_router_errors_total") == 0.0


def test_llm_router_call_is_priced_and_timed_into_the_record_and_metrics(upstreams: Upstreams, extra: Extra,
                                                                          tmp_path: Path) -> None:
    """Priced overheads: the classification call's cost (its deployment's prices) and latency are in the record
    (`router_cost_usd`, `router_latency_ms`, and inside `cost_usd`) and in /metrics."""
    cfg = settings(upstreams, tmp_path / "d.sqlite",
                   router={"kind": "llm", "llm": {"deployment": "router-model", "default_tier": "cheap"}},
                   extra_deployments=[deployment("router-model", extra.router, input_price_per_m=500.0,
                                                 output_price_per_m=1000.0)])
    extra.router.script(Behaviour(text="complex", latency_s=0.2), Behaviour(text="simple"))
    with gateway_for(cfg) as server, server.client() as c:
        ids = [ask(c, p).headers["x-gearshift-request-id"] for p in ("Plan a migration", "Capital of Peru?")]
        text = c.get("/metrics").text
        rows = records(server)
        board = c.get("/dashboard/api/summary").json()["cost"]
    sent = [r.json for r in extra.router.chat_requests]
    prompt_tokens = [sum(len(str(m["content"]).split()) for m in s["messages"]) for s in sent]
    first, second = rows[ids[0]], rows[ids[1]]
    for row, tokens in ((first, prompt_tokens[0]), (second, prompt_tokens[1])):
        expected = (tokens * 500.0 + 1 * 1000.0) / 1e6  # the fake upstream answers one word: one completion token
        assert row["router_cost_usd"] == pytest.approx(expected)
        answer_cost = (row["tokens_in"] * 1.0 + row["tokens_out"] * 2.0) / 1e6  # the tier's deployment prices
        assert row["cost_usd"] == pytest.approx(answer_cost + expected)  # what the request cost, router included
    assert first["router_latency_ms"] >= 200.0 > second["router_latency_ms"] > 0.0
    assert metric(text, "gearshift_llm_router_cost_usd_total") == pytest.approx(
        first["router_cost_usd"] + second["router_cost_usd"])
    assert metric(text, "gearshift_llm_router_latency_seconds_count") == 2.0
    assert metric(text, "gearshift_llm_router_latency_seconds_sum") >= 0.2
    assert metric(text, 'gearshift_cost_usd_total{tier="strong"}') == pytest.approx(first["cost_usd"])
    routing = first["router_cost_usd"] + second["router_cost_usd"]
    assert board["overheads"]["llm_router_usd"] == pytest.approx(routing, abs=1e-8)  # the dashboard's savings
    assert board["savings_before_overheads"] - board["savings"] == pytest.approx(routing / board["all_strong_usd"],
                                                                                 abs=1e-5)


def test_llm_router_down_serves_the_default_tier(upstreams: Upstreams, extra: Extra, tmp_path: Path) -> None:
    cfg = settings(upstreams, tmp_path / "d.sqlite", router={"kind": "llm", "llm": {"deployment": "router-model"}},
                   extra_deployments=[deployment("router-model", extra.router)])
    extra.router.script(Behaviour.status_code(500))
    with gateway_for(cfg) as server, server.client() as c:
        r = ask(c, "Capital of Peru?")
        text = c.get("/metrics").text
    assert r.headers["x-gearshift-tier"] == "strong"  # no default_tier: the strongest
    assert metric(text, "gearshift_llm_router_errors_total") == 1.0


def test_gate_decides_clear_cases_and_defers_the_middle_band(upstreams: Upstreams, tmp_path: Path) -> None:
    costly = Counting(0.9)
    cfg = settings(upstreams, tmp_path / "d.sqlite",
                   router={"name": "heuristic", "gate": {"name": "heuristic", "low": 0.2, "high": 0.8}})
    with gateway_for(cfg, router=costly) as server, server.client() as c:
        resp = [ask(c, p) for p in (HELLO, HARD, MIDDLE)]
        text = c.get("/metrics").text
        rows = records(server)
    hello, hard, middle = (rows[r.headers["x-gearshift-request-id"]] for r in resp)
    assert costly.seen == [MIDDLE]
    assert (hello["rule"], hello["tier"], hello["router"]) == ("gate", "cheap", "heuristic")
    assert (hard["rule"], hard["tier"]) == ("gate", "strong")
    assert (middle["rule"], middle["tier"], middle["router"], middle["score"]) == ("router", "strong", "counting", 0.9)
    assert "gate p_strong" in hello["reason"] and hello["propensity"] == 1.0
    assert resp[0].headers["x-gearshift-rule"] == "gate" and resp[2].headers["x-gearshift-router"] == "counting@1"
    assert metric(text, 'gearshift_routing_rule_decisions_total{rule="gate"}') == 2.0
    assert metric(text, 'gearshift_routing_rule_decisions_total{rule="router"}') == 1.0


def test_gate_with_exploration_logs_honest_propensities(upstreams: Upstreams, tmp_path: Path) -> None:
    cfg = settings(upstreams, tmp_path / "d.sqlite", router={"name": "heuristic", "gate": {}},
                   exploration={"epsilon": 0.5, "seed": 1})
    with gateway_for(cfg) as server, server.client() as c:
        for i in range(40):  # P(no strong draw at all) = 0.75**40 ~ 1e-5
            ask(c, f"hello number {i}, thanks!")
        rows = list(records(server).values())
    assert {r["rule"] for r in rows} == {"gate"}
    # the gate says cheap; uniform exploration at 0.5 over two tiers: cheap 0.75, strong 0.25
    assert {(r["tier"], r["propensity"]) for r in rows} == {("cheap", 0.75), ("strong", 0.25)}


def test_category_routes_send_to_named_deployments(upstreams: Upstreams, extra: Extra, tmp_path: Path) -> None:
    cfg = settings(upstreams, tmp_path / "d.sqlite",
                   routes=[{"name": "code", "deployments": ["coder"], "preset": "code", "keywords": ["python"]},
                           {"name": "math", "deployments": ["strong"], "keywords": ["integral"]}],
                   extra_deployments=[deployment("coder", extra.coder)])
    with gateway_for(cfg) as server, server.client() as c:
        code = ask(c, CODE)
        kw = ask(c, "Write a Python script that renames files")
        math = ask(c, "Compute the integral of 2x")
        plain = ask(c, HELLO)
        rows = records(server)
    assert code.json()["choices"][0]["message"]["content"] == "coder answer"
    assert len(extra.coder.chat_requests) == 2 and "x = [1][3]" in extra.coder.chat_requests[0].json["messages"][0][
        "content"]
    rec = rows[code.headers["x-gearshift-request-id"]]
    assert (rec["rule"], rec["category"], rec["deployment"], rec["propensity"]) == ("category", "code", "coder", 1.0)
    assert rec["router"] is None and code.headers["x-gearshift-rule"] == "category:code"
    assert rows[kw.headers["x-gearshift-request-id"]]["category"] == "code"
    m = rows[math.headers["x-gearshift-request-id"]]
    assert (m["category"], m["deployment"], m["tier"]) == ("math", "strong", "strong")
    assert len(upstreams.strong.chat_requests) == 1  # only the math route reached the strong tier
    p = rows[plain.headers["x-gearshift-request-id"]]
    assert (p["rule"], p["category"], p["deployment"]) == ("router", None, "cheap-a")


def test_long_requests_skip_deployments_whose_window_is_too_small(upstreams: Upstreams, extra: Extra,
                                                                  tmp_path: Path) -> None:
    cheap = [deployment("cheap-a", upstreams.cheap_a, context_window=1000),
             deployment("cheap-b", upstreams.cheap_b, context_window=100_000)]
    cfg = settings(upstreams, tmp_path / "d.sqlite", cheap=cheap,
                   routes=[{"name": "code", "deployments": ["coder-small", "coder"], "preset": "code"}],
                   extra_deployments=[deployment("coder-small", extra.router, context_window=1000),
                                      deployment("coder", extra.coder, context_window=100_000)])
    long_text = "please summarise: " + "lorem ipsum " * 500  # ~6000 chars: ~1500 tokens
    with gateway_for(cfg, router=Counting(0.1)) as server, server.client() as c:
        short_code = ask(c, CODE)
        long_code = ask(c, CODE + "\n" + long_text)
        long_plain = ask(c, long_text)
        rows = records(server)
    assert len(extra.router.chat_requests) == 1  # the small code deployment took only the short one
    assert len(extra.coder.chat_requests) == 1
    assert rows[short_code.headers["x-gearshift-request-id"]]["deployment"] == "coder-small"
    lc = rows[long_code.headers["x-gearshift-request-id"]]
    assert lc["deployment"] == "coder" and "coder-small" in lc["reason"]
    lp = rows[long_plain.headers["x-gearshift-request-id"]]
    assert (lp["rule"], lp["tier"], lp["deployment"]) == ("router", "cheap", "cheap-b")
    assert not upstreams.cheap_a.chat_requests


def test_a_capped_category_route_is_recorded_as_capped_and_refitted(upstreams: Upstreams, extra: Extra,
                                                                     tmp_path: Path) -> None:
    """A category route to an extra deployment counts as the strongest tier; once the key's strong share is
    used up, the cheap tier answers: the record and headers must say the cap decided (not the category rule),
    and the cheap tier's deployments must be re-checked against the request's size."""
    key = "gs-capped-key-0001"
    cheap = [deployment("cheap-a", upstreams.cheap_a, context_window=1000),
             deployment("cheap-b", upstreams.cheap_b, context_window=100_000)]
    cfg = settings(upstreams, tmp_path / "d.sqlite", cheap=cheap,
                   routes=[{"name": "code", "deployments": ["coder"], "preset": "code"}],
                   extra_deployments=[deployment("coder", extra.coder, context_window=100_000)],
                   auth={"keys": [{"id": "dev", "sha256": hash_key(key), "scopes": ["inference"],
                                   "max_strong_share": 0.25, "strong_share_window": 4}]})
    long_code = CODE + "\n" + "lorem ipsum " * 500  # ~1500 tokens: too big for cheap-a
    with gateway_for(cfg) as server, server.client(headers={"authorization": f"Bearer {key}"}) as c:
        first = ask(c, CODE)
        capped = [ask(c, text) for text in (CODE, long_code)]
        rows = records(server)
    assert first.headers["x-gearshift-rule"] == "category:code"
    assert first.json()["choices"][0]["message"]["content"] == "coder answer"
    assert len(extra.coder.chat_requests) == 1  # the cap held: no second request reached the coder
    short, long = (rows[r.headers["x-gearshift-request-id"]] for r in capped)
    for r, rec in zip(capped, (short, long), strict=True):
        assert r.headers["x-gearshift-rule"] == "strong_share_cap" and r.headers["x-gearshift-tier"] == "cheap"
        assert (rec["rule"], rec["category"], rec["tier"]) == ("strong_share_cap", "code", "cheap")
        assert "strong-tier share cap of key dev" in rec["reason"] and rec["propensity"] == 1.0
    assert short["deployment"] == "cheap-a"
    assert long["deployment"] == "cheap-b"  # re-fitted after the cap: cheap-a's window is too small
    assert len(upstreams.cheap_a.chat_requests) == 1


def test_without_rules_the_record_names_no_rule(gateway: GatewayServer) -> None:
    assert gateway.gateway.rules is None
    with gateway.client() as c:
        r = ask(c, HELLO)
        assert "x-gearshift-rule" not in r.headers
    rec = records(gateway)[r.headers["x-gearshift-request-id"]]
    assert rec["rule"] is None and rec["category"] is None and rec["router"] == "heuristic"


@pytest.mark.parametrize(("sections", "message"), [
    ({"routes": [{"name": "code", "deployments": ["nope"], "preset": "code"}]}, "unknown deployments"),
    ({"routes": [{"name": "code", "deployments": ["strong"]}]}, "needs keywords"),
    ({"router": {"kind": "llm", "llm": {"default_tier": "huge"}}}, "unknown tiers"),
    ({"router": {"llm": {"tier": "cheap"}}}, 'kind is not "llm"'),
    ({"router": {"gate": {"low": 0.9, "high": 0.1}}}, "must not exceed"),
])
def test_bad_routing_config_names_the_problem(upstreams: Upstreams, tmp_path: Path, sections: dict[str, Any],
                                              message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(upstreams, tmp_path / "d.sqlite", **sections)


def test_streamed_category_request_goes_to_the_route_deployment(upstreams: Upstreams, extra: Extra,
                                                                 tmp_path: Path) -> None:
    cfg = settings(upstreams, tmp_path / "d.sqlite",
                   routes=[{"name": "code", "deployments": ["coder"], "preset": "code"}],
                   extra_deployments=[deployment("coder", extra.coder)])
    with gateway_for(cfg) as server, server.client() as c:
        r = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "stream": True,
                                                 "messages": [{"role": "user", "content": CODE}]})
        assert r.status_code == 200 and "coder" in r.text
        rec = records(server)[r.headers["x-gearshift-request-id"]]
    assert len(extra.coder.chat_requests) == 1 and extra.coder.chat_requests[0].json["stream"] is True
    assert (rec["rule"], rec["category"], rec["deployment"], rec["stream"]) == ("category", "code", "coder", True)

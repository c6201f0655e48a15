"""Conversation stickiness and the cascade (cheap answers first, verifiers decide) through the real gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.conftest import Upstreams
from gateway.harness import GatewayServer, make_settings, serve
from gearshift.store.base import DecisionQuery
from support.fake_upstream import Behaviour

HARD = ("Prove step by step that the integral of x^2 from 0 to 3 equals 9, then write a Python function that "
        "computes the derivative of a polynomial, and explain why. Also compare it with a symbolic approach. ") * 3


def _post(server: GatewayServer, messages: list[dict[str, Any]], model: str = "gearshift/auto",
          **headers: str) -> Any:
    with server.client() as c:
        return c.post("/v1/chat/completions", json={"model": model, "messages": messages}, headers=headers)


def test_conversation_keeps_its_strong_tier_via_header(gateway: GatewayServer) -> None:
    first = _post(gateway, [{"role": "user", "content": HARD}], **{"x-gearshift-conversation-id": "c1"})
    again = _post(gateway, [{"role": "user", "content": "thanks!"}], **{"x-gearshift-conversation-id": "c1"})
    other = _post(gateway, [{"role": "user", "content": "thanks!"}], **{"x-gearshift-conversation-id": "c2"})
    assert first.headers["x-gearshift-tier"] == "strong"
    assert again.headers["x-gearshift-tier"] == "strong"
    assert other.headers["x-gearshift-tier"] == "cheap"


def test_conversation_found_from_history_without_header(gateway: GatewayServer) -> None:
    turn1 = [{"role": "user", "content": HARD}]
    first = _post(gateway, turn1)
    answer = first.json()["choices"][0]["message"]["content"]
    turn2 = [*turn1, {"role": "assistant", "content": answer}, {"role": "user", "content": "thanks!"}]
    # a threshold of 0.9999 alone would send this cheap; the conversation keeps it strong
    second = _post(gateway, turn2, model="router-heuristic-0.9999")
    assert float(second.headers["x-gearshift-score"]) < 0.9999
    fresh = _post(gateway, [{"role": "user", "content": "unrelated"}, *turn2[1:]], model="router-heuristic-0.9999")
    assert fresh.headers["x-gearshift-tier"] == "cheap"
    assert second.headers["x-gearshift-tier"] == "strong"
    gateway.flush()
    store = gateway.gateway.store
    assert store is not None
    rec = next(r for r in store.query(DecisionQuery(limit=None))
               if r["request_id"] == second.headers["x-gearshift-request-id"])
    assert "kept conversation tier strong" in rec["reason"] and rec["segment"]["turn"] == 2


def test_downgrade_is_opt_in(upstreams: Upstreams, tmp_path: Path) -> None:
    server = serve(make_settings([upstreams.cheap_a], upstreams.strong, tmp_path / "d.sqlite",
                                 conversations={"allow_downgrade": True}))
    try:
        _post(server, [{"role": "user", "content": HARD}], **{"x-gearshift-conversation-id": "c1"})
        again = _post(server, [{"role": "user", "content": "thanks!"}], **{"x-gearshift-conversation-id": "c1"})
        assert again.headers["x-gearshift-tier"] == "cheap"
    finally:
        server.stop()


def test_cascade_escalates_when_a_verifier_rejects_the_cheap_answer(upstreams: Upstreams, tmp_path: Path) -> None:
    server = serve(make_settings([upstreams.cheap_a], upstreams.strong, tmp_path / "d.sqlite",
                                 cascade={"enabled": True, "verifiers": ["empty", "truncation"]}))
    try:
        upstreams.cheap_a.script(Behaviour(finish_reason="length"))  # a cut cheap answer
        escalated = _post(server, [{"role": "user", "content": "hello"}])
        shipped = _post(server, [{"role": "user", "content": "hello"}])
        assert escalated.json()["choices"][0]["message"]["content"] == "strong answer here"
        assert escalated.headers["x-gearshift-tier"] == "strong"
        assert shipped.headers["x-gearshift-tier"] == "cheap"
        server.flush()
        store = server.gateway.store
        assert store is not None
        by_id = {r["request_id"]: r for r in store.query(DecisionQuery(limit=None))}
        rec = by_id[escalated.headers["x-gearshift-request-id"]]
        assert [(s["tier"], s["shipped"]) for s in rec["cascade"]] == [("cheap", False), ("strong", True)]
        verdicts = {v["name"]: v["passed"] for v in rec["cascade"][0]["verdicts"]}
        assert verdicts["truncation"] is False and rec["escalated"] and rec["tier"] == "strong"
        assert [(s["tier"], s["shipped"]) for s in by_id[shipped.headers["x-gearshift-request-id"]]["cascade"]] \
            == [("cheap", True)]
        # the rejected cheap answer was paid for too: the record (and the key's budget) books both rungs
        cheap_usd, strong_usd = (s["cost_usd"] for s in rec["cascade"])
        assert cheap_usd > 0 and strong_usd > 0
        assert rec["cost_usd"] == pytest.approx(cheap_usd + strong_usd)
        usage = escalated.json()["usage"]  # the strong answer's own tokens, at 1 $/M in and 2 $/M out
        assert strong_usd == pytest.approx((usage["prompt_tokens"] + 2 * usage["completion_tokens"]) / 1e6)
    finally:
        server.stop()

"""The cascade's LLM-judge verifier from a gateway config: a fluent wrong cheap answer is caught and escalated,
the judge's calls are priced into the record, and its hourly budget holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from closed_loop.shadow_harness import JudgeUpstream
from gateway.harness import deployment, make_settings, serve
from gearshift.errors import ConfigError
from gearshift.gateway.app import create_app
from gearshift.store.base import DecisionQuery
from support.fake_upstream import FakeUpstream


def _settings(cheap: FakeUpstream, strong: FakeUpstream, judge: FakeUpstream, db: Path, **cascade: Any) -> Any:
    return make_settings([cheap], strong, db, extra_deployments=[deployment("judge", judge)],
                         cascade={"enabled": True, "verifiers": ["empty", "judge"], "judge_deployment": "judge",
                                  **cascade})


def test_judge_verifier_escalates_a_bad_cheap_answer_and_books_its_cost(tmp_path: Path) -> None:
    with FakeUpstream(answer="a confident but wrong guess") as cheap, \
            FakeUpstream(answer="the strong answer is 42") as strong, JudgeUpstream() as judge:
        server = serve(_settings(cheap, strong, judge, tmp_path / "d.sqlite"))
        try:
            with server.client() as c:
                r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                         "messages": [{"role": "user", "content": "what is 6*7?"}]})
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "the strong answer is 42"
            assert r.headers["x-gearshift-tier"] == "strong"
            server.flush()
            store = server.gateway.store
            assert store is not None
            (rec,) = store.query(DecisionQuery(limit=None))
        finally:
            server.stop()
    assert len(judge.chat_requests) == 2  # the cheap answer, then the strong one (judged, shipped either way)
    cheap_judged = {v["name"]: v for v in rec["cascade"][0]["verdicts"]}["judge"]
    assert cheap_judged["passed"] is False and "3/10" in cheap_judged["reason"] and cheap_judged["cost_usd"] > 0
    verdict_usd = sum(v["cost_usd"] or 0.0 for s in rec["cascade"] for v in s["verdicts"])
    answers_usd = sum(s["cost_usd"] for s in rec["cascade"])
    assert rec["cost_usd"] == pytest.approx(answers_usd + verdict_usd) and verdict_usd > 0


def test_judge_budget_spent_escalates_with_the_reason_recorded(tmp_path: Path) -> None:
    with FakeUpstream(answer="a strong-sounding cheap answer") as cheap, \
            FakeUpstream(answer="the strong answer is 42") as strong, JudgeUpstream() as judge:
        server = serve(_settings(cheap, strong, judge, tmp_path / "d.sqlite", judge_max_usd_per_hour=1e-9))
        try:
            with server.client() as c:
                for _ in range(2):
                    assert c.post("/v1/chat/completions", json={
                        "model": "gearshift/auto", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
            server.flush()
            store = server.gateway.store
            assert store is not None
            first, second = sorted(store.query(DecisionQuery(limit=None)), key=lambda r: r["time"])
        finally:
            server.stop()
    # the first cheap answer passes the judge (it says "strong"); after that the budget is spent
    assert first["tier"] == "cheap"
    reason = {v["name"]: v for v in second["cascade"][0]["verdicts"]}["judge"]["reason"]
    assert second["tier"] == "strong" and "budget" in reason
    assert len(judge.chat_requests) == 1


def test_judge_verifier_without_a_judge_says_how_to_configure_one(tmp_path: Path) -> None:
    with FakeUpstream() as cheap, FakeUpstream() as strong:
        bad = make_settings([cheap], strong, tmp_path / "d.sqlite",
                            cascade={"enabled": True, "verifiers": ["judge"]})
        with pytest.raises(ConfigError, match="judge_deployment"):
            create_app(bad)
        tier = make_settings([cheap], strong, tmp_path / "d.sqlite",
                             cascade={"enabled": True, "verifiers": ["judge"], "judge_tier": "strong"})
        create_app(tier)  # the strong tier can judge the cheap one


def test_logprob_verifier_asks_the_upstream_for_logprobs_and_hides_them_from_the_client(tmp_path: Path) -> None:
    with FakeUpstream(answer="a hesitant cheap answer") as cheap, FakeUpstream(answer="strong answer") as strong:
        for ask, tier in ((True, "strong"), (False, "cheap")):
            cheap.reset()
            settings = make_settings([cheap], strong, tmp_path / f"{ask}.sqlite", cascade={
                "enabled": True, "verifiers": ["empty", "logprob"], "min_mean_logprob": -0.1,
                "request_logprobs": ask})
            server = serve(settings)
            try:
                with server.client() as c:
                    r = c.post("/v1/chat/completions", json={
                        "model": "gearshift/auto", "messages": [{"role": "user", "content": "hi"}]})
                server.flush()
                store = server.gateway.store
                assert store is not None
                (rec,) = store.query(DecisionQuery(limit=None))
            finally:
                server.stop()
            assert r.status_code == 200 and r.headers["x-gearshift-tier"] == tier
            assert "logprobs" not in r.json()["choices"][0]  # the client did not ask for them
            assert bool(cheap.chat_requests[0].json.get("logprobs")) is ask
            names = [v["name"] for v in rec["cascade"][0]["verdicts"]]
            if ask:  # the fake's tokens have logprob -0.25, under the -0.1 floor: the cheap answer escalates
                logprob = next(v for v in rec["cascade"][0]["verdicts"] if v["name"] == "logprob")
                assert logprob["passed"] is False and "-0.250" in logprob["reason"]
            else:  # no logprobs asked, none sent: the verifier gives no verdict and the cheap answer ships
                assert "logprob" not in names


def _sse_text(r: Any) -> tuple[str, list[dict[str, Any]]]:
    import json

    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    text = "".join((c.get("delta") or {}).get("content") or "" for e in events for c in e.get("choices") or [])
    assert r.text.rstrip().endswith("data: [DONE]")
    return text, events


def test_stream_buffer_mode_verifies_before_the_first_byte(tmp_path: Path) -> None:
    from support.fake_upstream import Behaviour

    with FakeUpstream(answer="a cut off cheap answer", default=Behaviour(finish_reason="length")) as cheap, \
            FakeUpstream(answer="the strong answer is 42") as strong:
        settings = make_settings([cheap], strong, tmp_path / "d.sqlite", cascade={
            "enabled": True, "verifiers": ["empty", "truncation"], "stream_mode": "buffer"})
        server = serve(settings)
        try:
            with server.client() as c:
                r = c.post("/v1/chat/completions", json={
                    "model": "gearshift/auto", "stream": True, "stream_options": {"include_usage": True},
                    "messages": [{"role": "user", "content": "hi"}]})
            server.flush()
            store = server.gateway.store
            assert store is not None
            (rec,) = store.query(DecisionQuery(limit=None))
        finally:
            server.stop()
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    text, events = _sse_text(r)
    assert text == "the strong answer is 42" and r.headers["x-gearshift-tier"] == "strong"
    assert events[-1]["usage"]["completion_tokens"] > 0  # asked for with include_usage
    assert not any(req.json.get("stream") for req in cheap.chat_requests)  # verified whole, then replayed
    assert rec["escalated"] and [s["tier"] for s in rec["cascade"]] == ["cheap", "strong"]


def test_stream_buffer_past_its_time_budget_streams_unverified_and_says_so(tmp_path: Path) -> None:
    from support.fake_upstream import Behaviour

    with FakeUpstream(answer="a slow cheap answer", default=Behaviour(latency_s=1.5)) as cheap, \
            FakeUpstream(answer="strong") as strong:
        settings = make_settings([cheap], strong, tmp_path / "d.sqlite", cascade={
            "enabled": True, "verifiers": ["empty"], "stream_mode": "buffer", "buffer_max_s": 0.3})
        server = serve(settings)
        try:
            with server.client() as c:
                r = c.post("/v1/chat/completions", json={
                    "model": "gearshift/auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
            server.flush()
            store = server.gateway.store
            assert store is not None
            (rec,) = store.query(DecisionQuery(limit=None))
        finally:
            server.stop()
    text, _ = _sse_text(r)
    assert text == "a slow cheap answer" and rec["tier"] == "cheap" and not rec["cascade"]
    assert "streamed unverified" in rec["reason"] and not rec["escalated"]
    assert [bool(req.json.get("stream")) for req in cheap.chat_requests] == [False, True]  # the buffer, then stream


def test_consistency_verifier_escalates_when_a_second_cheap_model_disagrees(tmp_path: Path) -> None:
    with FakeUpstream(answer="Adding gives 41. The answer is 41") as cheap, \
            FakeUpstream(answer="The answer is 42") as strong, FakeUpstream(answer="So the answer is 42") as other:
        settings = make_settings([cheap], strong, tmp_path / "d.sqlite",
                                 extra_deployments=[deployment("other-cheap", other)],
                                 cascade={"enabled": True, "verifiers": ["empty", "consistency"],
                                          "consistency_deployment": "other-cheap"})
        server = serve(settings)
        try:
            with server.client() as c:
                r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                         "messages": [{"role": "user", "content": "6*7?"}]})
            server.flush()
            store = server.gateway.store
            assert store is not None
            (rec,) = store.query(DecisionQuery(limit=None))
        finally:
            server.stop()
    assert r.headers["x-gearshift-tier"] == "strong" and r.json()["choices"][0]["message"]["content"] == \
        "The answer is 42"
    verdict = {v["name"]: v for v in rec["cascade"][0]["verdicts"]}["consistency"]
    assert verdict["passed"] is False and "41 and 42" in verdict["reason"] and verdict["cost_usd"] > 0
    assert other.chat_requests[0].json["messages"][-1]["content"] == "6*7?"  # the same request, asked again

"""The cascade runner: ships verified cheap answers, escalates on each failing verifier, stops at the top."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from gearshift.cascade.factory import build_cascade
from gearshift.cascade.runner import (
    CascadeConfig,
    CascadeRunner,
    replay_chunks,
    should_cascade,
    unstreamed,
)
from gearshift.cascade.verifiers import (
    EmptyAnswerVerifier,
    JsonVerifier,
    LogprobVerifier,
    RefusalVerifier,
    ShapeVerifier,
    TruncationVerifier,
)
from gearshift.errors import ConfigError, UpstreamError
from gearshift.providers.base import Deployment

TIERS = [[Deployment("cheap-a", "openai", "small"), Deployment("cheap-b", "openai", "small2")],
         [Deployment("mid", "openai", "medium")],
         [Deployment("top", "openai", "large")]]
REQ: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": "Give me JSON"}]}
ALL = [ShapeVerifier(), EmptyAnswerVerifier(), TruncationVerifier(), RefusalVerifier(), JsonVerifier(),
       LogprobVerifier(-0.5)]


def body(content: Any = "fine", finish: str = "stop", logprob: float | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
    if logprob is not None:
        choice["logprobs"] = {"content": [{"token": "x", "logprob": logprob}]}
    return {"object": "chat.completion", "choices": [choice]}


class Scripted:
    """A call that answers with one scripted body per tier and records which tiers were asked."""

    def __init__(self, by_tier: dict[str, dict[str, Any] | Exception]) -> None:
        self.by_tier = by_tier
        self.asked: list[str] = []

    async def __call__(self, deployments: Sequence[Deployment], request: dict[str, Any]
                       ) -> tuple[dict[str, Any], Deployment, Any]:
        dep = deployments[0]
        self.asked.append(dep.name)
        out = self.by_tier[dep.name]
        if isinstance(out, Exception):
            raise out
        return out, dep, [{"deployment": dep.name, "outcome": "ok"}]


async def test_ships_cheap_answer_when_all_verifiers_pass() -> None:
    call = Scripted({"cheap-a": body("Here you go.", logprob=-0.1), "mid": body(), "top": body()})
    out = await CascadeRunner(TIERS, call, ALL).run(REQ)
    assert out.tier_index == 0 and out.verified and out.escalations == 0
    assert call.asked == ["cheap-a"]
    assert {v.name for v in out.steps[0].verdicts} == {"shape", "empty", "truncation", "refusal", "logprob"}
    assert out.steps[0].escalated_because is None and out.deployment.name == "cheap-a"


@pytest.mark.parametrize(("cheap", "request_extra", "failing"), [
    ({"choices": []}, {}, "shape+empty"),
    (body("   "), {}, "empty"),
    (body("The answer is", finish="length"), {}, "truncation"),
    (body("I'm sorry, but I can't help with that."), {}, "refusal"),
    (body("Je suis désolé, mais je ne peux pas vous aider."), {}, "refusal"),
    (body("not json"), {"response_format": {"type": "json_object"}}, "json"),
    (body("unsure", logprob=-3.0), {}, "logprob"),
])
async def test_escalates_on_each_failing_verifier(cheap: dict[str, Any], request_extra: dict[str, Any],
                                                  failing: str) -> None:
    good = body('{"ok": true}', logprob=-0.05)
    call = Scripted({"cheap-a": cheap, "mid": good, "top": good})
    out = await CascadeRunner(TIERS, call, ALL).run({**REQ, **request_extra})
    assert out.tier_index == 1 and out.verified and out.response is good
    assert call.asked == ["cheap-a", "mid"]
    first = out.steps[0]
    assert [v.name for v in first.verdicts if not v.passed] == failing.split("+")
    assert first.escalated_because is not None and first.escalated_because.startswith(failing.split("+")[0])


async def test_stops_at_the_top_tier_and_ships_unverified() -> None:
    refusal = body("I cannot help with that.")
    call = Scripted({"cheap-a": refusal, "mid": refusal, "top": refusal})
    out = await CascadeRunner(TIERS, call, ALL).run(REQ)
    assert out.tier_index == 2 and not out.verified and out.escalations == 2
    assert call.asked == ["cheap-a", "mid", "top"]
    assert out.steps[-1].escalated_because is None and not out.steps[-1].passed


async def test_max_escalations_and_start_tier_bound_the_cascade() -> None:
    refusal = body("I cannot help with that.")
    call = Scripted({"cheap-a": refusal, "mid": refusal, "top": body("ok")})
    out = await CascadeRunner(TIERS, call, ALL, CascadeConfig(max_escalations=1)).run(REQ)
    assert out.tier_index == 1 and not out.verified and call.asked == ["cheap-a", "mid"]
    call2 = Scripted({"cheap-a": refusal, "mid": refusal, "top": body("ok")})
    out2 = await CascadeRunner(TIERS, call2, ALL).run(REQ, start_tier=1)
    assert out2.tier_index == 2 and call2.asked == ["mid", "top"]


async def test_configured_verifier_subset_is_the_only_one_run() -> None:
    call = Scripted({"cheap-a": body("I cannot help with that."), "mid": body(), "top": body()})
    out = await CascadeRunner(TIERS, call, ALL, CascadeConfig(verifiers=("shape", "empty"))).run(REQ)
    assert out.tier_index == 0 and [v.name for v in out.steps[0].verdicts] == ["shape", "empty"]
    with pytest.raises(ConfigError, match="unknown verifiers"):
        CascadeRunner(TIERS, call, ALL, CascadeConfig(verifiers=("nope",)))


async def test_whole_tier_failure_escalates_or_raises_per_config() -> None:
    call = Scripted({"cheap-a": UpstreamError("all cheap deployments failed"), "mid": body("ok"), "top": body()})
    out = await CascadeRunner(TIERS, call, ALL).run(REQ)
    assert out.tier_index == 1 and out.steps[0].deployment is None
    assert out.steps[0].error == "all cheap deployments failed" and out.steps[0].attempts is None
    strict = CascadeRunner(TIERS, call, ALL, CascadeConfig(escalate_on_error=False))
    with pytest.raises(UpstreamError):
        await strict.run(REQ)


async def test_judge_is_skipped_once_a_free_verifier_failed() -> None:
    judged: list[dict[str, Any]] = []

    async def judge(request: dict[str, Any]) -> dict[str, Any]:
        judged.append(request)
        return body("9")

    config, verifiers = build_cascade({"verifiers": ["refusal", "judge"]}, judge=judge)
    call = Scripted({"cheap-a": body("I cannot help with that."), "mid": body("Sure: 4."), "top": body()})
    out = await CascadeRunner(TIERS, call, verifiers, config).run(REQ)
    assert out.tier_index == 1 and len(judged) == 1
    assert [v.name for v in out.steps[1].verdicts] == ["refusal", "judge"]


def test_build_cascade_rejects_typos_and_missing_judge() -> None:
    with pytest.raises(ConfigError, match="unknown keys"):
        build_cascade({"max_escalation": 1})
    with pytest.raises(ConfigError, match="unknown"):
        build_cascade({"verifiers": ["refusals"]})
    with pytest.raises(ConfigError, match="judge"):
        build_cascade({"verifiers": ["judge"]})
    config, verifiers = build_cascade({"enabled": True, "min_mean_logprob": -1.0, "max_escalations": 1})
    assert config.max_escalations == 1
    assert [v.name for v in verifiers] == ["shape", "empty", "truncation", "refusal", "json", "logprob"]
    logprob = verifiers[-1]
    assert isinstance(logprob, LogprobVerifier) and logprob.min_mean_logprob == -1.0


def test_streaming_skips_the_cascade_unless_buffered() -> None:
    streamed = {**REQ, "stream": True, "stream_options": {"include_usage": True}}
    assert not should_cascade(streamed, CascadeConfig())
    assert should_cascade(streamed, CascadeConfig(stream_mode="buffer"))
    assert should_cascade(REQ, CascadeConfig())
    assert "stream" not in unstreamed(streamed) and "stream_options" not in unstreamed(streamed)
    chunks = replay_chunks({**body("hello"), "usage": {"total_tokens": 3}})
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "hello"}
    assert chunks[1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"] == {"total_tokens": 3}

"""Each verifier on crafted responses: what ships and what escalates."""

from __future__ import annotations

from typing import Any

import pytest

from gearshift.cascade.judge import JudgeVerifier, parse_rating
from gearshift.cascade.math_verifiers import ArithmeticVerifier, FinalAnswerVerifier
from gearshift.cascade.verifiers import (
    EmptyAnswerVerifier,
    JsonVerifier,
    LogprobVerifier,
    RefusalVerifier,
    ShapeVerifier,
    TruncationVerifier,
)
from gearshift.errors import UpstreamError

REQ: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "What is 2+2?"}]}


def resp(content: Any = "4", finish: str = "stop", **msg: Any) -> dict[str, Any]:
    return {"object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, **msg},
                         "finish_reason": finish}]}


def test_shape_accepts_text_and_tool_calls_and_rejects_broken_bodies() -> None:
    v = ShapeVerifier()
    assert v.verify(REQ, resp("4")).passed
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    assert v.verify(REQ, resp(None, tool_calls=[call])).passed
    assert not v.verify(REQ, {"choices": []}).passed
    assert not v.verify(REQ, {"error": {"message": "x"}}).passed
    assert not v.verify(REQ, resp(None)).passed
    assert not v.verify(REQ, resp("", tool_calls=[{"id": "c1"}])).passed


def test_empty_answer_fails_whitespace_only() -> None:
    assert not EmptyAnswerVerifier().verify(REQ, resp("  \n\t ")).passed
    assert EmptyAnswerVerifier().verify(REQ, resp("ok")).passed
    assert not EmptyAnswerVerifier(min_chars=5).verify(REQ, resp("ok")).passed


def test_truncation_fails_on_length_finish() -> None:
    assert not TruncationVerifier().verify(REQ, resp("The answer is", finish="length")).passed
    assert TruncationVerifier().verify(REQ, resp("4", finish="stop")).passed


SCHEMA_REQ = {**REQ, "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {
    "type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}}}}


def test_json_schema_valid_and_invalid() -> None:
    v = JsonVerifier()
    assert v.verify(SCHEMA_REQ, resp('{"answer": 4}')).passed  # type: ignore[union-attr]
    wrong_type = v.verify(SCHEMA_REQ, resp('{"answer": "four"}'))
    assert wrong_type is not None and not wrong_type.passed and "answer" in wrong_type.reason
    missing = v.verify(SCHEMA_REQ, resp('{"result": 4}'))
    assert missing is not None and not missing.passed
    not_json = v.verify(SCHEMA_REQ, resp("The answer is 4"))
    assert not_json is not None and not not_json.passed


def test_json_object_mode_and_no_verdict_without_response_format() -> None:
    req = {**REQ, "response_format": {"type": "json_object"}}
    v = JsonVerifier()
    assert v.verify(req, resp('{"a": 1}')).passed  # type: ignore[union-attr]
    assert not v.verify(req, resp("[1, 2]")).passed  # type: ignore[union-attr]
    assert v.verify(REQ, resp("not json at all")) is None
    fenced = resp('```json\n{"a": 1}\n```')
    assert not v.verify(req, fenced).passed  # type: ignore[union-attr]
    assert JsonVerifier(allow_code_fence=True).verify(req, fenced).passed  # type: ignore[union-attr]


def test_json_schema_that_is_itself_invalid_gives_no_verdict() -> None:
    req = {**REQ, "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 12}}}}
    assert JsonVerifier().verify(req, resp("{}")) is None


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that request.",
    "I’m sorry, but I cannot provide that.",  # curly apostrophe
    "Lo siento, pero no puedo ayudarte con eso.",
    "Es tut mir leid, aber ich kann dabei nicht helfen.",
    "抱歉，我无法回答这个问题。",
])
def test_refusals_in_several_languages_fail(text: str) -> None:
    verdict = RefusalVerifier().verify(REQ, resp(text))
    assert verdict is not None and not verdict.passed


def test_refusal_only_checks_the_opening_and_phrases_are_configurable() -> None:
    long_answer = "Here is the plan. " * 30 + "Note: I can't help with taxes."
    assert RefusalVerifier().verify(REQ, resp(long_answer)).passed  # type: ignore[union-attr]
    assert RefusalVerifier().verify(REQ, resp("Sure, 2+2 = 4.")).passed  # type: ignore[union-attr]
    custom = RefusalVerifier(phrases=["computer says no"])
    assert not custom.verify(REQ, resp("Computer says no.")).passed  # type: ignore[union-attr]
    assert custom.verify(REQ, resp("I can't help with that.")).passed  # type: ignore[union-attr]


def with_logprobs(values: list[float]) -> dict[str, Any]:
    r = resp("a b c")
    r["choices"][0]["logprobs"] = {"content": [{"token": "t", "logprob": v} for v in values]}
    return r


def test_logprob_confidence_threshold_and_absent_logprobs() -> None:
    v = LogprobVerifier(min_mean_logprob=-0.5)
    high = v.verify(REQ, with_logprobs([-0.01, -0.2, -0.1]))
    low = v.verify(REQ, with_logprobs([-2.0, -1.5, -0.1]))
    assert high is not None and high.passed and high.score is not None and high.score > 0.85
    assert low is not None and not low.passed and low.score is not None and low.score < 0.4
    assert v.verify(REQ, resp("no logprobs")) is None
    assert LogprobVerifier(min_mean_logprob=-2.0).verify(REQ, with_logprobs([-1.5])).passed  # type: ignore[union-attr]


@pytest.mark.parametrize(("reply", "rating"), [
    ("8", 8), ("Rating: 3", 3), ("**9**", 9), ("I'd give it 7/10.", 7), ("10", 10),
    ("The answer is fine", None), ("", None), ("eleven", None),
])
def test_parse_rating(reply: str, rating: int | None) -> None:
    assert parse_rating(reply) == rating


async def test_judge_rates_and_counts_unparseable_replies() -> None:
    replies = iter(["9", "3", "no idea", "Score: 7"])
    sent: list[dict[str, Any]] = []

    async def complete(request: dict[str, Any]) -> dict[str, Any]:
        sent.append(request)
        return resp(next(replies))

    judge = JudgeVerifier(complete, model="small", min_rating=7)
    good, bad, unparseable, borderline = [await judge.verify(REQ, resp("4")) for _ in range(4)]
    assert good.passed and good.score == pytest.approx(0.9)
    assert not bad.passed
    assert not unparseable.passed and "unparseable" in unparseable.reason
    assert borderline.passed
    assert judge.unparseable == 1 and judge.calls == 4
    assert sent[0]["model"] == "small" and "What is 2+2?" in sent[0]["messages"][1]["content"]


async def test_judge_unparseable_default_and_failed_call_are_counted() -> None:
    async def broken(request: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError("judge down")

    async def rambling(request: dict[str, Any]) -> dict[str, Any]:
        return resp("It depends.")

    lenient = JudgeVerifier(rambling, unparseable_passes=True)
    assert (await lenient.verify(REQ, resp("4"))).passed
    strict = JudgeVerifier(broken)
    verdict = await strict.verify(REQ, resp("4"))
    assert not verdict.passed and "judge down" in verdict.reason
    assert lenient.unparseable == 1 and strict.unparseable == 1


def test_final_answer_and_arithmetic_verifiers() -> None:
    fa = FinalAnswerVerifier()
    ok = fa.verify(REQ, resp("16 - 7 = 9 eggs, 9 * $2 = $18.\n#### 18"))
    assert ok.passed and ok.score == 18
    assert fa.verify(REQ, resp("So the answer is $1,250.50.")).score == pytest.approx(1250.5)
    assert not fa.verify(REQ, resp("The value is 80,000 + 50,000 = $<<80000+50000=130000>>130,00")).passed
    ar = ArithmeticVerifier()
    assert ar.verify(REQ, resp("3 x 60 = 180 and <<180*3=540>>540")).passed
    wrong = ar.verify(REQ, resp("She has 16 - 3 = 12 eggs left."))
    assert not wrong.passed and "16 - 3" in wrong.reason
    assert ar.verify(REQ, resp("No numbers here.")).passed

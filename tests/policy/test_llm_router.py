"""LLM-as-router: label parsing, tier mapping, fallback counting."""

from __future__ import annotations

from typing import Any

import pytest

from gearshift.errors import ConfigError, UpstreamError
from gearshift.policy.llm_router import LLMRouter, parse_label
from gearshift.routers.policy import TierPolicy


def reply(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


def scripted(*texts: str) -> tuple[list[dict[str, Any]], Any]:
    sent: list[dict[str, Any]] = []
    it = iter(texts)

    async def complete(request: dict[str, Any]) -> dict[str, Any]:
        sent.append(request)
        return reply(next(it))

    return sent, complete


@pytest.mark.parametrize(("text", "label"), [
    ("code", "code"), ("Code.", "code"), ("Category: MATH", "math"), ("simple", "simple"),
    ("I think this is complex, not simple", "complex"), ("decoder", None), ("", None), ("unknown", None),
])
def test_parse_label(text: str, label: str | None) -> None:
    assert parse_label(text, ["simple", "complex", "code", "math"]) == label


async def test_labels_map_to_tiers_and_p_strong() -> None:
    sent, complete = scripted("simple", "code", "math")
    router = LLMRouter(complete, tiers=("cheap", "mid", "strong"),
                       label_tiers={"simple": "cheap", "code": "mid", "math": "strong"}, model="tiny")
    simple, code, math = [await router.route("What is the capital of France?") for _ in range(3)]
    assert (simple.tier, simple.score.p_strong, simple.parsed) == ("cheap", 0.0, True)
    assert (code.tier, code.tier_index, code.score.p_strong) == ("mid", 1, 0.5)
    assert (math.tier, math.score.p_strong, math.label) == ("strong", 1.0, "math")
    assert router.unparseable == 0 and router.calls == 3
    assert sent[0]["model"] == "tiny" and "capital of France" in sent[0]["messages"][1]["content"]
    assert "simple, code, math" in sent[0]["messages"][0]["content"]
    assert TierPolicy(("cheap", "mid", "strong"), (0.3, 0.7)).decide(code.score).tier == "mid"


async def test_unparseable_and_failed_calls_fall_back_and_are_counted() -> None:
    _, complete = scripted("I would say it's hard to tell.")
    router = LLMRouter(complete, default_tier="cheap")
    out = await router.route("hello")
    assert not out.parsed and out.label is None and out.tier == "cheap" and out.score.confidence == 0.0
    assert router.unparseable == 1

    async def broken(request: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError("router model down")

    failing = LLMRouter(broken)
    score = await failing.score([{"role": "user", "content": "hi"}])
    assert score.p_strong == 1.0 and "router model down" in score.reason
    assert failing.errors == 1 and failing.unparseable == 0


def test_mapping_to_unknown_tier_is_a_config_error() -> None:
    _, complete = scripted()
    with pytest.raises(ConfigError, match="unknown tiers"):
        LLMRouter(complete, label_tiers={"simple": "tiny"})
    with pytest.raises(ConfigError, match="unknown tiers"):
        LLMRouter(complete, default_tier="huge")


async def test_reply_given_as_content_parts_is_read() -> None:
    async def complete(request: dict[str, Any]) -> dict[str, Any]:
        return {"choices": [{"message": {"role": "assistant", "content": [{"type": "text", "text": "math"}]}}]}

    out = await LLMRouter(complete).route("integrate x^2")
    assert out.parsed and out.label == "math" and out.tier == "strong"

"""The cascade over real HTTP: FailoverExecutor + OpenAI-compatible provider against two fake upstreams."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gearshift.cascade.factory import build_cascade
from gearshift.cascade.runner import CascadeRunner, executor_call
from gearshift.providers.base import Deployment
from gearshift.providers.openai_compat import OpenAICompatProvider
from gearshift.providers.reliability import FailoverExecutor
from support.fake_upstream import Behaviour, FakeUpstream


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with FakeUpstream(answer="Sure, the answer is 4.") as cheap, FakeUpstream(answer="It is 4.") as strong:
        yield cheap, strong


def tiers(cheap: FakeUpstream, strong: FakeUpstream) -> list[list[Deployment]]:
    return [[Deployment("cheap", "openai", "fake-small", base_url=cheap.base_url)],
            [Deployment("strong", "openai", "fake-large", base_url=strong.base_url)]]


async def run(cheap: FakeUpstream, strong: FakeUpstream, request: dict[str, object]) -> tuple[int, list[str]]:
    provider = OpenAICompatProvider()
    try:
        config, verifiers = build_cascade({"min_mean_logprob": -0.5})
        runner = CascadeRunner(tiers(cheap, strong), executor_call(FailoverExecutor({"openai": provider}), 10.0),
                               verifiers, config)
        out = await runner.run(dict(request))
        return out.tier_index, [s.escalated_because or "" for s in out.steps]
    finally:
        await provider.aclose()


REQ = {"model": "auto", "messages": [{"role": "user", "content": "2+2?"}], "logprobs": True}


async def test_http_cheap_answer_ships(upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    cheap, strong = upstreams
    tier, _ = await run(cheap, strong, REQ)
    assert tier == 0 and len(cheap.chat_requests) == 1 and not strong.chat_requests
    assert cheap.chat_requests[0].json["model"] == "fake-small"


async def test_http_truncated_and_refused_cheap_answers_escalate(upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    cheap, strong = upstreams
    cheap.script(Behaviour(finish_reason="length"), Behaviour(text="Lo siento, pero no puedo ayudar con eso."))
    tier, because = await run(cheap, strong, REQ)
    assert tier == 1 and because[0].startswith("truncation")
    tier, because = await run(cheap, strong, REQ)
    assert tier == 1 and because[0].startswith("refusal")
    assert len(strong.chat_requests) == 2 and strong.chat_requests[0].json["model"] == "fake-large"


async def test_http_cheap_upstream_down_escalates(upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    cheap, strong = upstreams
    cheap.default = Behaviour.status_code(400)
    tier, because = await run(cheap, strong, REQ)
    assert tier == 1 and because[0].startswith("upstream failed")

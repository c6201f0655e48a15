"""Security (issue 19, item 12): an upstream that reports no usage is billed for every choice it returned."""

from __future__ import annotations

from typing import Any

from gearshift.gateway.call import Call
from gearshift.gateway.chat import record_usage
from gearshift.providers.registry import DeploymentSettings
from gearshift.records.builder import RequestFacts


def test_n_choices_without_upstream_usage_are_all_billed() -> None:
    answer = "forty characters of answer text, roughly"
    body: dict[str, Any] = {"choices": [{"index": i, "message": {"role": "assistant", "content": answer}}
                                        for i in range(50)]}
    dep = DeploymentSettings(name="d", provider="openai", model="m", base_url="http://127.0.0.1:1/v1",
                             input_price_per_m=0.0, output_price_per_m=1_000_000.0)
    call = Call("r", 0.0, RequestFacts("r", 0.0))
    record_usage(call, body, dep, "prompt")
    one = len(answer) // 4
    assert call.outcome.tokens_out == 50 * one  # before: one choice's tokens (n=50 recorded 9 output tokens)
    assert body["usage"]["completion_tokens"] == 50 * one
    assert call.outcome.cost_usd == 50 * one

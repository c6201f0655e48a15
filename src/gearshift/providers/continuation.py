"""Mid-stream failover's re-ask: the same request, with the answer so far as an assistant prefix to continue.

Off unless `[reliability] midstream_failover = true`, and only towards deployments that declare how they
continue a prefix (`continuation`): `"prefill"` (the server continues a final assistant message, as
Anthropic-style prefill and several OpenAI-compatible servers do) or `"vllm"` (vLLM's
`continue_final_message`). An OpenAI deployment without it would start a new answer, so it is never used
to continue one: the client would see two beginnings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from gearshift.providers.base import Deployment

Continuation = Literal["none", "prefill", "vllm"]


def can_continue(dep: Deployment) -> bool:
    return dep.continuation != "none"


def continuation_request(request: Mapping[str, Any], partial: str, dep: Deployment) -> dict[str, Any]:
    """`request` asking `dep` to go on from `partial` (the text the client already has)."""
    body = dict(request)
    messages = request.get("messages")
    body["messages"] = [*(messages if isinstance(messages, list) else []), {"role": "assistant", "content": partial}]
    if dep.continuation == "vllm":
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    return body

"""The Anthropic and Responses surfaces' request translation: any JSON becomes an internal chat request or a 400
(`InvalidRequestError` naming a field), never another exception (which would be a 500)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gearshift.errors import InvalidRequestError
from gearshift.gateway import messages_format, responses_format

values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=6),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                          st.sampled_from(["type", "text", "role", "content", "source", "name", "input", "id",
                                           "tool_use_id", "call_id", "output", "arguments", "image_url", "data",
                                           "media_type", "url", "is_error"]), inner, max_size=4), max_leaves=15)
block_types = st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "document", "input_text",
                               "input_image", "output_text", "function_call", "function_call_output", "message"])
blocks = st.lists(st.fixed_dictionaries({"type": block_types}, optional={
    "text": values, "source": values, "name": values, "input": values, "id": values, "tool_use_id": values,
    "content": values, "call_id": values, "arguments": values, "output": values, "image_url": values,
    "role": st.sampled_from(["user", "assistant", "system", "tool"])}), max_size=3)
requests = st.fixed_dictionaries({}, optional={
    "model": values | st.just("gearshift/auto"), "max_tokens": values | st.integers(1, 100),
    "messages": values | st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "x"]),
                                                         "content": values | blocks}), max_size=3),
    "input": values | blocks, "system": values | blocks, "instructions": values, "tools": values | blocks,
    "tool_choice": values, "stream": values, "stop_sequences": values, "metadata": values, "text": values,
    "max_output_tokens": values, "previous_response_id": st.none() | st.text(max_size=4)})


def _only_400(translate: Any, payload: dict[str, Any]) -> None:
    try:
        out = translate(payload)
    except InvalidRequestError as exc:
        assert exc.status_code == 400 and exc.message
        return
    assert isinstance(out, dict) and isinstance(out["messages"], list)


@given(payload=requests)
@settings(max_examples=200, deadline=None)
def test_messages_requests_translate_or_are_a_400(payload: dict[str, Any]) -> None:
    _only_400(messages_format.to_chat_request, payload)


@given(payload=requests)
@settings(max_examples=200, deadline=None)
def test_responses_requests_translate_or_are_a_400(payload: dict[str, Any]) -> None:
    _only_400(responses_format.to_chat_request, payload)

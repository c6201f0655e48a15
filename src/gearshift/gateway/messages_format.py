"""Anthropic Messages <-> the internal OpenAI chat request, the client direction (`POST /v1/messages`).

The reverse of `providers/anthropic_format.py`: an Anthropic SDK's request becomes an OpenAI chat request
(system -> a system message, `tool_result` blocks -> `tool` messages, `tool_use` -> `tool_calls`, base64
and URL images -> `image_url`), and the OpenAI answer becomes a `message` (usage split back into fresh
input, cache reads and cache writes). What cannot be routed to any upstream kind (documents, server
tools) is refused with a 400 naming the field, never silently dropped.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gearshift.errors import InvalidRequestError

# OpenAI finish_reason -> Anthropic stop_reason (providers/anthropic_format.py maps the other way)
FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                  "content_filter": "refusal"}


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(BaseModel):
    """What the gateway relies on in a Messages request; other fields are checked where they are translated."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1)
    max_tokens: int = Field(gt=0)
    messages: list[_Message] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stream: bool = False
    temperature: float | int | None = None
    top_p: float | int | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


def obj(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (for reading optional nested fields)."""
    return value if isinstance(value, dict) else {}


def _refuse(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _text(block: dict[str, Any], where: str) -> str:
    if not isinstance(block.get("text"), str):
        raise _refuse(f"{where}: a text block needs a string 'text'", where)
    return str(block["text"])


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    src = obj(block.get("source"))
    if src.get("type") == "base64" and isinstance(src.get("data"), str) and isinstance(src.get("media_type"), str):
        return {"type": "image_url", "image_url": {"url": f"data:{src['media_type']};base64,{src['data']}"}}
    if src.get("type") == "url" and isinstance(src.get("url"), str):
        return {"type": "image_url", "image_url": {"url": src["url"]}}
    raise _refuse(f"{where}: image source must be base64 (media_type, data) or url", where)


def _result_text(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return content or ""
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _refuse(f"{where}.{i}: only text can be returned in a tool_result here", f"{where}.{i}")
        parts.append({"type": "text", "text": _text(block, f"{where}.{i}")})
    return parts


def _user(content: str | list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """The OpenAI messages of one Anthropic user turn: its tool results first (as OpenAI wants them right
    after the assistant's calls), then its text and images."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        kind, at = block.get("type"), f"{where}.content.{i}"
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, at)})
        elif kind == "image":
            parts.append(_image(block, at))
        elif kind == "tool_result":
            text = _result_text(block.get("content"), at + ".content")
            if block.get("is_error"):
                text = "Error: " + (text if isinstance(text, str) else "".join(p["text"] for p in text))
            tools.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id") or ""), "content": text})
        else:
            raise _refuse(f"{at}: content blocks of type {kind!r} are not supported by this gateway", at)
    out = tools
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts})
    return out


def _assistant(content: str | list[dict[str, Any]], where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        kind, at = block.get("type"), f"{where}.content.{i}"
        if kind == "text":
            text.append(_text(block, at))
        elif kind == "tool_use":
            if not isinstance(block.get("name"), str):
                raise _refuse(f"{at}: tool_use needs a name", at)
            calls.append({"id": str(block.get("id") or ""), "type": "function",
                          "function": {"name": block["name"],
                                       "arguments": json.dumps(block.get("input") or {}, separators=(",", ":"))}})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # the model's earlier reasoning: not something another upstream can take back
        else:
            raise _refuse(f"{at}: content blocks of type {kind!r} are not supported by this gateway", at)
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") not in (None, "custom") or not isinstance(tool.get("name"), str):
            raise _refuse(f"tools.{i}: only client tools (name, input_schema) are supported by this gateway",
                          f"tools.{i}")
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
        if tool.get("description"):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: dict[str, Any], body: dict[str, Any]) -> None:
    kind = choice.get("type")
    if kind == "auto":
        body["tool_choice"] = "auto"
    elif kind == "any":
        body["tool_choice"] = "required"
    elif kind == "none":
        body["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise _refuse("tool_choice.type must be auto, any, tool (with a name) or none", "tool_choice")
    if choice.get("disable_parallel_tool_use") is True:
        body["parallel_tool_calls"] = False


def to_chat_request(payload: dict[str, Any]) -> dict[str, Any]:
    """The internal chat request for a Messages request; `InvalidRequestError` names the offending field."""
    try:
        req = MessagesRequest.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidRequestError(f"invalid field '{loc}': {err['msg']}", param=loc) from None
    messages: list[dict[str, Any]] = []
    if req.system:
        system = req.system if isinstance(req.system, str) else "".join(
            _text(b, f"system.{i}") for i, b in enumerate(req.system))
        messages.append({"role": "system", "content": system})
    for i, m in enumerate(req.messages):
        where = f"messages.{i}"
        if m.role == "user":
            messages += _user(m.content, where)
        else:
            messages.append(_assistant(m.content, where))
    body: dict[str, Any] = {"model": req.model, "messages": messages, "max_tokens": req.max_tokens}
    for key in ("temperature", "top_p"):
        if getattr(req, key) is not None:
            body[key] = getattr(req, key)
    if req.stop_sequences:
        body["stop"] = req.stop_sequences
    if req.tools:
        body["tools"] = _tools(req.tools)
    if req.tool_choice is not None:
        _tool_choice(req.tool_choice, body)
    if req.metadata and isinstance(req.metadata.get("user_id"), str):
        body["user"] = req.metadata["user_id"]
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # message_delta carries the usage
    return body


def anthropic_usage(usage: Any) -> dict[str, int]:
    """OpenAI usage split back: `input_tokens` are the prompt tokens neither read from nor written to a cache."""
    usage = usage if isinstance(usage, dict) else {}
    details = obj(usage.get("prompt_tokens_details"))
    read = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_creation_tokens") or 0)
    return {"input_tokens": max(0, int(usage.get("prompt_tokens") or 0) - read - written),
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_read_input_tokens": read, "cache_creation_input_tokens": written}


def tool_input(arguments: Any) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"arguments": arguments}


def to_message(body: dict[str, Any], request_id: str) -> dict[str, Any]:
    """A Messages API answer for an OpenAI chat completion (its first choice: Messages has no `n`)."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = obj(choice.get("message"))
    content: list[dict[str, Any]] = []
    if isinstance(msg.get("content"), str) and msg["content"]:
        content.append({"type": "text", "text": msg["content"]})
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or "", "name": fn.get("name") or "",
                        "input": tool_input(fn.get("arguments"))})
    rid = str(body.get("id") or "")
    return {"id": rid if rid.startswith("msg_") else f"msg_{request_id}", "type": "message", "role": "assistant",
            "model": body.get("model") or "", "content": content,
            "stop_reason": FINISH_TO_STOP.get(str(choice.get("finish_reason")), "end_turn"), "stop_sequence": None,
            "usage": anthropic_usage(body.get("usage"))}


ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error"}


def error_body(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's error shape for the gateway's one (OpenAI) error mapping: the same status, message and
    code; the Anthropic type from the status, as the Anthropic SDK picks its exception class by status."""
    err = obj(body.get("error"))
    out = {"type": ERROR_TYPES.get(status, "api_error"), "message": err.get("message") or "error"}
    if err.get("code"):
        out["code"] = err["code"]
    return {"type": "error", "error": out}

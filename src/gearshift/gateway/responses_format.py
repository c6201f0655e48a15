"""OpenAI Responses API <-> the internal chat request, the client direction (`POST /v1/responses`, stateless subset).

`input` (a string, or items: messages with `input_text` / `input_image` / `output_text` parts, `function_call`
and `function_call_output`) and `instructions` become chat messages; flat function tools become chat tools;
the chat answer becomes a `response` whose `output` holds a `message` item and `function_call` items. The
gateway stores no responses, so `previous_response_id` is refused with a 400 that says to send the history
as input items; so are item and tool types with no chat equivalent (built-in tools, files).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from gearshift.errors import InvalidRequestError
from gearshift.gateway.messages_format import obj


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"{where}: content must be a string or a list of parts", where)
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = obj(part).get("type")
        if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise _bad(f"{where}.{i}: content parts of type {kind!r} are not supported by this gateway", f"{where}.{i}")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _messages(items: Any) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise _bad("input must be a string or a non-empty list of items", "input")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        item, where = obj(item), f"input.{i}"
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") in ("user", "system", "developer", "assistant"):
            out.append({"role": item["role"], "content": _parts(item.get("content"), where + ".content")})
        elif kind == "function_call" and isinstance(item.get("call_id"), str) and isinstance(item.get("name"), str):
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": str(item.get("arguments") or "{}")}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)  # text and parallel calls: one assistant turn
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output" and isinstance(item.get("call_id"), str):
            output = item.get("output")
            out.append({"role": "tool", "tool_call_id": item["call_id"],
                        "content": output if isinstance(output, str) else _parts(output, where + ".output")})
        elif kind == "reasoning":
            continue  # an earlier turn's reasoning summary: nothing another model can take back
        else:
            raise _bad(f"{where}: input items of type {kind!r} are not supported by this gateway", where)
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        tool = obj(tool)
        if tool.get("type") != "function" or not isinstance(tool.get("name"), str):
            raise _bad(f"tools.{i}: only function tools are supported by this gateway (no built-in tools)",
                       f"tools.{i}")
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object"}}
        for key in ("description", "strict"):
            if tool.get(key) is not None:
                fn[key] = tool[key]
        out.append({"type": "function", "function": fn})
    return out


def to_chat_request(payload: dict[str, Any]) -> dict[str, Any]:
    """The internal chat request for a Responses request; `InvalidRequestError` names the offending field."""
    if payload.get("previous_response_id") is not None:
        raise _bad("previous_response_id is not supported: this gateway stores no responses; send the "
                   "conversation so far as input items", "previous_response_id")
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        raise _bad("model is required", "model")
    messages = _messages(payload.get("input"))
    if isinstance(payload.get("instructions"), str) and payload["instructions"]:
        messages.insert(0, {"role": "system", "content": payload["instructions"]})
    body: dict[str, Any] = {"model": payload["model"], "messages": messages}
    for ours, theirs in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"),
                         ("parallel_tool_calls", "parallel_tool_calls"), ("user", "user")):
        if payload.get(ours) is not None:
            body[theirs] = payload[ours]
    if payload.get("tools"):
        body["tools"] = _tools(payload["tools"])
    choice = payload.get("tool_choice")
    if isinstance(choice, dict):
        if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
            raise _bad("tool_choice must be auto, none, required or a function", "tool_choice")
        body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice is not None:
        body["tool_choice"] = choice
    fmt = obj(obj(payload.get("text")).get("format"))
    if fmt.get("type") == "json_schema":
        body["response_format"] = {"type": "json_schema", "json_schema": {
            k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}}
    elif fmt.get("type") == "json_object":
        body["response_format"] = {"type": "json_object"}
    if payload.get("stream") is True:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # response.completed carries the usage
    return body


def response_usage(usage: Any) -> dict[str, Any]:
    usage = obj(usage)
    details, out_details = obj(usage.get("prompt_tokens_details")), obj(usage.get("completion_tokens_details"))
    tin, tout = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"input_tokens": tin, "output_tokens": tout, "total_tokens": tin + tout,
            "input_tokens_details": {"cached_tokens": int(details.get("cached_tokens") or 0),
                                     "cache_write_tokens": int(details.get("cache_creation_tokens") or 0)},
            "output_tokens_details": {"reasoning_tokens": int(out_details.get("reasoning_tokens") or 0)}}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def response_object(response_id: str, model: str, output: list[dict[str, Any]], usage: Any,
                    finish: str | None, *, status: str | None = None) -> dict[str, Any]:
    """A `response` object; `finish` (the chat finish_reason) decides completed vs incomplete."""
    incomplete = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(str(finish))
    return {"id": response_id, "object": "response", "created_at": int(time.time()),
            "status": status or ("incomplete" if incomplete else "completed"), "model": model, "output": output,
            "incomplete_details": {"reason": incomplete} if incomplete and status is None else None,
            "error": None, "previous_response_id": None, "store": False, "parallel_tool_calls": True,
            "tool_choice": "auto", "tools": [], "metadata": {}, "text": {"format": {"type": "text"}},
            "usage": None if usage is None else response_usage(usage)}


def to_response(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses answer for an OpenAI chat completion (its first choice)."""
    choices = body.get("choices") or [{}]
    choice = obj(choices[0])
    msg = obj(choice.get("message"))
    output: list[dict[str, Any]] = []
    if isinstance(msg.get("content"), str) and msg["content"]:
        output.append(message_item(f"msg_{uuid.uuid4().hex}", msg["content"]))
    for call in msg.get("tool_calls") or []:
        fn = obj(obj(call).get("function"))
        output.append(call_item(f"fc_{uuid.uuid4().hex}", str(obj(call).get("id") or ""), str(fn.get("name") or ""),
                                str(fn.get("arguments") or "")))
    return response_object(f"resp_{uuid.uuid4().hex}", str(body.get("model") or ""), output,
                           body.get("usage") or {}, choice.get("finish_reason"))

"""OpenAI chat <-> Anthropic Messages, the upstream direction: the request out, the answer and its stream back.

Written from the Messages API reference (the field names of the official SDK's `types/`): `system` is a
top-level field, content is a list of blocks (`text`, `image`, `tool_use`, `tool_result`), tool results
travel in a *user* turn, `max_tokens` is required, and usage counts cache reads and writes apart from
`input_tokens`. Internally gearshift speaks OpenAI, so usage comes back as `prompt_tokens` (all prompt
tokens, as OpenAI counts them) with `prompt_tokens_details.cached_tokens` (cache reads) and
`cache_creation_tokens` (cache writes), which is what prices per deployment need.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gearshift.errors import UntranslatableError

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; the gateway always sets one, direct callers may not

# Anthropic stop_reason -> OpenAI finish_reason (the client surface reads it backwards)
STOP_TO_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "pause_turn": "stop", "refusal": "content_filter", "model_context_window_exceeded": "length"}
# errors a retry or another deployment of the same kind would meet again (the rest are the upstream's trouble)
CLIENT_ERROR_TYPES = frozenset({"invalid_request_error", "authentication_error", "permission_error",
                                "not_found_error", "request_too_large"})


def _text_of(content: Any, where: str) -> str:
    """The text of an OpenAI content that may only hold text (system prompts, tool results)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise UntranslatableError(f"{where}: only text parts can be sent to Anthropic here")
        parts.append(part["text"])
    return "".join(parts)


def image_block(url: str) -> dict[str, Any]:
    """An OpenAI `image_url` (https URL or base64 data URL) as an Anthropic image block."""
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        media, _, enc = head[5:].partition(";")
        if not sep or enc != "base64" or not media:
            raise UntranslatableError("image data URLs must be base64 (data:<type>;base64,...)")
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            img = part.get("image_url")
            url = img.get("url") if isinstance(img, dict) else img
            if not isinstance(url, str):
                raise UntranslatableError("image_url part without a url")
            blocks.append(image_block(url))
        else:
            raise UntranslatableError(f"content part of type {kind!r} cannot be sent to Anthropic")
    return blocks


def _assistant_blocks(msg: dict[str, Any]) -> list[dict[str, Any]]:
    text = _text_of(msg.get("content"), "assistant content")
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise UntranslatableError("assistant tool_calls entries need function.name")
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            raise UntranslatableError(f"tool call {fn['name']!r}: arguments are not JSON") from None
        blocks.append({"type": "tool_use", "id": call.get("id") or "", "name": fn["name"], "input": args})
    return blocks


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise UntranslatableError("only function tools can be sent to Anthropic")
        spec: dict[str, Any] = {"name": fn["name"],
                                "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
        if fn.get("description"):
            spec["description"] = fn["description"]
        out.append(spec)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        out: dict[str, Any] | None = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        out = {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise UntranslatableError(f"tool_choice {choice!r} cannot be sent to Anthropic")
    if parallel is False:
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def to_anthropic(request: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat request."""
    if (request.get("n") or 1) > 1:
        raise UntranslatableError("n > 1 cannot be sent to Anthropic (one answer per request)")
    system: list[str] = []
    messages: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if messages and messages[-1]["role"] == role:  # tool results, then the user's text: one user turn
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for msg in request.get("messages") or []:
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(msg.get("content"), f"{role} message"))
        elif role == "user":
            add("user", _user_blocks(msg.get("content")))
        elif role == "assistant":
            add("assistant", _assistant_blocks(msg))
        elif role == "tool":
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.get("tool_call_id") or "",
                                      "content": _text_of(msg.get("content"), "tool message")}
            add("user", [result])
        else:
            raise UntranslatableError(f"messages with role {role!r} cannot be sent to Anthropic")
    body: dict[str, Any] = {"model": model, "messages": messages,
                            "max_tokens": request.get("max_completion_tokens") or request.get("max_tokens")
                            or DEFAULT_MAX_TOKENS}
    if system:
        body["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p", "top_k"):
        if request.get(key) is not None:
            body[key] = request[key]
    stop = request.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if request.get("tools"):
        body["tools"] = _tools(request["tools"])
    choice = _tool_choice(request.get("tool_choice"), request.get("parallel_tool_calls"))
    if choice is not None:
        body["tool_choice"] = choice
    if isinstance(request.get("user"), str):
        body["metadata"] = {"user_id": request["user"]}
    if stream:
        body["stream"] = True
    return body


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic usage as OpenAI's: prompt_tokens counts every prompt token, cached ones included."""
    fresh = int(usage.get("input_tokens") or 0)
    read = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    out = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": fresh + read + written, "completion_tokens": out,
            "total_tokens": fresh + read + written + out,
            "prompt_tokens_details": {"cached_tokens": read, "cache_creation_tokens": written}}


def tool_call(block: dict[str, Any]) -> dict[str, Any]:
    return {"id": block.get("id") or "", "type": "function",
            "function": {"name": block.get("name") or "",
                         "arguments": json.dumps(block.get("input") or {}, separators=(",", ":"))}}


def from_anthropic(obj: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat completion for a Messages API answer. Raises ValueError when it is not one."""
    blocks = obj.get("content")
    if obj.get("type") != "message" or not isinstance(blocks, list):
        raise ValueError("not a message (type and content missing)")
    text = "".join(b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text"
                   and isinstance(b.get("text"), str))
    calls = [tool_call(b) for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    finish = STOP_TO_FINISH.get(str(obj.get("stop_reason")), "stop")
    answer: dict[str, Any] = {"id": obj.get("id") or "", "object": "chat.completion", "created": int(time.time()),
                              "model": obj.get("model") or "",
                              "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    if isinstance(obj.get("usage"), dict):
        answer["usage"] = openai_usage(obj["usage"])
    return answer

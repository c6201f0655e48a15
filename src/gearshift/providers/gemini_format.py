"""OpenAI chat <-> Gemini `generateContent`, the upstream direction: the request out, the answer back.

Written from the Gemini API reference (the REST field names of google-genai's `types`): turns are
`contents` with roles `user` and `model`, each a list of `parts` (`text`, `inlineData`, `functionCall`,
`functionResponse`); the system prompt is `systemInstruction`; sampling settings sit in
`generationConfig`. A safety block is a finish reason of its own (`SAFETY`, `PROHIBITED_CONTENT`, ...) or a
`promptFeedback.blockReason` with no candidates at all: both become OpenAI's `content_filter`, never a
plain `stop`. Gemini names tool results by function name where OpenAI uses call ids, so ids are mapped
back through the conversation's own tool calls. A function call's `thoughtSignature` (which Gemini wants
back on the next turn) rides in the OpenAI tool-call id, URL-safe, so any client round-trips it untouched.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from gearshift.errors import UntranslatableError

DEFAULT_VERSION = "v1beta"
SIGNATURE_PREFIX = "gsig_"
BLOCKED = "content_filter"
FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": BLOCKED, "RECITATION": BLOCKED, "BLOCKLIST": BLOCKED,
          "PROHIBITED_CONTENT": BLOCKED, "SPII": BLOCKED, "IMAGE_SAFETY": BLOCKED,
          "IMAGE_PROHIBITED_CONTENT": BLOCKED, "IMAGE_RECITATION": BLOCKED}


def finish_reason(reason: Any, has_calls: bool) -> str:
    """Gemini's finishReason as OpenAI's; a turn that ends in function calls is `tool_calls`, as OpenAI says."""
    mapped = FINISH.get(str(reason), "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def call_id(part: dict[str, Any], fallback: str) -> str:
    sig = part.get("thoughtSignature")
    if isinstance(sig, str) and sig:
        return SIGNATURE_PREFIX + sig.replace("+", "-").replace("/", "_").rstrip("=")
    call = part.get("functionCall") or {}
    return str(call.get("id") or fallback)


def _signature(tool_call_id: str) -> str | None:
    if not tool_call_id.startswith(SIGNATURE_PREFIX):
        return None
    raw = tool_call_id[len(SIGNATURE_PREFIX):]
    sig = raw.replace("-", "+").replace("_", "/")
    sig += "=" * (-len(sig) % 4)
    try:
        base64.b64decode(sig, validate=True)
    except ValueError:
        return None
    return sig


def _text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    out = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise UntranslatableError(f"{where}: only text parts can be sent to Gemini here")
        out.append(part["text"])
    return "".join(out)


def _user_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"text": part["text"]})
        elif kind == "image_url":
            img = part.get("image_url")
            url = img.get("url") if isinstance(img, dict) else img
            head, sep, data = str(url).partition(",")
            media, _, enc = head.removeprefix("data:").partition(";")
            if not str(url).startswith("data:") or not sep or enc != "base64":
                raise UntranslatableError("images go to Gemini as base64 data URLs (data:<type>;base64,...)")
            parts.append({"inlineData": {"mimeType": media, "data": data}})
        else:
            raise UntranslatableError(f"content part of type {kind!r} cannot be sent to Gemini")
    return parts


def _model_parts(msg: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    text = _text(msg.get("content"), "assistant content")
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise UntranslatableError("assistant tool_calls entries need function.name")
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            raise UntranslatableError(f"tool call {fn['name']!r}: arguments are not JSON") from None
        part: dict[str, Any] = {"functionCall": {"name": fn["name"], "args": args}}
        sig = _signature(str(call.get("id") or ""))
        if sig is not None:
            part["thoughtSignature"] = sig
        names[str(call.get("id") or "")] = fn["name"]
        parts.append(part)
    return parts


def _tool_response(msg: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    name = names.get(str(msg.get("tool_call_id") or ""))
    if name is None:
        raise UntranslatableError(f"tool message {msg.get('tool_call_id')!r} answers no earlier tool call")
    text = _text(msg.get("content"), "tool message")
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    response = value if isinstance(value, dict) else {"output": text}
    return {"functionResponse": {"name": name, "response": response}}


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        return {"functionCallingConfig": {"mode": mode}}
    if isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}}
    raise UntranslatableError(f"tool_choice {choice!r} cannot be sent to Gemini")


def to_gemini(request: dict[str, Any]) -> dict[str, Any]:
    """The generateContent body for an OpenAI chat request (the model is in the URL)."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, from the conversation's assistant turns

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for msg in request.get("messages") or []:
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(_text(msg.get("content"), f"{role} message"))
        elif role == "user":
            add("user", _user_parts(msg.get("content")))
        elif role == "assistant":
            add("model", _model_parts(msg, names))
        elif role == "tool":
            add("user", [_tool_response(msg, names)])
        else:
            raise UntranslatableError(f"messages with role {role!r} cannot be sent to Gemini")
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("seed", "seed"),
                         ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"),
                         ("n", "candidateCount")):
        if request.get(ours) is not None:
            config[theirs] = request[ours]
    cap = request.get("max_completion_tokens") or request.get("max_tokens")
    if cap:
        config["maxOutputTokens"] = cap
    stop = request.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = request.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    if config:
        body["generationConfig"] = config
    if request.get("tools"):
        decls = []
        for tool in request["tools"]:
            fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise UntranslatableError("only function tools can be sent to Gemini")
            decl: dict[str, Any] = {"name": fn["name"]}
            if fn.get("description"):
                decl["description"] = fn["description"]
            if fn.get("parameters"):
                decl["parametersJsonSchema"] = fn["parameters"]
            decls.append(decl)
        body["tools"] = [{"functionDeclarations": decls}]
    tool_config = _tool_config(request.get("tool_choice"))
    if tool_config is not None:
        body["toolConfig"] = tool_config
    return body


def openai_usage(meta: dict[str, Any]) -> dict[str, Any]:
    """usageMetadata as OpenAI usage: thinking tokens are paid as output, cached ones are part of the prompt."""
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    out = int(meta.get("candidatesTokenCount") or 0) + thoughts
    return {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out,
            "prompt_tokens_details": {"cached_tokens": int(meta.get("cachedContentTokenCount") or 0)},
            "completion_tokens_details": {"reasoning_tokens": thoughts}}


def message_of(candidate: dict[str, Any], start: int = 0) -> tuple[str, list[dict[str, Any]]]:
    """A candidate's answer text (thoughts left out) and its function calls as OpenAI tool calls."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            text.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict):
            cid = call_id(part, f"call_{uuid.uuid4().hex[:24]}")
            calls.append({"index": start + len(calls), "id": cid, "type": "function",
                          "function": {"name": str(call.get("name") or ""),
                                       "arguments": json.dumps(call.get("args") or {}, separators=(",", ":"))}})
    return "".join(text), calls


def from_gemini(obj: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat completion for a generateContent answer. Raises ValueError when it is not one."""
    candidates = obj.get("candidates")
    blocked = (obj.get("promptFeedback") or {}).get("blockReason")
    if not candidates and not blocked:
        raise ValueError("no candidates")
    choices = []
    for i, cand in enumerate(candidates or [{}]):
        text, calls = message_of(cand)
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        reason = BLOCKED if blocked and not candidates else finish_reason(cand.get("finishReason"), bool(calls))
        choices.append({"index": int(cand.get("index") or i), "message": message, "finish_reason": reason})
    answer: dict[str, Any] = {"id": obj.get("responseId") or f"chatcmpl-{uuid.uuid4().hex}",
                              "object": "chat.completion", "created": int(time.time()),
                              "model": obj.get("modelVersion") or "", "choices": choices}
    if isinstance(obj.get("usageMetadata"), dict):
        answer["usage"] = openai_usage(obj["usageMetadata"])
    return answer

"""What a decision record may keep: prompt/answer text per `[store] text`, and never a provider API key.

`full` keeps text as sent, `hash` replaces it with a SHA-256 digest (joins and dedup still work),
`redact` with a length marker. Provider keys are scrubbed from every string as a last line of defence:
providers already keep them out of error messages, but an upstream could echo one back in any field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

TextMode = Literal["full", "hash", "redact"]

#: Record fields (at any depth) that carry prompt or answer text.
TEXT_FIELDS = frozenset({"prompt", "prompt_text", "answer", "answer_text", "messages", "response_text",
                         "completion", "content", "text", "shadow_answer"})
SECRET_MARK = "***"


def conceal(value: Any, mode: TextMode) -> Any:
    if mode == "full" or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if mode == "hash":
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    return f"[redacted {len(text)} chars]"


def _walk(obj: Any, mode: TextMode, secrets: tuple[str, ...]) -> Any:
    if isinstance(obj, Mapping):
        return {k: conceal(_walk(v, "full", secrets), mode) if k in TEXT_FIELDS else _walk(v, mode, secrets)
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_walk(v, mode, secrets) for v in obj]
    if isinstance(obj, str) and secrets:
        for s in secrets:
            obj = obj.replace(s, SECRET_MARK)
    return obj


def scrub(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, SECRET_MARK)
    return text


Transform = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def record_transform(mode: TextMode, secrets: Iterable[str] = ()) -> Transform | None:
    """The writer's per-record transform, or None when there is nothing to do (full text, no keys)."""
    keys = tuple(sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True))
    if mode == "full" and not keys:
        return None

    def transform(record: Mapping[str, Any]) -> Mapping[str, Any]:
        if mode == "full":  # cheap path: only rebuild a record that actually contains a key
            dumped = json.dumps(record, default=str)
            if not any(k in dumped for k in keys):
                return record
        out: Mapping[str, Any] = _walk(record, mode, keys)
        return out

    return transform

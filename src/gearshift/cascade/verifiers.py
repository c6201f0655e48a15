"""Checks on an upstream answer that decide whether a cheap tier's answer can be shipped.

A verifier looks at the request and the OpenAI-shaped response body and returns a :class:`Verdict`, or
``None`` when it has nothing to say (a JSON check on a request without ``response_format``, a logprob
check when the upstream sent no logprobs). ``None`` never blocks shipping: a missing signal is not a
failure. Verifiers that call a model (the judge) return an awaitable; :func:`run_verifier` awaits both.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gearshift.records.usage import answer_text as first_answer_text


@dataclass(frozen=True, slots=True)
class Verdict:
    """One verifier's judgement on one answer; `score` is verifier-specific (a probability, a rating/10)."""

    name: str
    passed: bool
    score: float | None = None
    reason: str = ""
    cost_usd: float | None = None  # what the check itself cost (an LLM judge's call), booked on the request


@runtime_checkable
class Verifier(Protocol):
    """Judges one answer. `name` is how configs enable it and how verdicts are labelled."""

    name: str

    def verify(
        self, request: Mapping[str, Any], response: Mapping[str, Any]
    ) -> Verdict | Awaitable[Verdict | None] | None: ...


async def run_verifier(
    verifier: Verifier, request: Mapping[str, Any], response: Mapping[str, Any]
) -> Verdict | None:
    """Run a sync or async verifier alike."""
    out = verifier.verify(request, response)
    if inspect.isawaitable(out):
        return await out
    return out


# -- response access ---------------------------------------------------------------------------------


def first_message(response: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """`choices[0].message` when the body has one, else None."""
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        return None
    msg = choices[0].get("message")
    return msg if isinstance(msg, Mapping) else None


def answer_text(response: Mapping[str, Any]) -> str:
    """The assistant text of the first choice as `records.usage.answer_text` reads it, '' when absent."""
    return first_answer_text(response) or ""


def _tool_calls(response: Mapping[str, Any]) -> list[Any]:
    msg = first_message(response)
    calls = msg.get("tool_calls") if msg is not None else None
    return calls if isinstance(calls, list) else []


# -- verifiers ---------------------------------------------------------------------------------------


class ShapeVerifier:
    """A valid chat completion: a first choice whose assistant message has text or a tool call."""

    name = "shape"

    def verify(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> Verdict:
        msg = first_message(response)
        if msg is None:
            return Verdict(self.name, False, reason="no choices[0].message in the response")
        if msg.get("role", "assistant") != "assistant":
            return Verdict(self.name, False, reason=f"message role is {msg.get('role')!r}, not 'assistant'")
        calls = _tool_calls(response)
        if calls:
            bad = [c for c in calls if not isinstance(c, Mapping) or not isinstance(c.get("function"), Mapping)]
            if bad:
                return Verdict(self.name, False, reason="a tool call has no function object")
            return Verdict(self.name, True, reason=f"{len(calls)} tool call(s)")
        if not answer_text(response):
            return Verdict(self.name, False, reason="assistant message has neither content nor tool calls")
        return Verdict(self.name, True)


class EmptyAnswerVerifier:
    """Fails answers with fewer than `min_chars` non-whitespace characters and no tool call."""

    name = "empty"

    def __init__(self, min_chars: int = 1) -> None:
        self.min_chars = min_chars

    def verify(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> Verdict:
        if _tool_calls(response):
            return Verdict(self.name, True, reason="tool call")
        n = len("".join(answer_text(response).split()))
        if n < self.min_chars:
            return Verdict(self.name, False, score=float(n), reason=f"answer has {n} non-space chars")
        return Verdict(self.name, True, score=float(n))


class TruncationVerifier:
    """Fails answers the upstream cut off (`finish_reason` in `fail_reasons`, by default only "length")."""

    name = "truncation"

    def __init__(self, fail_reasons: Iterable[str] = ("length",)) -> None:
        self.fail_reasons = tuple(fail_reasons)

    def verify(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> Verdict:
        choices = response.get("choices")
        reason = choices[0].get("finish_reason") if isinstance(choices, list) and choices \
            and isinstance(choices[0], Mapping) else None
        if reason in self.fail_reasons:
            return Verdict(self.name, False, reason=f"finish_reason={reason!r}")
        return Verdict(self.name, True, reason=f"finish_reason={reason!r}")


def _strip_fence(text: str) -> str:
    m = re.fullmatch(r"\s*```[a-zA-Z]*\s*\n(.*?)\n?```\s*", text, flags=re.DOTALL)
    return m.group(1) if m else text


class JsonVerifier:
    """When the request asks for JSON (`response_format` json_object or json_schema), the answer must be a
    JSON object, valid against the schema if one is given. No verdict for requests that ask for no JSON,
    or whose schema is itself invalid (escalating cannot fix the client's schema).

    `allow_code_fence` accepts answers wrapped in ```json fences, which some non-OpenAI upstreams add.
    """

    name = "json"

    def __init__(self, allow_code_fence: bool = False) -> None:
        self.allow_code_fence = allow_code_fence

    def verify(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> Verdict | None:
        fmt = request.get("response_format")
        if not isinstance(fmt, Mapping) or fmt.get("type") not in ("json_object", "json_schema"):
            return None
        kind = fmt["type"]
        text = answer_text(response)
        if self.allow_code_fence:
            text = _strip_fence(text)
        try:
            value = json.loads(text)
        except ValueError as exc:
            return Verdict(self.name, False, reason=f"answer is not JSON: {exc}")
        if kind == "json_object":
            if not isinstance(value, dict):
                return Verdict(self.name, False, reason=f"JSON is a {type(value).__name__}, not an object")
            return Verdict(self.name, True, reason="valid JSON object")
        spec = fmt.get("json_schema")
        raw_schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(raw_schema, Mapping):
            return None
        import jsonschema  # ~55 ms to import: paid by the first schema check, not by whoever imports this module

        schema = dict(raw_schema)
        cls = jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError:
            return None
        error = jsonschema.exceptions.best_match(cls(schema).iter_errors(value))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            return Verdict(self.name, False, reason=f"schema violation at {where}: {error.message}")
        return Verdict(self.name, True, reason="valid against the requested schema")


#: Refusal openers in several languages, lower case, straight apostrophes. Matched near the answer start.
DEFAULT_REFUSAL_PHRASES: tuple[str, ...] = (
    # English
    "i can't help", "i cannot help", "i can't assist", "i cannot assist", "i'm sorry, but i can't",
    "i'm sorry, but i cannot", "i am sorry, but i cannot", "i won't be able to", "i'm unable to",
    "i am unable to", "i cannot provide", "i can't provide", "i must decline", "as an ai language model, i cannot",
    # Spanish
    "lo siento, pero no puedo", "no puedo ayudar", "no puedo ayudarte", "no puedo proporcionar",
    # French
    "je suis désolé, mais je ne peux pas", "je ne peux pas vous aider", "je ne peux pas t'aider",
    "je ne peux pas fournir",
    # German
    "es tut mir leid, aber ich kann", "ich kann dir dabei nicht helfen", "ich kann ihnen dabei nicht helfen",
    "ich kann nicht helfen",
    # Italian / Portuguese
    "mi dispiace, ma non posso", "non posso aiutarti", "desculpe, mas não posso", "não posso ajudar",
    # Russian / Chinese / Japanese
    "извините, но я не могу", "я не могу помочь", "抱歉，我无法", "对不起，我不能", "我无法提供",
    "申し訳ありませんが", "お手伝いできません",
)


class RefusalVerifier:
    """Fails answers that open with a refusal phrase; only the first `window` chars are checked so a long
    answer quoting "I can't" later is not a refusal."""

    name = "refusal"

    def __init__(self, phrases: Iterable[str] = DEFAULT_REFUSAL_PHRASES, window: int = 300) -> None:
        self.phrases = tuple(p.lower().replace("’", "'") for p in phrases)
        self.window = window

    def verify(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> Verdict | None:
        if _tool_calls(response) and not answer_text(response):
            return None
        head = answer_text(response)[: self.window].lower().replace("’", "'")
        for phrase in self.phrases:
            if phrase in head:
                return Verdict(self.name, False, reason=f"refusal phrase {phrase!r}")
        return Verdict(self.name, True)


class LogprobVerifier:
    """Fails answers whose mean token logprob is below `min_mean_logprob`; no verdict without logprobs.

    `score` is exp(mean logprob), the geometric-mean token probability, so thresholds read as
    probabilities too (-0.5 is about 0.61).
    """

    name = "logprob"

    def __init__(self, min_mean_logprob: float = -0.5) -> None:
        self.min_mean_logprob = min_mean_logprob

    def verify(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> Verdict | None:
        choices = response.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            return None
        lp = choices[0].get("logprobs")
        content = lp.get("content") if isinstance(lp, Mapping) else None
        if not isinstance(content, list):
            return None
        values = [float(t["logprob"]) for t in content
                  if isinstance(t, Mapping) and isinstance(t.get("logprob"), int | float)]
        values = [v for v in values if math.isfinite(v)]
        if not values:
            return None
        mean = sum(values) / len(values)
        passed = mean >= self.min_mean_logprob
        why = f"mean logprob {mean:.3f} {'>=' if passed else '<'} {self.min_mean_logprob} over {len(values)} tokens"
        return Verdict(self.name, passed, score=math.exp(mean), reason=why)

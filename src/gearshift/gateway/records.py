"""The decision record: one typed row per gateway request, success or error.

It carries what offline evaluation and closed-loop learning need later: the segment features the
router could see, the router's score and the policy's propensity (1.0 for the deterministic policy;
exploration will lower it), what ran upstream and what it cost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["ok", "error", "truncated", "client_disconnected"]

_CODE = re.compile(r"```|\bdef \w+\(|\bclass \w+[:(]|#include|\bfunction\s*\w*\(|=>|;\s*$|\bimport \w+|</?\w+>",
                   re.MULTILINE)
_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
)
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset({"the", "and", "is", "are", "of", "to", "in", "what", "how", "you", "that", "with", "for", "this"}),
    "es": frozenset({"el", "la", "los", "las", "es", "y", "de", "que", "en", "por", "para", "una", "cómo", "qué"}),
    "fr": frozenset({"le", "la", "les", "est", "et", "de", "que", "en", "pour", "une", "des", "du", "comment"}),
    "de": frozenset({"der", "die", "das", "ist", "und", "zu", "ein", "eine", "nicht", "wie", "was", "mit", "für"}),
    "pt": frozenset({"o", "os", "as", "é", "e", "de", "que", "em", "para", "uma", "não", "como", "você"}),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str) -> str:
    """A cheap guess (script, then stop words) good enough to slice traffic; "und" when unsure."""
    sample = text[:2000]
    for lang, rx in _SCRIPTS:
        if len(rx.findall(sample)) >= 3:
            return lang
    words = [w.lower() for w in _WORD.findall(sample)]
    if not words:
        return "und"
    best, hits = "und", 0
    for lang, stop in _STOPWORDS.items():
        n = sum(w in stop for w in words)
        if n > hits:
            best, hits = lang, n
    return best


def length_bucket(n_chars: int) -> str:
    if n_chars < 200:
        return "short"
    if n_chars < 1000:
        return "medium"
    if n_chars < 4000:
        return "long"
    return "very_long"


class Segment(BaseModel):
    """Request features used to slice decisions; all computable from the live request."""

    model_config = ConfigDict(frozen=True)

    language: str = "und"
    length_bucket: str = "short"
    has_code: bool = False
    turn: int = 1


def segment_of(text: str, messages: Sequence[Mapping[str, Any]]) -> Segment:
    turn = sum(1 for m in messages if m.get("role") == "user") or 1
    return Segment(language=detect_language(text), length_bucket=length_bucket(len(text)),
                   has_code=bool(_CODE.search(text)), turn=turn)


class CascadeStep(BaseModel):
    """One rung of a cascade: the tier that answered and what the verifiers said about it."""

    tier: str
    deployment: str | None = None
    shipped: bool = False
    verdicts: list[dict[str, Any]] = Field(default_factory=list)


class DecisionRecord(BaseModel):
    """Everything about one request's routing decision and outcome."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    time: float
    api_key_id: str | None = None
    conversation_id: str | None = None
    requested_model: str | None = None
    route: Literal["auto", "router", "concrete"] | None = None
    stream: bool = False
    segment: Segment = Field(default_factory=Segment)
    router: str | None = None
    router_version: str | None = None
    score: float | None = None
    thresholds: list[float] = Field(default_factory=list)
    tier: str | None = None
    propensity: float = 1.0
    explored: bool = False  # learning: the tier came from the exploration draw ([exploration])
    tier_probabilities: list[float] | None = None  # learning: the full policy over tiers, cheap to strong
    prompt: str | None = None  # learning: prompt text for retraining ([exploration] record_prompts)
    reason: str = ""
    confidence: float | None = None
    ood: float | None = None
    escalated: bool = False
    cascade: list[CascadeStep] = Field(default_factory=list)
    deployment: str | None = None
    upstream_model: str | None = None
    finish_reason: str | None = None  # tracing: the upstream's choices[0].finish_reason, when it sent one
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    tokens_in: int | None = None
    tokens_out: int | None = None
    usage_estimated: bool = False
    cost_usd: float | None = None
    latency_ms: float | None = None
    upstream_latency_ms: float | None = None
    status: Status = "ok"
    http_status: int = 200
    error_type: str | None = None
    error_message: str | None = None

    def to_row(self) -> dict[str, Any]:
        """The JSON-able dict the decision store takes."""
        return self.model_dump(mode="json")


def cost_usd(tokens_in: int | None, tokens_out: int | None, input_price_per_m: float,
             output_price_per_m: float) -> float | None:
    if tokens_in is None and tokens_out is None:
        return None
    return ((tokens_in or 0) * input_price_per_m + (tokens_out or 0) * output_price_per_m) / 1e6

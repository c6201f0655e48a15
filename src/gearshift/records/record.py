"""The decision record: one typed row per gateway request, success or error.

It carries what offline evaluation and closed-loop learning need later: the segment features the
router could see, the router's score and the policy's propensity (1.0 for the deterministic policy;
exploration will lower it), what ran upstream and what it cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from gearshift.data.segments import has_code, language_of, length_bucket
from gearshift.records.fields import named

#: `client_disconnected`: the client left before its answer ended (the upstream call is cancelled);
#: `cancelled_shutdown`: the gateway's SIGTERM grace ran out while the request was in flight.
Status = Literal["ok", "error", "truncated", "client_disconnected", "cancelled_shutdown"]

#: The record's shape. Bump it when a field is renamed, dropped or changes meaning, so readers of stored rows can
#: tell old rows from new; rows written before the field existed read back as version 1.
SCHEMA_VERSION = 1


class Segment(BaseModel):
    """Request features used to slice decisions; all computable from the live request.

    `language`, `length_bucket` and `has_code` are defined once, in `gearshift.data.segments`, the same as
    offline evaluation's derived segments."""

    model_config = ConfigDict(frozen=True)

    language: str = "und"
    length_bucket: str = "short"
    has_code: bool = False
    turn: int = 1
    topic: str | None = None  # `[segments] topics`: nearest topic cluster in the router's embedding space
    client: str | None = None  # the API key id the request came with (None without auth)


def segment_of(text: str, messages: Sequence[Mapping[str, Any]], *, client: str | None = None,
               topic: str | None = None) -> Segment:
    return Segment.model_construct(**segment_row(text, messages, client=client, topic=topic))


def segment_row(text: str, messages: Sequence[Mapping[str, Any]], *, client: str | None = None,
                topic: str | None = None) -> dict[str, Any]:
    """`segment_of(...).model_dump()` without building the model (request hot path)."""
    turn = sum(1 for m in messages if m.get("role") == "user") or 1
    return {"language": language_of(text), "length_bucket": length_bucket(text),
            "has_code": has_code(text), "turn": turn, "topic": topic, "client": client}


class CascadeStep(BaseModel):
    """One rung of a cascade: the tier that answered and what the verifiers said about it."""

    tier: str
    deployment: str | None = None
    shipped: bool = False
    verdicts: list[dict[str, Any]] = Field(default_factory=list)
    cost_usd: float | None = None  # what this rung's answer cost; the record's cost_usd sums every rung


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
    experiment_arm: str | None = None  # closed loop: the misroute arm that forced the tier ([experiment])
    reason: str = ""
    rule: str | None = None  # routing rules: "category", "gate", "router" or "policy"; None on the single-router path
    category: str | None = None  # routing rules: the `[[routes]]` name that matched
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
    cost_usd: float | None = None  # everything the request cost: the answer(s), the cascade's judge, the LLM router
    latency_ms: float | None = None
    upstream_latency_ms: float | None = None
    router_cost_usd: float | None = None  # priced overheads: the LLM-as-router's call (part of cost_usd)
    router_latency_ms: float | None = None  # and the time it added before any upstream was called
    status: Status = "ok"
    http_status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    # security: how this record's text fields were concealed when written (`[store] text`); exports read this
    # rather than guessing from a value's prefix
    text_mode: Literal["full", "hash", "redact"] = "full"
    schema_version: int = SCHEMA_VERSION

    def to_row(self) -> dict[str, Any]:
        """The JSON-able dict the decision store takes."""
        return self.model_dump(mode="json")


_FIELDS = tuple(DecisionRecord.model_fields)
_FIELD_SET = frozenset(_FIELDS)
_FLOATS = named("float")
_INTS = named("int")
_STATUSES = frozenset(get_args(Status))


def _default(name: str) -> Any:
    f = DecisionRecord.model_fields[name]
    return f.default_factory() if f.default_factory is not None else f.default  # type: ignore[call-arg]


_DEFAULTS = {n: _default(n) for n in _FIELDS if n not in ("request_id", "time")}
_DEFAULTS["segment"] = Segment().model_dump()
_MUTABLE = tuple(n for n, v in _DEFAULTS.items() if isinstance(v, list | dict))
_STEP_FIELDS = tuple(CascadeStep.model_fields)
_STEP_DEFAULTS = {n: f.default for n, f in CascadeStep.model_fields.items() if not f.is_required()}


def _step(step: Any) -> Any:
    """A cascade rung as the model dumps it: every field, in field order (`verdicts` fresh per row)."""
    if not isinstance(step, Mapping) or list(step) == list(_STEP_FIELDS):
        return step
    full = {**_STEP_DEFAULTS, "verdicts": [], **step}
    return {n: full[n] for n in _STEP_FIELDS if n in full}


def record_row(rec: Mapping[str, Any]) -> dict[str, Any]:
    """`DecisionRecord(**rec).to_row()` for the gateway's own, well-typed `rec`, without pydantic on the request path.

    Same keys in the same order and the same JSON types; unknown keys or a bad status still raise (ValueError),
    as the model's `extra="forbid"` would. `DecisionRecord.model_validate(row)` gives the typed record back.
    """
    extra = rec.keys() - _FIELD_SET
    if extra:
        raise ValueError(f"unknown decision record fields: {sorted(extra)}")
    if "request_id" not in rec or "time" not in rec:
        raise ValueError("a decision record needs request_id and time")
    if rec.get("status", "ok") not in _STATUSES:
        raise ValueError(f"bad decision status {rec.get('status')!r}")
    row = {**_DEFAULTS, **rec}
    row = {n: row[n] for n in _FIELDS}  # field order, as model_dump gives it
    for n in _MUTABLE:
        if n not in rec:
            v = row[n]
            row[n] = dict(v) if isinstance(v, dict) else list(v)
    for n in _FLOATS:
        v = row[n]
        if v is not None and type(v) is not float:
            row[n] = float(v)
    for n in _INTS:
        v = row[n]
        if v is not None and type(v) is not int:
            row[n] = int(v)
    if row["cascade"]:
        row["cascade"] = [_step(s) for s in row["cascade"]]
    seg = row["segment"]
    if isinstance(seg, Segment):
        row["segment"] = seg.model_dump()
    if row["thresholds"] and any(type(t) is not float for t in row["thresholds"]):
        row["thresholds"] = [float(t) for t in row["thresholds"]]
    probs = row["tier_probabilities"]
    if probs is not None and any(type(p) is not float for p in probs):
        row["tier_probabilities"] = [float(p) for p in probs]
    return row


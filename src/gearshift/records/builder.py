"""The one place a decision record is put together: request facts + the routing decision + the upstream outcome.

The gateway gathers the three while it serves a request and calls `build_row` once, when the request ends
(`gateway.chat.finish`), so every field of a record has one writer. The decision's part comes from
`policy.Decision.record_fields()`; this module only knows it as a mapping, so it stays below the policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gearshift.records.record import record_row


@dataclass
class Outcome:
    """What the upstream did, filled in as the answer comes back."""

    deployment: str | None = None
    upstream_model: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    tokens_in: int | None = None
    tokens_out: int | None = None
    usage_estimated: bool = False
    cost_usd: float | None = None
    finish_reason: str | None = None  # the upstream's choices[0].finish_reason (tracing)
    upstream_latency_ms: float | None = None
    cascade: list[dict[str, Any]] = field(default_factory=list)  # one CascadeStep dump per rung
    tier: str | None = None  # the tier that answered, when a cascade moved it from the decision's
    escalation: str | None = None  # why it moved, appended to the decision's reason
    note: str | None = None  # what else happened to the request's path, appended to the reason (not an escalation)


@dataclass
class RequestFacts:
    """What the request said about itself, known before any routing."""

    request_id: str
    time: float
    api_key_id: str | None = None
    requested_model: str | None = None
    stream: bool = False
    segment: dict[str, Any] | None = None
    prompt: str | None = None  # learning: kept only with `[exploration] record_prompts`


@dataclass(frozen=True, slots=True)
class Ending:
    """How the request ended, for the record."""

    status: str = "ok"
    http_status: int = 200
    latency_ms: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    attempts: list[dict[str, Any]] | None = None  # the failed attempts an upstream error carried


def build_row(facts: RequestFacts, decision: Mapping[str, Any] | None, outcome: Outcome,
              ending: Ending) -> dict[str, Any]:
    """The record as the store's JSON-able row (`DecisionRecord.model_validate(row)` gives it typed)."""
    rec: dict[str, Any] = {"request_id": facts.request_id, "time": facts.time, "api_key_id": facts.api_key_id}
    if facts.requested_model is not None:
        rec.update(requested_model=facts.requested_model, stream=facts.stream)
    if facts.segment is not None:
        rec["segment"] = facts.segment
    if decision is not None:
        rec.update(decision)
    if facts.prompt is not None:
        rec["prompt"] = facts.prompt
    o = outcome
    rec.update(deployment=o.deployment, upstream_model=o.upstream_model, attempts=o.attempts, tokens_in=o.tokens_in,
               tokens_out=o.tokens_out, usage_estimated=o.usage_estimated, cost_usd=o.cost_usd,
               finish_reason=o.finish_reason, upstream_latency_ms=o.upstream_latency_ms, cascade=o.cascade)
    router_cost = rec.get("router_cost_usd")
    if router_cost:  # the LLM-as-router's call is part of what the request cost, answered or not
        rec["cost_usd"] = (o.cost_usd or 0.0) + router_cost
    if o.tier is not None:
        rec["tier"] = o.tier
    if o.escalation is not None:
        rec["escalated"] = True
        rec["reason"] = f"{rec.get('reason', '')}; {o.escalation}"
    if o.note is not None:
        rec["reason"] = f"{rec.get('reason', '')}; {o.note}"
    rec.update(status=ending.status, http_status=ending.http_status, latency_ms=ending.latency_ms)
    if ending.error_type is not None:
        rec.update(error_type=ending.error_type, error_message=ending.error_message)
    if ending.attempts:
        rec["attempts"] = ending.attempts
    return record_row(rec)

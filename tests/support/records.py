"""A decision record with every field set to a value no default has, for tests that follow each field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gearshift.records.fields import FieldSpec
from gearshift.records.record import DecisionRecord


def full_record(request_id: str = "req-full", t: float = 1_700_000_000.5, **overrides: Any) -> dict[str, Any]:
    """The stored row (`to_row`) of a record whose every field differs from its default."""
    rec: dict[str, Any] = {
        "request_id": request_id, "time": t, "api_key_id": "key-1", "conversation_id": "conv-7",
        "requested_model": "client-chosen-model", "route": "router", "stream": True,
        "segment": {"language": "de", "length_bucket": "long", "has_code": True, "turn": 3, "topic": "math",
                    "client": "key-1"},
        "router": "heuristic", "router_version": "heuristic/4", "score": 0.625, "thresholds": [0.25, 0.75],
        "tier": "strong", "propensity": 0.8, "explored": True, "tier_probabilities": [0.2, 0.8],
        "prompt": "what is 2+2", "experiment_arm": "misroute-cheap", "reason": "score 0.625 >= 0.25",
        "rule": "router", "category": "maths", "confidence": 0.5, "ood": 0.125, "escalated": True,
        "cascade": [{"tier": "cheap", "deployment": "cheap-a", "shipped": False, "verdicts": [{"ok": False}],
                     "cost_usd": 0.0001}],
        "deployment": "strong-a", "upstream_model": "strong-a-upstream", "finish_reason": "length",
        "attempts": [{"deployment": "strong-b", "ok": False, "error_message": "upstream said no"}],
        "tokens_in": 11, "tokens_out": 22, "usage_estimated": True, "cost_usd": 0.0025, "latency_ms": 12.5,
        "upstream_latency_ms": 10.25, "router_cost_usd": 0.0003, "router_latency_ms": 40.5,
        "status": "error", "http_status": 502, "error_type": "upstream_error",
        "error_message": "bad gateway", "text_mode": "redact", "schema_version": 2,
    }
    rec.update(overrides)
    return DecisionRecord.model_validate(rec).to_row()


_ABSENT = object()


def project(record: Mapping[str, Any], fields: Sequence[FieldSpec]) -> dict[str, Any]:
    """Only `fields` of a stored row, nested as in the record; a field the row lacks stays absent."""
    out: dict[str, Any] = {}
    for f in fields:
        value = f.get(record, _ABSENT)
        if value is _ABSENT:
            continue
        *parents, leaf = f.path
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out

"""The one list of decision-record fields, and what each one is outside the record.

A field is written once (records/builder.py) and read in five other shapes: a column of the decisions table
(store/schema.py), a typed Parquet column of `gearshift export` (store/export.py), an OpenTelemetry span
attribute (tracing/spans.py), an input of the dashboard's summary (gateway/dashboard/data.py) and the routing
part of a triage item (closed_loop/triage.py). Each reads its part of `FIELDS` instead of keeping its own
list, so adding a field here adds it everywhere it is asked for. tests/records/test_fields.py holds the list to
`DecisionRecord` and to what `[store] text` conceals; each reader's tests hold it to the list (the decisions
table and the PostgreSQL migrations: tests/store/test_schema.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

#: `str`, `float`, `int`, `bool`: a scalar; `floats`: a list of floats; `json`: nested data (lists of dicts),
#: exported as JSON text in a `NAME_json` column.
Kind = Literal["str", "float", "int", "bool", "floats", "json"]
#: What `[store] text = "hash" | "redact"` does to a field (records/redaction.py): `text` is prompt or answer
#: text, `client` a client-chosen identifier, `error` upstream error text (which may quote the request).
Conceal = Literal["none", "text", "client", "error"]

_SQL_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"str": "TEXT", "float": "REAL", "int": "INTEGER", "bool": "INTEGER"},
    "postgresql": {"str": "TEXT", "float": "DOUBLE PRECISION", "int": "BIGINT", "bool": "BOOLEAN"},
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of `DecisionRecord`; `segment.NAME` is a field of its `Segment`."""

    name: str
    kind: Kind
    #: a column of the decisions table beside the whole record's JSON (a filter `gearshift decisions` and the
    #: stores' queries use); `index`: indexed together with `time`
    column: bool = False
    index: bool = False
    required: bool = False  # NOT NULL in the table, and every record has it
    export: bool = True  # a typed column of `gearshift export` (always also inside `record_json`)
    span: str | None = None  # the span attribute, when a trace reader wants it
    dashboard: bool = False  # the dashboard's summary reads it (no more, no fewer: its tests hold it to that)
    triage: bool = False  # a triage item's `routing` part: what the router did, for the reviewer
    conceal: Conceal = "none"

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))

    @property
    def export_name(self) -> str:
        """The Parquet column: `segment.language` -> `segment_language`, nested data -> `NAME_json`."""
        base = self.name.replace(".", "_")
        return f"{base}_json" if self.kind == "json" else base

    def sql_type(self, dialect: str) -> str:
        return _SQL_TYPES[dialect][self.kind]

    def get(self, record: Mapping[str, Any], default: Any = None) -> Any:
        """The field's value in a stored row (`default` when absent, as in rows written before it existed)."""
        value: Any = record
        for part in self.path:
            if not isinstance(value, Mapping) or part not in value:
                return default
            value = value[part]
        return value


def _g(name: str) -> str:
    return f"gearshift.{name}"


F = FieldSpec
#: In `DecisionRecord` order (segment fields where `segment` is).
FIELDS: tuple[FieldSpec, ...] = (
    F("request_id", "str", column=True, required=True, span=_g("request_id")),
    F("time", "float", column=True, index=True, required=True, dashboard=True),
    F("api_key_id", "str"),
    F("conversation_id", "str", conceal="client"),
    F("requested_model", "str", span="gen_ai.request.model", conceal="client"),
    F("route", "str", span=_g("route"), dashboard=True, triage=True),
    F("stream", "bool", span=_g("stream")),
    F("segment.language", "str", span=_g("segment.language"), dashboard=True),
    F("segment.length_bucket", "str", span=_g("segment.length_bucket"), dashboard=True),
    F("segment.has_code", "bool", span=_g("segment.has_code"), dashboard=True),
    F("segment.turn", "int"),
    F("segment.topic", "str", export=False, dashboard=True),
    F("segment.client", "str", export=False, dashboard=True),
    F("router", "str", span=_g("router"), triage=True),
    F("router_version", "str", span=_g("router_version"), triage=True),
    F("score", "float", span=_g("score"), triage=True),
    F("thresholds", "floats", triage=True),
    F("tier", "str", column=True, index=True, span=_g("tier"), dashboard=True, triage=True),
    F("propensity", "float", span=_g("propensity")),
    F("explored", "bool", span=_g("explored")),
    F("tier_probabilities", "floats"),
    F("prompt", "str", conceal="text"),
    F("experiment_arm", "str", export=False),
    F("reason", "str", span=_g("reason"), triage=True),
    F("rule", "str", export=False, span=_g("rule")),
    F("category", "str", export=False),
    F("confidence", "float", span=_g("confidence"), triage=True),
    F("ood", "float", triage=True),
    F("escalated", "bool", span=_g("escalated"), dashboard=True, triage=True),
    F("cascade", "json", dashboard=True),  # the dashboard prices the cascade judge's checks (verdict cost_usd)
    F("deployment", "str", span=_g("deployment"), triage=True),
    F("upstream_model", "str", span="gen_ai.response.model"),
    F("finish_reason", "str"),
    F("attempts", "json", conceal="error"),
    F("tokens_in", "int", span="gen_ai.usage.input_tokens", dashboard=True),
    F("tokens_out", "int", span="gen_ai.usage.output_tokens", dashboard=True),
    F("usage_estimated", "bool", span=_g("usage_estimated")),
    F("cost_usd", "float", span=_g("cost_usd"), dashboard=True),
    F("latency_ms", "float"),
    F("upstream_latency_ms", "float"),
    F("router_cost_usd", "float", span=_g("router_cost_usd"), dashboard=True),  # priced overheads: LLM-as-router
    F("router_latency_ms", "float", span=_g("router_latency_ms"), dashboard=True),
    F("status", "str", column=True, index=True, span=_g("status"), dashboard=True),
    F("http_status", "int", span="http.response.status_code"),
    F("error_type", "str", span="error.type"),
    F("error_message", "str", export=False, conceal="error"),
    F("text_mode", "str", export=False),
    F("schema_version", "int", export=False),
)
del F

COLUMNS: tuple[FieldSpec, ...] = tuple(f for f in FIELDS if f.column)
EXPORTED: tuple[FieldSpec, ...] = tuple(f for f in FIELDS if f.export)
SPAN_FIELDS: tuple[FieldSpec, ...] = tuple(f for f in FIELDS if f.span is not None)
DASHBOARD_FIELDS: tuple[FieldSpec, ...] = tuple(f for f in FIELDS if f.dashboard)
TRIAGE_FIELDS: tuple[FieldSpec, ...] = tuple(f for f in FIELDS if f.triage)


def named(kind: Kind, fields: Sequence[FieldSpec] = FIELDS) -> tuple[str, ...]:
    """The top-level field names of one kind (record_row's type coercion)."""
    return tuple(f.name for f in fields if f.kind == kind and "." not in f.name)

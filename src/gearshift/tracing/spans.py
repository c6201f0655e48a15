"""One span per gateway request, built from its `DecisionRecord` after the answer has gone out.

The record already holds everything a span needs (start time, latency, models, usage, routing), so the
span is created retroactively with explicit start/end timestamps: nothing is added to the request path
but one call at the place the record is emitted, and a tracing failure can never fail a request.

Attributes follow the OpenTelemetry GenAI semantic conventions (`gen_ai.*`; both the current
`gen_ai.provider.name` and the older `gen_ai.system`) plus gearshift's own routing attributes
(`gearshift.*`). The OpenTelemetry SDK is imported only when tracing is enabled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gearshift.errors import ConfigError
from gearshift.records.fields import SPAN_FIELDS
from gearshift.tracing.settings import TracingSettings

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gearshift.extension import Served
    from gearshift.providers.base import Deployment
    from gearshift.records.record import DecisionRecord

log = logging.getLogger(__name__)

AttrValue = str | bool | int | float | Sequence[str]


def _value(record: DecisionRecord, path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        value = getattr(value, part)
    return value


def record_attributes(record: DecisionRecord, providers: Mapping[str, str] | None = None) -> dict[str, AttrValue]:
    """Span attributes for one record: the fields the field list (`records.fields`) gives a `span` name, and
    the provider, cascade length and finish reasons; `providers` maps deployment name -> provider."""
    provider = (providers or {}).get(record.deployment or "", None)
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,
        **{f.span: _value(record, f.path) for f in SPAN_FIELDS if f.span is not None},
        "gearshift.cascade.steps": len(record.cascade),
    }
    if record.finish_reason:
        attrs["gen_ai.response.finish_reasons"] = [record.finish_reason]
    return {k: v for k, v in attrs.items() if v is not None and v != ""}  # an empty reason says nothing


def span_name(record: DecisionRecord) -> str:
    """`{operation} {request model}` as the GenAI conventions name inference spans."""
    return f"chat {record.requested_model}" if record.requested_model else "chat"


class RecordTracer:
    """Turns decision records into spans on `tracer` (an `opentelemetry.trace.Tracer`)."""

    def __init__(self, tracer: Any, providers: Mapping[str, str], *, provider: Any = None) -> None:
        self.tracer = tracer
        self.providers = dict(providers)
        self.provider = provider  # the SDK TracerProvider we own (flushed by `shutdown`), if any
        self.failed = 0

    def on_record(self, record: DecisionRecord) -> None:
        """Emit the span for one finished request. Never raises."""
        try:
            from opentelemetry.trace import SpanKind, Status, StatusCode

            start_ns = int(record.time * 1e9)
            end_ns = start_ns + int((record.latency_ms or 0.0) * 1e6)
            span = self.tracer.start_span(span_name(record), kind=SpanKind.CLIENT, start_time=start_ns,
                                          attributes=record_attributes(record, self.providers))
            if record.status == "error":
                span.set_status(Status(StatusCode.ERROR, record.error_message or record.error_type or "error"))
            span.end(end_time=end_ns)
        except Exception:  # tracing must never break the response path
            self.failed += 1
            log.exception("could not trace decision %s", record.request_id)

    # the gateway's extension protocol (extension.Extension)
    def on_decision(self, record: Mapping[str, Any], served: Served) -> None:
        """The span for one finished request; the typed record is built only here, where it is read."""
        from gearshift.records.record import DecisionRecord

        self.on_record(DecisionRecord.model_validate(record))

    def routes(self) -> list[BaseRoute]:
        return []

    def start(self) -> None:
        """Nothing to start: spans go out through the SDK's own processors."""

    async def aclose(self) -> None:
        """Nothing here: the SDK provider is flushed by `shutdown`, whose caller owns it."""

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def _exporter(settings: TracingSettings) -> Any:
    if settings.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=settings.service_name)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError("[tracing] exporter = \"otlp\" needs opentelemetry-exporter-otlp-proto-http: "
                          "pip install 'gearshift[otel]'") from exc
    return OTLPSpanExporter(endpoint=settings.endpoint) if settings.endpoint else OTLPSpanExporter()


def build_tracer(settings: TracingSettings, deployments: Sequence[Deployment] = (), *,
                 span_processor: Any = None) -> RecordTracer | None:
    """The tracer for a gateway, or None when tracing is off or OpenTelemetry is not installed.

    `span_processor` is added to the provider too (tests pass a SimpleSpanProcessor(InMemorySpanExporter())).
    """
    if not settings.enabled:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("[tracing] is enabled but OpenTelemetry is not installed (pip install 'gearshift[otel]'); "
                    "requests are not traced")
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    if settings.exporter != "none":
        provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    if span_processor is not None:
        provider.add_span_processor(span_processor)
    providers = {d.name: d.provider for d in deployments}
    return RecordTracer(provider.get_tracer("gearshift.gateway"), providers, provider=provider)

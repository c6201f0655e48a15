"""OpenTelemetry tracing of routing decisions (optional extra `otel`).

`build_tracer(settings, deployments)` returns a `RecordTracer` when `[tracing] enabled = true` and the
OpenTelemetry SDK is installed, else None (and the gateway does nothing per request). The tracer turns
each finished `DecisionRecord` into one span carrying the GenAI semantic-convention attributes plus
gearshift's routing attributes; see `gearshift.tracing.spans`.
"""

from gearshift.tracing.settings import TracingSettings
from gearshift.tracing.spans import RecordTracer, build_tracer, record_attributes

__all__ = ["RecordTracer", "TracingSettings", "build_tracer", "record_attributes"]

"""The `[tracing]` config section: one OpenTelemetry span per gateway request, off by default."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TracingSettings(BaseModel):
    """`exporter`: "otlp" (OTLP/HTTP to `endpoint`, or the SDK's OTEL_EXPORTER_OTLP_* default), "console", or
    "none" (spans are made but go nowhere: useful with an exporter attached in code)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    service_name: str = Field(default="gearshift", min_length=1)
    exporter: Literal["otlp", "console", "none"] = "otlp"
    endpoint: str | None = Field(default=None, pattern=r"^https?://")  # e.g. http://collector:4318/v1/traces

"""Typed alerts and where they go: a log, Prometheus counters, an HTTP webhook.

Sinks never raise into the caller: an alert that cannot be delivered is logged and counted, because
the routing path must not fail for want of a monitoring endpoint.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry

from gearshift.tracing.metrics import alert_counter

log = logging.getLogger("gearshift.alerts")

#: Alert kinds: strong_share / escalation_rate / quality_loss (with direction), collapse, drift, segment_outlier.
ALERT_KINDS = ("strong_share", "escalation_rate", "quality_loss", "collapse", "drift", "segment_outlier")


@dataclass(frozen=True, slots=True)
class Alert:
    """`segment` is "*" for all traffic or "name=value"; `band` is the target (low, high) the value left."""

    kind: str
    segment: str
    value: float
    band: tuple[float, float] | None
    window_start: float
    window_end: float
    n: int
    direction: str | None = None  # "high" | "low" where it applies
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["band"] = list(self.band) if self.band is not None else None
        return out

    def summary(self) -> str:
        band = f" outside [{self.band[0]:.3g}, {self.band[1]:.3g}]" if self.band else ""
        way = f" ({self.direction})" if self.direction else ""
        return f"{self.kind}{way} on {self.segment}: {self.value:.4g}{band} over n={self.n}; {self.detail}".rstrip("; ")


@runtime_checkable
class AlertSink(Protocol):
    def emit(self, alerts: Sequence[Alert]) -> None: ...


class LogSink:
    def __init__(self, logger: logging.Logger | None = None, level: int = logging.WARNING) -> None:
        self.logger = logger or log
        self.level = level

    def emit(self, alerts: Sequence[Alert]) -> None:
        for a in alerts:
            self.logger.log(self.level, "gearshift alert: %s", a.summary(), extra={"alert": a.to_json()})


class PrometheusSink:
    """`gearshift_alerts_total{kind, segment, direction}` on the given registry (the instrument: tracing/metrics.py)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = alert_counter(registry)

    def emit(self, alerts: Sequence[Alert]) -> None:
        for a in alerts:
            self.counter.labels(kind=a.kind, segment=a.segment, direction=a.direction or "").inc()


class WebhookSink:
    """POSTs `{"alerts": [...]}` as JSON. Blocking (urllib): async callers run `emit` in a thread."""

    def __init__(self, url: str, timeout_s: float = 2.0, headers: Mapping[str, str] | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            from gearshift.errors import ConfigError

            raise ConfigError(f"webhook URL must be http(s), got {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.delivered = 0
        self.failures = 0

    def emit(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        body = json.dumps({"alerts": [a.to_json() for a in alerts]}).encode("utf-8")
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **self.headers})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                resp.read()
            self.delivered += len(alerts)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.failures += 1
            log.warning("alert webhook %s failed: %s", self.url, exc)

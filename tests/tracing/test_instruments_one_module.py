"""Every Prometheus instrument is defined in `gearshift/tracing/metrics.py` and nowhere else (issue 12)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "gearshift"
HOME = SRC / "tracing" / "metrics.py"
INSTRUMENTS = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}


def _instrument_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus_client"):
            found += [f"{path.relative_to(SRC)}:{node.lineno} imports {a.name}" for a in node.names
                      if a.name in INSTRUMENTS]
        if isinstance(node, ast.Attribute) and node.attr in INSTRUMENTS and isinstance(node.value, ast.Name) \
                and node.value.id == "prometheus_client":
            found.append(f"{path.relative_to(SRC)}:{node.lineno} uses prometheus_client.{node.attr}")
    return found


def test_no_module_but_tracing_metrics_defines_a_prometheus_instrument() -> None:
    offenders = [hit for path in sorted(SRC.rglob("*.py")) if path != HOME for hit in _instrument_imports(path)]
    assert offenders == [], "define instruments in tracing/metrics.py: " + "; ".join(offenders)
    assert _instrument_imports(HOME), "tracing/metrics.py defines the instruments"


def test_one_gateway_registry_renders_every_family_once() -> None:
    from gearshift.tracing.metrics import GatewayMetrics, ShadowMetrics, SLIMetrics, alert_counter

    m = GatewayMetrics()
    ShadowMetrics(m.registry)
    alert_counter(m.registry)
    SLIMetrics(m.registry)
    names = [fam.name for fam in m.registry.collect()]
    assert len(names) == len(set(names))
    for name in ("gearshift_requests", "gearshift_rejected", "gearshift_in_flight", "gearshift_shadow_samples",
                 "gearshift_alerts", "gearshift_slo_sli", "gearshift_slo_sli_samples"):
        assert name in names

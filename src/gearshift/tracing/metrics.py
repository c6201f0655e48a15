"""Every Prometheus instrument gearshift exposes, defined here and nowhere else.

Each gateway app gets its own registry (several apps in one test process never collide). The gateway and
its admission control use `GatewayMetrics`; extensions register theirs on the same registry from here too
(`ShadowMetrics` for the shadow runner, `alert_counter` for the alert sink), so `/metrics` has one list of
names to read, in this file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class GatewayMetrics:
    """Counters and histograms the gateway updates; tier share is `tier_requests` over their sum."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("gearshift_requests", "Chat requests by outcome.", ["status", "route"], registry=r)
        self.tier_requests = Counter("gearshift_tier_requests", "Requests served per chosen tier.", ["tier"],
                                     registry=r)
        self.escalations = Counter("gearshift_escalations", "Tier escalations by cause.", ["cause"], registry=r)
        self.failovers = Counter("gearshift_failovers", "Attempts that failed over to another deployment.",
                                 ["deployment"], registry=r)
        self.upstream_latency = Histogram("gearshift_upstream_latency_seconds",
                                          "Upstream latency per deployment (to last byte / first token).",
                                          ["deployment", "kind"], buckets=_LATENCY_BUCKETS, registry=r)
        self.request_latency = Histogram("gearshift_request_latency_seconds",
                                         "Gateway request latency, by the tier that answered ('none': no tier).",
                                         ["stream", "tier"], buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("gearshift_tokens", "Tokens by direction and tier.", ["direction", "tier"], registry=r)
        self.cost = Counter("gearshift_cost_usd", "Upstream cost in USD by tier.", ["tier"], registry=r)
        self.records_dropped = Gauge("gearshift_decision_records_dropped",
                                     "Decision records dropped because the writer queue was full.", registry=r)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.records_queued = Gauge("gearshift_decision_records_queued", "Decision records waiting to be written.",
                                    registry=r)
        self.rule_decisions = Counter("gearshift_routing_rule_decisions", "Routed requests by the rule that decided.",
                                      ["rule"], registry=r)  # routing rules (gateway/rules_wiring.py)
        self.shared_state_errors = Counter(  # scale-out: Redis failures served through (records/failopen.py)
            "gearshift_shared_state_errors", "Shared-state (Redis) calls that failed and were served without it.",
            ["op"], registry=r)
        self.router_reloads = Counter(  # learning: router hot reload (gateway/reload.py)
            "gearshift_router_reloads", "Router reloads by result: ok (swapped), unchanged (polling), error.",
            ["result"], registry=r)
        # admission control (gateway/lifecycle.py) and per-key abuse alerts (gateway/chat.py)
        self.rejected = Counter("gearshift_rejected", "Chat requests refused before any work, by reason.",
                                ["reason"], registry=r)
        self.key_alerts = Counter("gearshift_key_alerts", "Per-key abuse alerts (e.g. strong-tier share cap).",
                                  ["kind"], registry=r)
        self.in_flight = Gauge("gearshift_in_flight", "Chat requests being served.", registry=r)
        # priced overheads: the LLM-as-router's classification call, from the record (policy/llm_router.py)
        self.router_cost = Counter("gearshift_llm_router_cost_usd", "Spend on LLM-as-router classification calls.",
                                   registry=r)
        self.router_latency = Histogram("gearshift_llm_router_latency_seconds",
                                        "Latency the LLM-as-router's classification call added to a request.",
                                        buckets=_LATENCY_BUCKETS, registry=r)

    def child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, cached: prometheus_client re-validates and re-locks on every `.labels()`."""
        key = (id(metric), values)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*values)
        return c

    def observe_record(self, row: Mapping[str, Any]) -> None:
        """Count one finished request from its decision row (requests, latency, tier, tokens, cost, failovers)."""
        status, tier = row["status"], row["tier"]
        self.child(self.requests, status, str(row["route"] or "none")).inc()
        self.child(self.request_latency, "true" if row["stream"] else "false",
                   str(tier or "none")).observe((row["latency_ms"] or 0.0) / 1000.0)
        if tier is not None and status == "ok":
            self.child(self.tier_requests, tier).inc()
            self.child(self.tokens, "in", tier).inc(row["tokens_in"] or 0)
            self.child(self.tokens, "out", tier).inc(row["tokens_out"] or 0)
            self.child(self.cost, tier).inc(row["cost_usd"] or 0.0)
        if row.get("router_cost_usd") is not None:
            self.router_cost.inc(row["router_cost_usd"])
        if row.get("router_latency_ms") is not None:
            self.router_latency.observe(row["router_latency_ms"] / 1000.0)
        for a in row["attempts"][:-1]:  # a failed attempt followed by another one is a failover or retry
            if a.get("outcome") == "error":
                self.child(self.failovers, str(a.get("deployment"))).inc()

    def bind_writer(self, dropped: Callable[[], float], queued: Callable[[], float]) -> None:
        """Read writer counters at scrape time rather than pushing them from the request path."""
        self.records_dropped.set_function(dropped)
        self.records_queued.set_function(queued)

    def bind_llm_router(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """LLM-as-router counters (calls, unparseable replies, failed calls), read from the router at scrape time."""
        self.registry.register(_LLMRouterCollector(counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ShadowMetrics:
    """Shadow sampling and judge counters (closed_loop/shadow.py)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.samples = Counter("gearshift_shadow_samples", "Shadow samples by outcome (queued, done, "
                               "skipped_budget, dropped_queue_full, failed).", ["outcome"], registry=registry)
        self.calls = Counter("gearshift_shadow_calls", "Shadow upstream calls by tier and outcome.",
                             ["tier", "outcome"], registry=registry)
        self.cost = Counter("gearshift_shadow_cost_usd", "Shadow and judge spend in USD.", registry=registry)
        self.judge = Counter("gearshift_judge_replies", "Judge replies by outcome (ok, unparseable, failed).",
                             ["outcome"], registry=registry)
        self.labels = Counter("gearshift_shadow_labels", "Hardness labels stored.", ["label"], registry=registry)
        # priced overheads: the shadow judge's share of `cost`, and how long each judgement took
        self.judge_cost = Counter("gearshift_shadow_judge_cost_usd", "Spend on shadow judge calls (part of "
                                  "gearshift_shadow_cost_usd).", registry=registry)
        self.judge_latency = Histogram("gearshift_shadow_judge_latency_seconds",
                                       "Wall time of one shadow judgement (all its judge calls).",
                                       buckets=_LATENCY_BUCKETS, registry=registry)


class DriftMetrics:
    """The live drift comparison against the router's reference (closed_loop/drift_watch.py), set every check."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.psi = Gauge("gearshift_drift_psi", "PSI of the live window against the router's reference, by what "
                         "is compared (p_strong, tier_shares, segment_mix:<name>).", ["what"], registry=registry)
        self.decisions = Gauge("gearshift_drift_window_decisions", "Routed decisions in the drift window.",
                               registry=registry)
        self.reading = Gauge("gearshift_drift_reading", "1 for the current reading (drift, collapse, shift, "
                             "stable), 0 for the others.", ["reading"], registry=registry)


def alert_counter(registry: CollectorRegistry) -> Counter:
    """`gearshift_alerts_total{kind, segment, direction}`: closed-loop alerts raised."""
    return Counter("gearshift_alerts", "Closed-loop alerts raised", ("kind", "segment", "direction"),
                   registry=registry)


class SLIMetrics:
    """SLIs per segment as of the last SLO check (closed_loop/monitor.py); `scope` is "fleet" (shared Redis
    windows: every gateway exports the same value, so aggregate with max, not sum) or "process"."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.value = Gauge("gearshift_slo_sli", "SLI value per segment as of the last SLO check (strong_share, "
                           "escalation_rate, quality_loss).", ["sli", "segment", "scope"], registry=registry)
        self.samples = Gauge("gearshift_slo_sli_samples", "Decisions (shadow judgements, for quality_loss) "
                             "behind each SLI value.", ["sli", "segment", "scope"], registry=registry)


class _LLMRouterCollector(Collector):
    """`gearshift_llm_router_{calls,unparseable,errors}_total`: the router keeps plain ints, counted once."""

    _HELP: ClassVar[dict[str, str]] = {
        "calls": "Classification calls to the LLM router's model.",
        "unparseable": "LLM router replies naming no known label (served the default tier).",
        "errors": "LLM router calls that failed (served the default tier).",
    }

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Any:
        values = self.counts()
        for key, doc in self._HELP.items():
            yield CounterMetricFamily(f"gearshift_llm_router_{key}", doc, value=float(values.get(key, 0)))

    def describe(self) -> Any:
        return [CounterMetricFamily(f"gearshift_llm_router_{key}", doc) for key, doc in self._HELP.items()]

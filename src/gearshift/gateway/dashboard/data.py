"""What the dashboard shows, computed from the gateway's stores as one JSON-able summary.

Decisions come through the `DecisionStore` protocol (SQLite or PostgreSQL), bounded by `max_rows`; the summary
reads only the fields the field list (`records.fields`) marks `dashboard` (tests/dashboard holds it to that);
labels, triage items and signal events from the closed loop's label store; alerts from the live SLO
monitor; router versions (with any OPE results kept in their metrics) from the version registry beside
the decisions (SQLite file or PostgreSQL). A part whose source is off or empty comes back empty, and the
page says "none yet".
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.closed_loop.signals import segment_labels
from gearshift.errors import InvalidRequestError
from gearshift.learning.judge_agreement import judge_agreement
from gearshift.learning.signal_model import is_bad
from gearshift.store.base import DecisionQuery
from gearshift.store.factory import store_options

if TYPE_CHECKING:
    from gearshift.gateway.service import Gateway

log = logging.getLogger(__name__)

ALL = "*"
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_WINDOW_S = 3660 * 86400.0  # ten years


def parse_window(text: str) -> float:
    """Seconds in "90s", "30m", "24h", "7d"; anything else is a 400."""
    m = _SPAN.match(text.strip())
    if m is None or float(m.group(1)) <= 0:
        raise InvalidRequestError(f"since must look like 30m, 24h or 7d, got {text!r}", param="since")
    span = float(m.group(1)) * _UNIT_S[m.group(2)]
    if span > MAX_WINDOW_S:  # a look-back before 1970 is not a date the page (or the platform) can show
        raise InvalidRequestError(f"since must be at most {MAX_WINDOW_S / 86400:.0f}d, got {text!r}", param="since")
    return span


@dataclass(frozen=True, slots=True)
class Window:
    since: float
    until: float
    buckets: int

    @property
    def bucket_s(self) -> float:
        return (self.until - self.since) / self.buckets

    def index(self, t: float) -> int | None:
        if not self.since <= t <= self.until:
            return None
        return min(int((t - self.since) / self.bucket_s), self.buckets - 1)

    def starts(self) -> list[float]:
        return [round(self.since + i * self.bucket_s, 3) for i in range(self.buckets)]


def _rate(num: Sequence[float], den: Sequence[int]) -> list[float | None]:
    return [round(a / b, 6) if b else None for a, b in zip(num, den, strict=True)]


def routing_series(rows: Sequence[Mapping[str, Any]], tiers: Sequence[str], w: Window) -> dict[str, Any]:
    """Per segment ("*" = all traffic, else "name=value"): decisions, each tier's share and the escalation rate
    per time bucket. Like the SLO monitor, errors and explicitly requested models are not routing decisions."""
    top = tiers[-1]
    acc: dict[str, dict[str, list[float]]] = {}

    def slot(seg: str) -> dict[str, list[float]]:
        if seg not in acc:
            acc[seg] = {k: [0.0] * w.buckets for k in ("n", "escalated", *tiers)}
        return acc[seg]

    for r in rows:
        tier = r.get("tier")
        if tier not in tiers or r.get("route") == "concrete" or r.get("status") == "error":
            continue
        i = w.index(float(r["time"]))
        if i is None:
            continue
        segs = [ALL, *(f"{k}={v}" for k, v in segment_labels(r.get("segment")).items())]
        for seg in segs:
            s = slot(seg)
            s["n"][i] += 1
            s[str(tier)][i] += 1
            s["escalated"][i] += bool(r.get("escalated"))
    out: dict[str, Any] = {}
    for seg, s in sorted(acc.items(), key=lambda kv: (kv[0] != ALL, kv[0])):
        n = [int(x) for x in s["n"]]
        out[seg] = {"n": n, "total": sum(n), "share": {t: _rate(s[t], n) for t in tiers},
                    "strong_share": _rate(s[top], n), "escalation_rate": _rate(s["escalated"], n)}
    return out


def strong_prices(gw: Gateway) -> tuple[float, float]:
    """($/M input, $/M output) of the strongest tier's primary deployment: the all-strong counterfactual."""
    dep = gw.settings.tiers[-1].deployments[0]
    return dep.input_price_per_m, dep.output_price_per_m


def cost_series(rows: Sequence[Mapping[str, Any]], prices: tuple[float, float], w: Window) -> dict[str, Any]:
    """Cost per 1k answered requests vs what the same tokens would have cost on the strongest tier."""
    n, cost, strong = [0] * w.buckets, [0.0] * w.buckets, [0.0] * w.buckets
    for r in rows:
        if r.get("status") == "error":
            continue
        i = w.index(float(r["time"]))
        if i is None:
            continue
        n[i] += 1
        cost[i] += float(r.get("cost_usd") or 0.0)
        strong[i] += (int(r.get("tokens_in") or 0) * prices[0] + int(r.get("tokens_out") or 0) * prices[1]) / 1e6
    total_n = sum(n)
    return {
        "per_1k": [round(c / k * 1000, 6) if k else None for c, k in zip(cost, n, strict=True)],
        "all_strong_per_1k": [round(c / k * 1000, 6) if k else None for c, k in zip(strong, n, strict=True)],
        "requests": total_n, "cost_usd": round(sum(cost), 6), "all_strong_usd": round(sum(strong), 6),
        "savings": round(1 - sum(cost) / sum(strong), 6) if sum(strong) > 0 else None,
    }


def priced_overheads(cost: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                     labels: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`cost` (from `cost_series`) with what routing and judging themselves cost: the LLM-as-router's calls and the
    cascade judge's (already inside each record's cost_usd), the shadow tiers' answers and the shadow judge's calls
    (in the labels). `savings` is then net of every overhead; `savings_before_overheads` counts the answers alone."""
    answered = [r for r in rows if r.get("status") != "error"]
    router = sum(float(r.get("router_cost_usd") or 0.0) for r in answered)
    checks = sum(float(v.get("cost_usd") or 0.0) for r in answered for step in r.get("cascade") or []
                 for v in step.get("verdicts") or [] if isinstance(v, Mapping))  # the cascade's LLM judge
    judge = sum(float(lab.get("cost_usd") or 0.0) for lab in labels)
    shadow = sum(float(lab.get("shadow_cost_usd") or 0.0) for lab in labels)
    router_ms = [float(r["router_latency_ms"]) for r in rows if r.get("router_latency_ms") is not None]
    judge_ms = [float(lab["judge_latency_ms"]) for lab in labels if lab.get("judge_latency_ms") is not None]
    strong, spent = float(cost["all_strong_usd"]), float(cost["cost_usd"])
    return {**cost, "savings": round(1 - (spent + judge + shadow) / strong, 6) if strong > 0 else None,
            "savings_before_overheads": round(1 - (spent - router - checks) / strong, 6) if strong > 0 else None,
            "overheads": {"llm_router_usd": round(router, 8), "cascade_judge_usd": round(checks, 8),
                          "shadow_judge_usd": round(judge, 8), "shadow_answers_usd": round(shadow, 8),
                          "total_usd": round(router + checks + judge + shadow, 8),
                          "llm_router_latency_ms_mean": round(sum(router_ms) / len(router_ms), 3) if router_ms
                          else None,
                          "shadow_judge_latency_ms_mean": round(sum(judge_ms) / len(judge_ms), 3) if judge_ms
                          else None}}


BAD_ANSWER = "bad answer (any)"


def signal_rates(rows: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]],
                 tiers: Sequence[str]) -> dict[str, Any]:
    """Per tier: decisions in the window and, per signal, the share of them with at least one such event."""
    decided = {t: 0 for t in tiers}
    for r in rows:
        if r.get("tier") in decided and r.get("status") != "error":
            decided[str(r["tier"])] += 1
    hit: dict[tuple[str, str], set[str]] = {}
    for e in events:
        if e.get("tier") in decided:
            hit.setdefault((str(e["tier"]), str(e["signal"])), set()).add(str(e["request_id"]))
            if is_bad(e):  # the one signal model: what bounds and off-policy evaluation count as a bad answer
                hit.setdefault((str(e["tier"]), BAD_ANSWER), set()).add(str(e["request_id"]))
    signals = sorted({s for _, s in hit})
    return {"signals": signals, "tiers": {
        t: {"decisions": decided[t],
            "rates": {s: round(len(hit.get((t, s), ())) / decided[t], 6) if decided[t] else None for s in signals},
            "counts": {s: len(hit.get((t, s), ())) for s in signals}} for t in tiers}}


def confusion(labels: Sequence[Mapping[str, Any]], tiers: Sequence[str]) -> dict[str, Any]:
    """Routed tier (rows) vs the cheapest sufficient tier the judge found (columns). Above the diagonal the
    router paid for more than needed (cost inflation); below it, it went too cheap (quality loss)."""
    idx = {t: i for i, t in enumerate(tiers)}
    cells = [[0] * len(tiers) for _ in tiers]
    inflation = loss = 0
    for lab in labels:
        routed, needed = lab.get("tier"), lab.get("min_tier")
        if needed is None and lab.get("label") in ("cheap_ok", "strong_needed"):
            needed = tiers[0] if lab["label"] == "cheap_ok" else tiers[-1]
        if routed not in idx or needed not in idx:
            continue
        a, b = idx[str(routed)], idx[str(needed)]
        cells[a][b] += 1
        inflation += a > b
        loss += a < b
    n = sum(map(sum, cells))
    return {"tiers": list(tiers), "cells": cells, "labelled": n, "cost_inflation": inflation, "quality_loss": loss,
            "cost_inflation_rate": round(inflation / n, 6) if n else None,
            "quality_loss_rate": round(loss / n, 6) if n else None}


def triage_queue(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Open triage items as the page shows them: the prompt and every tier's answer, side by side."""
    out = []
    for it in items:
        routing = it.get("routing") or {}
        judge = it.get("judge") or {}
        out.append({"id": it.get("id"), "request_id": it.get("request_id"), "time": it.get("time"),
                    "gap": it.get("gap"), "prompt": str(it.get("prompt") or ""), "routed": routing.get("tier"),
                    "tiers": list(it.get("tier_order") or sorted(it.get("answers") or {})),
                    "answers": {str(k): str(v) for k, v in (it.get("answers") or {}).items()},
                    "scores": judge.get("scores") or {}, "judge_label": judge.get("label")})
    return out


def _read_only(path: str) -> sqlite3.Connection | None:
    """A read-only connection to the store's SQLite file, so the dashboard never creates or locks tables."""
    if path == ":memory:" or not Path(path).exists():
        return None
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None


_VERSION_COLS = ("name", "version", "created", "router", "path", "status", "thresholds", "metrics")


def router_versions(store_path: str | None) -> list[dict[str, Any]]:
    """Registered router versions (`store/versions.py`'s table), newest first; OPE results are the metrics
    keys starting with "ope". Empty when the file or the table is not there yet."""
    conn = _read_only(store_path) if store_path is not None else None
    if conn is None:
        return []
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='router_versions'").fetchall():
            return []
        rows = conn.execute(f"SELECT {', '.join(_VERSION_COLS)} FROM router_versions "
                            "ORDER BY created DESC, name, version DESC").fetchall()
    finally:
        conn.close()
    out = []
    for row in rows:
        v = dict(zip(_VERSION_COLS, row, strict=True))
        metrics = json.loads(v["metrics"] or "{}")
        out.append({**v, "ref": f"{v['name']}/{v['version']}", "metrics": metrics,
                    "thresholds": json.loads(v["thresholds"]) if v["thresholds"] else None,
                    "ope": {k: m for k, m in metrics.items() if k.lower().startswith("ope")}})
    return out


def _version_rows(versions: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for v in sorted(versions, key=lambda v: (-v.created, v.name, -v.version)):
        row = v.to_json()
        row["ope"] = {k: m for k, m in row["metrics"].items() if k.lower().startswith("ope")}
        out.append(row)
    return out


def store_versions(gw: Gateway) -> list[dict[str, Any]]:
    """Router versions beside the gateway's decisions: the SQLite file (read-only) or PostgreSQL."""
    url = getattr(gw.store, "url", None)
    if isinstance(url, str) and url.startswith(("postgresql://", "postgres://")):
        from gearshift.store.postgres_versions import PostgresVersionRegistry

        registry = PostgresVersionRegistry(url, pool_size=1, run_migrations=False,  # the gateway migrated at start
                                           **store_options(gw.settings.store, url))
        try:
            return _version_rows(registry.all())
        finally:
            registry.close()
    path = getattr(gw.store, "path", None)
    return router_versions(path if isinstance(path, str) else None)


def _bands(gw: Gateway) -> dict[str, Any]:
    slo = gw.settings.slo
    return {"enabled": slo.enabled, "strong_share": list(slo.strong_share),
            "escalation_rate": list(slo.escalation_rate), "quality_loss": list(slo.quality_loss),
            "segment_bands": {k: list(v) if isinstance(v, list) else v.model_dump(exclude_none=True)
                              for k, v in slo.segment_bands.items()}}


def _alerts(gw: Gateway, limit: int = 50) -> list[dict[str, Any]]:
    """The fleet's alerts when the monitor checks the fleet (`[redis] url`), else this process's."""
    monitor = getattr(gw.closed_loop, "monitor", None)
    if monitor is None:
        return []
    return list(monitor.recent_alerts(limit))


def _slis(gw: Gateway) -> dict[str, Any]:
    """The SLIs per segment as of the monitor's last check (fleet-wide or this process's)."""
    monitor = getattr(gw.closed_loop, "monitor", None)
    if monitor is None:
        return {"scope": None, "time": None, "rows": []}
    return dict(monitor.snapshot)


def _drift(gw: Gateway) -> dict[str, Any] | None:
    """The live drift comparison's latest report (`[slo.drift]`), with what it compares against."""
    watch = getattr(getattr(gw.closed_loop, "monitor", None), "drift", None)
    if watch is None or watch.last is None:
        return None
    return {**watch.last.to_json(), "reference": watch.source}


def summary(gw: Gateway, window: str | None = None, *, now: float | None = None) -> dict[str, Any]:
    """Everything the page shows, for the look-back `window` (default: `[dashboard] window`)."""
    ds = gw.settings.dashboard
    span_s = parse_window(window or ds.window)
    until = time.time() if now is None else now
    w = Window(until - span_s, until, ds.buckets)
    tiers = list(gw.tier_names)
    rows = gw.store.query(DecisionQuery(since=w.since, limit=ds.max_rows)) if gw.store is not None else []
    label_store = getattr(gw.closed_loop, "store", None)
    labels = label_store.labels(since=w.since) if label_store is not None else []
    events = label_store.signals(since=w.since) if label_store is not None else []
    triage = label_store.triage_items(status="open", limit=ds.triage_items) if label_store is not None else []
    reviewed = label_store.triage_items(status="labelled", limit=None) if label_store is not None else []
    try:
        versions = store_versions(gw)
    except Exception:  # the registry is another helper's table: a bad row must not take the page down
        log.exception("could not read router versions")
        versions = []
    return {
        "generated": until,
        "window": {"label": window or ds.window, "since": w.since, "until": w.until, "bucket_s": w.bucket_s,
                   "starts": w.starts(), "truncated": len(rows) >= ds.max_rows},
        "tiers": tiers,
        "stores": {"decisions": gw.store is not None, "closed_loop": label_store is not None},
        "bands": _bands(gw),
        "routing": routing_series(rows, tiers, w),
        "cost": {**priced_overheads(cost_series(rows, strong_prices(gw), w), rows, labels),
                 "strong_prices_per_m": list(strong_prices(gw))},
        "signals": signal_rates(rows, events, tiers),
        "confusion": confusion(labels, tiers),
        "triage": triage_queue(triage),
        "judge_agreement": judge_agreement(reviewed, ["language"]).to_json(),
        "alerts": _alerts(gw),
        "slis": _slis(gw),
        "drift": _drift(gw),
        "versions": versions,
        "auth": {"open": not gw.keys.enabled},
    }

"""The dashboard's aggregations and HTML escaping, on small hand-made inputs whose answers are easy to check."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gearshift.errors import InvalidRequestError
from gearshift.gateway.dashboard.data import (
    Window,
    confusion,
    cost_series,
    parse_window,
    priced_overheads,
    routing_series,
    signal_rates,
)
from gearshift.gateway.dashboard.routes import STATIC_DIR
from gearshift.gateway.dashboard.views import json_island, triage_html

TIERS = ["cheap", "strong"]


def _row(t: float, tier: str, **kw: Any) -> dict[str, Any]:
    return {"request_id": f"r{t}-{tier}", "time": t, "tier": tier, "route": "router", "status": "ok",
            "segment": {"language": "en", "length_bucket": "short", "has_code": False}, **kw}


def test_window_parsing() -> None:
    assert parse_window("90m") == 5400 and parse_window("24h") == 86400 and parse_window("1.5d") == 129600
    for bad in ("", "24", "h", "-1h", "0h", "3w"):
        with pytest.raises(InvalidRequestError):
            parse_window(bad)


def test_routing_series_shares_escalations_and_segments() -> None:
    w = Window(0.0, 100.0, 2)
    rows = [_row(10, "cheap"), _row(20, "strong", escalated=True), _row(30, "strong"),
            _row(60, "cheap", segment={"language": "fr", "length_bucket": "long", "has_code": True}),
            _row(70, "strong", status="error"), _row(80, "strong", route="concrete"), _row(200, "strong")]
    s = routing_series(rows, TIERS, w)
    assert next(iter(s)) == "*"
    assert s["*"]["n"] == [3, 1]  # the error, the concrete request and the row outside the window do not count
    assert s["*"]["strong_share"] == [pytest.approx(2 / 3), 0.0]
    assert s["*"]["escalation_rate"] == [pytest.approx(1 / 3), 0.0]
    assert s["language=fr"]["n"] == [0, 1] and s["language=fr"]["strong_share"] == [None, 0.0]
    assert s["has_code=yes"]["total"] == 1 and s["has_code=no"]["total"] == 3


def test_cost_against_the_all_strong_counterfactual() -> None:
    w = Window(0.0, 10.0, 1)
    rows = [_row(1, "cheap", tokens_in=1000, tokens_out=1000, cost_usd=0.001),
            _row(2, "strong", tokens_in=1000, tokens_out=0, cost_usd=0.003),
            _row(3, "cheap", status="error", tokens_in=5000, cost_usd=1.0)]
    c = cost_series(rows, (3.0, 15.0), w)
    assert c["requests"] == 2 and c["cost_usd"] == pytest.approx(0.004)
    assert c["all_strong_usd"] == pytest.approx(0.003 + 0.015 + 0.003)  # same tokens at strong prices
    assert c["per_1k"] == [pytest.approx(2.0)] and c["all_strong_per_1k"] == [pytest.approx(10.5)]
    assert c["savings"] == pytest.approx(1 - 0.004 / 0.021)


def test_savings_are_net_of_routing_and_judging_overheads() -> None:
    w = Window(0.0, 10.0, 1)
    judged = [{"tier": "cheap", "shipped": True, "verdicts": [{"name": "judge", "passed": True, "cost_usd": 0.0005}]}]
    rows = [_row(1, "cheap", tokens_in=1000, tokens_out=1000, cost_usd=0.0015, router_cost_usd=0.0005,
                 router_latency_ms=40.0),
            _row(2, "cheap", tokens_in=1000, tokens_out=1000, cost_usd=0.0015, cascade=judged)]
    labels = [{"cost_usd": 0.002, "shadow_cost_usd": 0.003, "judge_latency_ms": 900.0}]
    c = priced_overheads(cost_series(rows, (3.0, 15.0), w), rows, labels)
    strong = c["all_strong_usd"]
    assert strong == pytest.approx(0.036)
    assert c["savings_before_overheads"] == pytest.approx(1 - 0.002 / strong)  # the answers alone
    assert c["savings"] == pytest.approx(1 - (0.003 + 0.005) / strong)  # router, cascade judge, shadow, its judge
    o = c["overheads"]
    assert (o["llm_router_usd"], o["cascade_judge_usd"], o["shadow_judge_usd"], o["shadow_answers_usd"]) == (
        pytest.approx(0.0005), pytest.approx(0.0005), pytest.approx(0.002), pytest.approx(0.003))
    assert o["llm_router_latency_ms_mean"] == 40.0 and o["shadow_judge_latency_ms_mean"] == 900.0


def test_signal_rates_count_decisions_not_events() -> None:
    rows = [_row(1, "cheap"), _row(2, "cheap"), _row(3, "cheap"), _row(4, "cheap"), _row(5, "strong")]
    events = [{"request_id": "a", "tier": "cheap", "signal": "thumbs_down"},
              {"request_id": "a", "tier": "cheap", "signal": "thumbs_down"},
              {"request_id": "b", "tier": "cheap", "signal": "regenerate"}]
    s = signal_rates(rows, events, TIERS)
    assert s["signals"] == ["bad answer (any)", "regenerate", "thumbs_down"]
    # "bad answer" is the one signal model's reading (a thumbs down is bad; an unknown signal says nothing)
    assert s["tiers"]["cheap"]["rates"] == {"bad answer (any)": 0.25, "regenerate": 0.25, "thumbs_down": 0.25}
    assert s["tiers"]["strong"]["rates"] == {"bad answer (any)": 0.0, "regenerate": 0.0, "thumbs_down": 0.0}


def test_confusion_matrix_splits_cost_inflation_from_quality_loss() -> None:
    labels = [{"tier": "cheap", "min_tier": "cheap"}, {"tier": "cheap", "min_tier": "strong"},
              {"tier": "strong", "min_tier": "cheap"}, {"tier": "strong", "min_tier": "cheap"},
              {"tier": "strong", "label": "strong_needed"}, {"tier": "strong", "label": None}]
    c = confusion(labels, TIERS)
    assert c["cells"] == [[1, 1], [2, 1]] and c["labelled"] == 5
    assert c["cost_inflation"] == 2 and c["quality_loss"] == 1 and c["quality_loss_rate"] == 0.2


def test_stored_text_cannot_break_out_of_the_page() -> None:
    evil = "</script><script>alert(1)</script><!--"
    island = json_island({"a": evil, "b": "x & y"})
    assert "<" not in island and "&" not in island and json.loads(island)["a"] == evil
    html = triage_html([{"id": 1, "request_id": "r<1>", "time": 0.0, "gap": 0.5, "prompt": evil, "routed": "cheap",
                         "tiers": TIERS, "answers": {"cheap": evil, "strong": '"quoted" & ok'}, "scores": {},
                         "judge_label": "strong_needed"}])
    assert "<script>" not in html and html.count("&lt;script&gt;alert(1)") == 2 and "r&lt;1&gt;" in html
    assert "&quot;quoted&quot; &amp; ok" in html


def test_vendored_chart_library_matches_its_record() -> None:
    """The pinned file is the one VENDORED.md names (version and sha256), with its license beside it."""
    record = (STATIC_DIR / "VENDORED.md").read_text(encoding="utf-8")
    body = (STATIC_DIR / "chart.umd.js").read_bytes()
    digest = re.search(r"`chart\.umd\.js`.*?\| (\d+\.\d+\.\d+) \|.*?`([0-9a-f]{64})`", record)
    assert digest is not None
    assert hashlib.sha256(body).hexdigest() == digest.group(2)
    assert body.startswith(f"/*!\n * Chart.js v{digest.group(1)}".encode())
    assert "MIT" in (STATIC_DIR / "chart.js.LICENSE.md").read_text(encoding="utf-8")
    assert {p.name for p in Path(STATIC_DIR).iterdir()} >= {"dashboard.js", "dashboard.css"}


def _varied_rows(now: float) -> list[dict[str, Any]]:
    """Full records whose every dashboard field varies (times, tiers, routes, statuses, segments, costs)."""
    from support.records import full_record

    rows = []
    for i in range(24):
        rows.append(full_record(
            f"d{i}", now - 3000 + 120 * i, tier=TIERS[i % 2], route="concrete" if i % 7 == 0 else "router",
            status="error" if i % 5 == 0 else "ok", escalated=i % 3 == 0, cost_usd=0.001 * i, tokens_in=100 + i,
            tokens_out=10 * i, segment={"language": "en" if i % 2 else "de", "length_bucket": "long",
                                        "has_code": i % 4 == 0, "turn": 2, "topic": f"t{i % 3}", "client": "k"},
            router_cost_usd=0.0001 * i, router_latency_ms=float(i),
            cascade=[{"tier": "cheap", "verdicts": [{"name": "judge", "passed": True, "cost_usd": 0.00001 * i}]}]))
    return rows


def _views(rows: list[dict[str, Any]], now: float) -> Any:
    """Every part of `summary` that reads decision rows."""
    w = Window(now - 3600, now, 6)
    events = [{"request_id": f"d{i}", "tier": TIERS[i % 2], "signal": "thumbs_down"} for i in range(0, 24, 4)]
    return (routing_series(rows, TIERS, w), priced_overheads(cost_series(rows, (3.0, 15.0), w), rows, []),
            signal_rates(rows, events, TIERS))


def _views_or_error(rows: list[dict[str, Any]], now: float) -> Any:
    try:
        return _views(rows, now)
    except (KeyError, TypeError, ValueError) as exc:
        return type(exc)


def test_the_dashboard_reads_exactly_the_fields_the_list_marks() -> None:
    from gearshift.records.fields import DASHBOARD_FIELDS
    from support.records import project

    now = 1_700_000_000.0
    rows = _varied_rows(now)
    shown = [project(r, DASHBOARD_FIELDS) for r in rows]
    assert "prompt" not in shown[0] and "cost_usd" in shown[0]
    assert _views(shown, now) == _views(rows, now)  # nothing the page reads is left out
    for f in DASHBOARD_FIELDS:  # and every marked field changes what it shows
        without = [project(r, [g for g in DASHBOARD_FIELDS if g is not f]) for r in rows]
        assert _views_or_error(without, now) != _views(rows, now), f.name


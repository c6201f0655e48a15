"""The dashboard in a real headless Chromium, against a real gateway with shadow labels, triage, signals, alerts.

Traffic goes through the gateway to fake upstreams (a keyword router sends HARD prompts to the strong
tier; every second request is shadowed and judged), a past day of decisions and two router versions
are written to the stores, then Debian's /usr/bin/chromium (driven by Playwright, never
`playwright install`) opens /dashboard. The charts must hold data and show non-blank pixels, and a
`<script>` in a model's answer must show as text in the triage queue, never run.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageStat

from closed_loop.shadow_harness import JudgeUpstream, KeywordRouter, judge_endpoint, wait_until
from dashboard.dashboard_seed import CHEAP_PRICE, STRONG_PRICE, backfill, register_versions
from gateway.harness import GatewayServer, deployment
from gearshift.gateway.app import create_app
from gearshift.gateway.settings import GatewaySettings, parse_settings
from support.fake_upstream import FakeUpstream

CHROMIUM = "/usr/bin/chromium"
EVIL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> cheap guess'
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                                reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")


def _settings(cheap: FakeUpstream, strong: FakeUpstream, judge: FakeUpstream, db: Path) -> GatewaySettings:
    """Both tiers priced like the seeded past day, shadowing every second request, signals and SLOs on."""
    cheap_dep = deployment("cheap-a", cheap, input_price_per_m=CHEAP_PRICE[0], output_price_per_m=CHEAP_PRICE[1])
    strong_dep = deployment("strong", strong, input_price_per_m=STRONG_PRICE[0], output_price_per_m=STRONG_PRICE[1])
    return parse_settings({
        "tiers": [{"name": "cheap", "deployments": [cheap_dep]}, {"name": "strong", "deployments": [strong_dep]}],
        "router": {"name": "heuristic", "thresholds": [0.5]},
        "store": {"path": str(db)},
        "reliability": {"max_retries": 0, "base_delay_s": 0.0},
        "shadow": {"enabled": True, "every_n": 2, "judge": {"endpoint": judge_endpoint(judge)}},
        "signals": {"enabled": True},
        "slo": {"enabled": True, "check_interval_s": 0.2, "min_events": 5, "window_s": 120,
                "strong_share": [0.05, 0.3], "log": False},
    }, "dashboard test")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[GatewayServer, list[str]]]:
    cheap, strong, judge = FakeUpstream(answer=EVIL), FakeUpstream(answer="the strong answer is 42"), JudgeUpstream()
    for u in (cheap, strong, judge):
        u.start()
    db = tmp_path / "gw.sqlite"
    server = GatewayServer(create_app(_settings(cheap, strong, judge, db), router=KeywordRouter())).start()
    try:
        ids = []
        with server.client() as c:
            for i in range(12):
                text = f"{'HARD ' if i % 4 in (0, 1) else ''}question {i}: explain this"
                r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                         "messages": [{"role": "user", "content": text}]})
                assert r.status_code == 200, r.text
                ids.append(r.headers["x-gearshift-request-id"])
            for rid in ids[:3]:
                assert c.post("/v1/feedback", json={"request_id": rid, "signal": "thumbs_down"}).status_code < 300
        loop = server.gateway.closed_loop
        assert wait_until(lambda: loop.shadow.counts.get("done", 0) == 6, 10)
        assert wait_until(lambda: bool(loop.monitor.alerts), 5)
        server.flush()
        now = time.time()
        assert server.gateway.store is not None
        backfill(server.gateway.store, now)
        register_versions(db, now)
        yield server, ids
    finally:
        server.stop()
        for u in (cheap, strong, judge):
            u.stop()


def _nonblank(png: bytes) -> tuple[float, float]:
    """(share of pixels that are not near-white, mean per-channel standard deviation) of a screenshot."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    ink = sum(img.convert("L").histogram()[:230]) / (img.width * img.height)
    return ink, sum(ImageStat.Stat(img).stddev) / 3


def test_dashboard_renders_charts_with_data_and_escapes_answers(live: Any, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    server, _ = live
    summary = httpx.get(f"{server.root}/dashboard/api/summary?since=24h", timeout=10).json()
    assert summary["routing"]["*"]["total"] >= 12 + 200  # live traffic plus the past day
    assert summary["confusion"]["labelled"] == 6 and summary["confusion"]["quality_loss"] >= 1
    assert summary["triage"] and summary["alerts"] and summary["versions"]
    assert 0.3 < summary["cost"]["savings"] < 0.95  # mostly-cheap routing beats sending everything strong
    shot = tmp_path / "dashboard.png"
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                   headless=True, args=ARGS, viewport={"width": 1400, "height": 900})
        try:
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{server.root}/dashboard?since=24h")
            page.wait_for_selector("body[data-charts-ready='4']", timeout=10_000)
            points = page.evaluate("""() => Object.fromEntries(Object.entries(window.gearshiftCharts).map(
                ([id, c]) => [id, c.data.datasets.map(d => d.data.filter(v => v !== null && v !== undefined).length)]
            ))""")
            canvases = {cid: page.locator(f"#{cid}").screenshot() for cid in points}
            all_share = page.evaluate("() => window.gearshiftCharts['chart-share'].data.datasets[1].data")
            page.select_option("#segment", "language=fr")
            fr_share = page.evaluate("() => window.gearshiftCharts['chart-share'].data.datasets[1].data")
            fr_island = page.evaluate(
                "() => JSON.parse(document.getElementById('gs-data').textContent).routing['language=fr'].strong_share")
            page.screenshot(path=str(shot), full_page=True)
            pwned = page.evaluate("() => window.__pwned === undefined ? null : window.__pwned")
            triage_text = page.locator("#triage").inner_text()
            scripts_in_triage = page.locator("#triage script, #triage img").count()
            footer = page.locator("footer").inner_text()
            versions_text = page.locator("#versions").inner_text()
            alerts_text = page.locator("#alerts").inner_text()
        finally:
            ctx.close()
    print(f"dashboard screenshot: {shot}")
    assert errors == []
    # every chart holds data: tier shares over >= 20 hourly buckets, cost for both lines, a signal bar
    assert points["chart-share"][0] >= 20 and points["chart-share"][1] >= 20
    assert points["chart-escalation"][0] >= 20
    assert points["chart-cost"] == [points["chart-cost"][0]] * 2 and points["chart-cost"][0] >= 20
    assert points["chart-signals"] and points["chart-signals"][0] >= 1
    for cid, png in canvases.items():
        ink, spread = _nonblank(png)
        assert ink > 0.01 and spread > 5, f"{cid} looks blank (ink {ink:.3f}, spread {spread:.1f})"
    # picking a segment redraws the share chart with that segment's series
    assert fr_share != all_share and fr_share == fr_island
    # the answer's markup is shown as text and never executed
    assert pwned is None and scripts_in_triage == 0
    assert "<script>window.__pwned = 1</script>" in triage_text and "the strong answer is 42" in triage_text
    assert "open" in footer and "no API keys" in footer
    assert "mf/2" in versions_text and "challenger" in versions_text and "snips" in versions_text
    assert "strong_share" in alerts_text

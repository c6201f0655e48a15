"""The HTML report in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright, as the dashboard
test does): what a reader sees on the first screen, and that no plot label sits on another."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageStat

from evaluation.eval_synthetic import STRONG, WEAK, make_dataset, synthetic
from gearshift.evaluation.report import write_report
from gearshift.evaluation.runner import EvalResult, result_from_scores

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                                reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")


def _results() -> list[EvalResult]:
    """Six routers on each of two test sets, like the demo's twelve sections."""
    out = []
    for name, seed in (("mmlu-like", 1), ("gsm8k-like", 2)):
        n = 400
        hard, _, _ = synthetic(n, seed=seed)
        ds = make_dataset(n, seed=seed)
        ds.name = name
        rng = np.random.default_rng(seed)
        for k, router in enumerate(("random", "heuristic", "stack", "knn", "classifier", "mf")):
            p = np.clip(hard + rng.normal(0, 0.15 * (k + 1), n), 0, 1) if k else rng.random(n)
            out.append(result_from_scores(p, ds, STRONG, WEAK, router=router, n_boot=20))
    return out


def _overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def test_report_top_shows_the_summary_and_plot_labels_do_not_collide(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    report = write_report(_results(), tmp_path / "report.html")
    shot = tmp_path / "report-top.png"
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                   headless=True, args=ARGS, viewport=VIEWPORT)
        try:
            page = ctx.new_page()
            page.goto(report.as_uri())
            page.screenshot(path=str(shot))  # the first screen, as a reader opening the file sees it
            glance = page.locator("table.glance").bounding_box()
            nav = page.locator("nav").bounding_box()
            height = page.evaluate("() => document.documentElement.scrollHeight")
            boxes = page.evaluate("""() => [...document.querySelectorAll('svg')].map(svg =>
                [...svg.querySelectorAll('text')].map(t => {
                    const r = t.getBoundingClientRect();
                    return {text: t.textContent, x: r.x, y: r.y, width: r.width, height: r.height};
                }))""")
            page.locator("nav a[href='#r0-2']").click()  # a contents link lands on its router's section
            landed = page.evaluate("() => document.getElementById('r0-2').getBoundingClientRect().top")
        finally:
            ctx.close()
    print(f"report screenshot: {shot}")
    img = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    assert sum(ImageStat.Stat(img).stddev) / 3 > 5  # not a blank page
    # the summary of all twelve router results and the contents fit on the first screen
    assert glance is not None and nav is not None
    assert glance["y"] + glance["height"] <= VIEWPORT["height"]
    assert "mmlu-like" in page_text(report) and abs(landed) < 50
    # folded segment tables keep twelve sections readable (the unfolded page was ~16,000 px)
    print(f"report height: {height} px")
    assert height < 7000, height
    # no text in any plot overlaps another (marker labels vs the legend, ticks, titles)
    assert len(boxes) == 4
    for texts in boxes:
        for i, a in enumerate(texts):
            for b in texts[i + 1:]:
                assert not _overlaps(a, b), f"{a['text']!r} overlaps {b['text']!r}"


def page_text(report: Path) -> str:
    return report.read_text(encoding="utf-8")

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from evaluation.eval_synthetic import STRONG, WEAK, make_dataset, synthetic
from gearshift.evaluation.report import render_report, write_report
from gearshift.evaluation.runner import result_from_scores

EVIL = '<script>alert("x")</script> & <b>bold</b>'


def _results() -> list:  # type: ignore[type-arg]
    n = 120
    hard, ss, sw = synthetic(n)
    prompts = [f"question {i} " + "word " * int(60 * hard[i]) for i in range(n)]
    hard_idx = [i for i in range(n) if ss[i] > sw[i]]
    for i in hard_idx[:3]:
        prompts[i] = EVIL + f" #{i}"
    ds = make_dataset(n, prompts=prompts)
    p_low = np.full(n, 0.9)
    p_low[hard_idx[:3]] = 0.0  # confident quality losses: these prompts appear as examples
    a = result_from_scores(p_low, ds, STRONG, WEAK, router="router-a", n_boot=50)
    b = result_from_scores(hard, ds, STRONG, WEAK, router="<i>router-b</i>", n_boot=50)
    return [a, b]


def test_report_is_well_formed_self_contained_and_escapes_prompts(tmp_path: Path) -> None:
    html = render_report(_results())
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html  # the prompt is shown, escaped
    assert "&lt;i&gt;router-b&lt;/i&gt;" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    root = ET.fromstring(html.split("\n", 1)[1])  # XML-well-formed once the doctype line is dropped
    svgs = root.findall(".//{http://www.w3.org/2000/svg}svg")
    assert len(svgs) == 2  # quality vs share, and cost vs quality
    polylines = root.findall(".//{http://www.w3.org/2000/svg}polyline")
    assert len(polylines) == 2 * 4  # two routers + oracle + random on each plot
    text = "".join(root.itertext())
    assert "router-a" in text and "cost inflation" in text and "quality loss" in text
    out = write_report(_results(), tmp_path / "sub" / "r.html")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [f.name for f in out.parent.iterdir()] == ["r.html"]  # no temp file left beside it


def test_report_opens_with_a_summary_and_contents_and_names_things_like_the_terminal() -> None:
    import re

    html = render_report(_results())
    body = html[html.index("<body>"):]
    first_section = body.index("<h2", body.index("At a glance") + 1)
    glance = body[:first_section]
    # the top of the page ranks every router by APGR, each linked to its own section
    assert "At a glance" in glance and "Contents" in glance
    assert glance.index("&lt;i&gt;router-b&lt;/i&gt;") < glance.index("router-a")  # the better ranker first
    for anchor in re.findall(r'href="#([^"]+)"', html):
        assert f'id="{anchor}"' in html
    # reference rows are named as in the terminal table
    assert "(all-cheap)" in html and "(all-strong)" in html and "(all_cheap)" not in html
    # the weighted loss column is explained where it can mislead
    assert "higher weighted loss than random" in html
    # cost ticks read as plain numbers, per 1,000 prompts
    assert "cost per 1,000 prompts (USD)" in html and not re.search(r">[0-9.]+e-[0-9]+<", html)
    # the long per-segment tables are folded away
    assert html.count("<details>") >= 2 + 1


def test_marker_labels_near_the_right_edge_are_written_leftwards() -> None:
    from gearshift.evaluation.svg import Marker, Series, line_plot

    svg = line_plot([Series("mf", np.array([0.0, 1.0]), np.array([0.5, 0.9]), "#000")],
                    [Marker("all-cheap", 0.0, 0.5), Marker("all-strong", 1.0, 0.9)], title="t", xlabel="x",
                    ylabel="y")
    assert 'text-anchor="end">all-strong<' in svg and 'text-anchor="start">all-cheap<' in svg

"""The self-contained HTML report: one file, inline CSS and SVG, no script, every text escaped.

Prompts are user data and may contain markup, so nothing from a dataset reaches the page unescaped.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np

import gearshift
from gearshift.data.records import atomic_write_text
from gearshift.evaluation.legend import REFERENCE_LABELS, legend, operating_point_note
from gearshift.evaluation.runner import EvalResult
from gearshift.evaluation.slices import SegmentMetrics
from gearshift.evaluation.svg import PALETTE, Marker, Series, line_plot

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 18px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
tr.ref td{color:#666;font-style:italic} tr.flag td{background:#fde2e2}
.plots{display:flex;flex-wrap:wrap;gap:12px} .note{color:#555;font-size:13px}
pre{white-space:pre-wrap;background:#f7f7f7;padding:6px;font-size:12px;max-width:1100px}
nav ul{margin:4px 0;padding-left:20px} nav li{margin:2px 0} .glance td.best{font-weight:bold}
details{margin:4px 0 14px} summary{cursor:pointer;color:#1f5fa8}
"""
_MAX_SEGMENT_ROWS = 80
_PER_PROMPTS = 1000
_EXAMPLES = 5
_EXAMPLE_CHARS = 400


def _f(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _row(cells: Sequence[str], cls: str = "", n_left: int = 1) -> str:
    tds = "".join(f'<td class="l">{c}</td>' if i < n_left else f"<td>{c}</td>" for i, c in enumerate(cells))
    return f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>"


def _head(cells: Sequence[str], n_left: int = 1) -> str:
    return "<tr>" + "".join(f'<th class="l">{escape(c)}</th>' if i < n_left else f"<th>{escape(c)}</th>"
                            for i, c in enumerate(cells)) + "</tr>"


def _summary_table(results: Sequence[EvalResult]) -> str:
    head = _head(["router", "APGR", "APGR 95% CI", "CPT50", "CPT80", "CPT95", "AIQ", "strong share",
                  "quality loss", "cost inflation", "weighted loss"])
    rows = [head]
    for r in results:
        ci = r.ci.intervals.get("apgr") if r.ci else None
        c = r.metrics.confusion
        rows.append(_row([escape(r.router), _f(r.metrics.apgr),
                          f"{_f(ci.lo)}–{_f(ci.hi)}" if ci else "–",
                          *(_f(r.metrics.cpt[t]) for t in sorted(r.metrics.cpt)), _f(r.metrics.aiq, 4),
                          _f(c.strong_share), _f(c.quality_loss_rate), _f(c.cost_inflation_rate),
                          _f(c.weighted_loss)]))
    for name, ref in results[0].references.items():
        cpts = [_f(ref.cpt[t]) for t in sorted(ref.cpt)] if ref.cpt else ["–"] * 3
        label = f"({REFERENCE_LABELS.get(name, name)})"
        rows.append(_row([escape(label), _f(ref.apgr), "–", *cpts, _f(ref.aiq, 4), _f(ref.strong_share),
                          "–", "–", "–"], cls="ref"))
    return ("<table>" + "".join(rows) + "</table>"
            + f'<p class="note">{escape(operating_point_note(results[0].settings))}</p>')


def _plots(results: Sequence[EvalResult]) -> str:
    first = results[0]
    refs = first.references
    series = [Series(r.router, r.curve.share, r.curve.quality, PALETTE[i % len(PALETTE)])
              for i, r in enumerate(results)]
    series.append(Series("oracle", first.oracle_curve.share, first.oracle_curve.quality, "#555555", True))
    series.append(Series("random", np.array([0.0, 1.0]),
                         np.array([refs["all_cheap"].quality, refs["all_strong"].quality]), "#aaaaaa", True))
    markers = [Marker(REFERENCE_LABELS[k], refs[k].strong_share, refs[k].quality)
               for k in ("all_cheap", "all_strong", "oracle")]
    out = [line_plot(series, markers, title=f"Quality vs strong-call share — {first.dataset}",
                     xlabel="share of prompts sent to the strong model", ylabel="mean score")]
    if first.curve.has_costs():
        k = _PER_PROMPTS  # dollars per 1,000 prompts read as 0.72, where per prompt they read 7.2e-04
        cseries = [Series(s.label, r.curve.cost * k, r.curve.quality, s.color) for s, r in zip(series, results,
                                                                                             strict=False)]
        cseries.append(Series("oracle", first.oracle_curve.cost * k, first.oracle_curve.quality, "#555555", True))
        cseries.append(Series("random", np.array([refs["all_cheap"].cost, refs["all_strong"].cost]) * k,
                              np.array([refs["all_cheap"].quality, refs["all_strong"].quality]), "#aaaaaa", True))
        cmarkers = [Marker(REFERENCE_LABELS[key], refs[key].cost * k, refs[key].quality)
                    for key in ("all_cheap", "all_strong", "oracle")]
        out.append(line_plot(cseries, cmarkers, title=f"Cost vs quality — {first.dataset}",
                             xlabel=f"cost per {k:,} prompts (USD)", ylabel="mean score"))
    return '<div class="plots">' + "".join(out) + "</div>"


def _confusion(r: EvalResult) -> str:
    c = r.metrics.confusion
    return ("<table>" + _head(["", "sent strong", "sent cheap"])
            + _row(["strong needed", f"{c.strong_needed_sent_strong}",
                    f"{c.quality_loss} <b>quality loss</b>"])
            + _row(["cheap enough", f"{c.cost_inflation} <b>cost inflation</b>", f"{c.cheap_enough_sent_cheap}"])
            + "</table>"
            + f'<p class="note">threshold p_strong ≥ {r.settings.threshold:g}; strong needed iff gap &gt; '
              f"{r.settings.eps:g}; weighted loss = ({c.cost_weight:g}·cost inflation + {c.quality_weight:g}·"
              f"quality loss) / n = {_f(c.weighted_loss)}</p>")


def _segments(r: EvalResult) -> str:
    """Flagged segments in view; the full table folded away, so a dozen routers do not make a 16,000 px page."""
    head = _head(["segment", "value", "n", "APGR", "CPT50", "CPT80", "AIQ", "strong share", "quality loss",
                  "cost inflation", "flagged"], n_left=2)

    def row(s: SegmentMetrics) -> str:
        m = s.metrics
        return _row([escape(s.segment), escape(s.value), str(m.n), _f(m.apgr), _f(m.cpt[0.5]), _f(m.cpt[0.8]),
                     _f(m.aiq, 4), _f(m.confusion.strong_share), _f(m.confusion.quality_loss_rate),
                     _f(m.confusion.cost_inflation_rate), "FLAG" if s.flagged else ""],
                    cls="flag" if s.flagged else "", n_left=2)

    flagged = [s for s in r.segments if s.flagged]
    shown = sorted(r.segments, key=lambda s: (not s.flagged,))[:_MAX_SEGMENT_ROWS]
    more = len(r.segments) - len(shown)
    tail = f'<p class="note">{more} more segments in the JSON output.</p>' if more > 0 else ""
    top = "<table>" + head + "".join(row(s) for s in flagged) + "</table>" if flagged else ""
    return (top + f"<details><summary>all {len(r.segments)} segments of {escape(r.router)}</summary><table>"
            + head + "".join(row(s) for s in shown) + "</table>" + tail + "</details>")


def _examples(r: EvalResult) -> str:
    lost = np.flatnonzero(r.needs_strong() & (r.p_strong < r.settings.threshold))
    if not len(lost):
        return ""
    worst = lost[np.argsort(r.p_strong[lost], kind="stable")][:_EXAMPLES]
    items = []
    for i in worst.tolist():
        text = r.prompts[i]
        text = text if len(text) <= _EXAMPLE_CHARS else text[:_EXAMPLE_CHARS] + "…"
        items.append(f"<li>id {escape(r.ids[i])}, p_strong {r.p_strong[i]:.3f}<pre>{escape(text)}</pre></li>")
    return (f"<details><summary>the {len(items)} most confident quality losses of {escape(r.router)}</summary><ul>"
            + "".join(items) + "</ul></details>")


def _at_a_glance(groups: dict[tuple[str, str, str], list[EvalResult]]) -> str:
    """The top of the page: per test set, each router's headline figures, best first, linked to its section."""
    rows = [_head(["test set", "router", "APGR", "APGR 95% CI", "CPT50", "CPT80", "strong share", "quality loss"],
                  n_left=2)]
    for gi, ((dataset, _, _), rs) in enumerate(groups.items()):
        order = sorted(range(len(rs)), key=lambda i: -(rs[i].metrics.apgr if np.isfinite(rs[i].metrics.apgr)
                                                       else -np.inf))
        for rank, i in enumerate(order):
            r, c = rs[i], rs[i].metrics.confusion
            ci = r.ci.intervals.get("apgr") if r.ci else None
            best = ' class="best"' if rank == 0 and len(rs) > 1 else ""
            rows.append(f'<tr><td class="l">{escape(dataset) if rank == 0 else ""}</td>'
                        f'<td class="l"><a href="#r{gi}-{i}">{escape(r.router)}</a></td>'
                        f"<td{best}>{_f(r.metrics.apgr)}</td><td>{f'{_f(ci.lo)}–{_f(ci.hi)}' if ci else '–'}</td>"
                        f"<td>{_f(r.metrics.cpt[0.5])}</td><td>{_f(r.metrics.cpt[0.8])}</td>"
                        f"<td>{_f(c.strong_share)}</td><td>{_f(c.quality_loss_rate)}</td></tr>")
    toc = []
    for gi, ((dataset, strong, weak), rs) in enumerate(groups.items()):
        links = ", ".join(f'<a href="#r{gi}-{i}">{escape(r.router)}</a>' for i, r in enumerate(rs))
        toc.append(f'<li><a href="#d{gi}">{escape(dataset)}: {escape(strong)} vs {escape(weak)}</a> — {links}</li>')
    settings = next(iter(groups.values()))[0].settings
    how = "".join(f"<li>{escape(line)}</li>" for line in legend(settings))
    return ('<h2 id="top">At a glance</h2><table class="glance">' + "".join(rows) + "</table>"
            + f'<nav><b>Contents</b><ul>{"".join(toc)}</ul></nav>'
            + f'<details><summary>How to read this report</summary><ul class="note">{how}'
            + f"<li>{escape(operating_point_note(settings))}</li></ul></details>")


def render_report(results: Sequence[EvalResult], title: str = "gearshift routing evaluation") -> str:
    """One HTML page comparing all `results`; results on the same test set share plots and tables."""
    groups: dict[tuple[str, str, str], list[EvalResult]] = {}
    for r in results:
        groups.setdefault((r.dataset, r.strong, r.weak), []).append(r)
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>{escape(title)}</h1>",
            f'<p class="note">gearshift {escape(gearshift.__version__)}, generated {now}. APGR: area under '
            f"performance-gap-recovered vs strong-call share (random = 0.5). CPT(x%): strong-call share needed "
            f"to recover x% of the gap. AIQ: RouterBench average quality under the cost–quality hull.</p>",
            _at_a_glance(groups)]
    for gi, ((dataset, strong, weak), rs) in enumerate(groups.items()):
        first = rs[0]
        body.append(f'<h2 id="d{gi}">{escape(dataset)}: {escape(strong)} (strong) vs {escape(weak)} (weak)</h2>')
        body.append(f'<p class="note">{first.n_test} test prompts; protocol {escape(first.protocol)}'
                    + (f", training data {escape(first.train)}" if first.train else "")
                    + (" (the held-in part)" if first.protocol != "cross" else "") + "</p>")
        notes = list(dict.fromkeys(n for r in rs for n in r.notes))
        if notes:
            body.append('<ul class="note">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
        body.append(_summary_table(rs))
        body.append(_plots(rs))
        for i, r in enumerate(rs):
            flagged = ", ".join(f"{s.segment}={s.value} ({s.metrics.confusion.quality_loss} of {s.metrics.n} lost)"
                                for s in r.flagged) or "none"
            body.append(f'<h3 id="r{gi}-{i}">{escape(r.router)} on {escape(dataset)} '
                        f'<a class="note" href="#top">↑ top</a></h3>{_confusion(r)}'
                        f'<p class="note">flagged segments (quality-loss rate &gt; 2× overall, n ≥ 30, z ≥ 3, '
                        f"≥ 3 losses): {escape(flagged)}</p>{_segments(r)}{_examples(r)}")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def write_report(results: Sequence[EvalResult], path: str | Path, title: str = "gearshift routing evaluation") -> Path:
    """Write the report atomically (a uniquely named temp file renamed into place), creating parent directories."""
    p = Path(path)
    atomic_write_text(p, [render_report(results, title)])
    return p

"""Server-rendered HTML for the dashboard: string templates, every stored value through `html.escape`.

Tables (confusion matrix, triage, alerts, versions, OPE) are rendered here; the time series go to the
page as a JSON island (`<script type="application/json">`, with `<`, `>` and `&` escaped so no stored
text can close it) that `static/dashboard.js` draws with the vendored Chart.js. The page sets a
Content-Security-Policy allowing only same-origin scripts, so even an escaping slip could not run code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
WINDOWS = ("1h", "6h", "24h", "7d", "30d")
NONE_YET = '<p class="none">none yet</p>'


def e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def json_island(data: Any) -> str:
    """JSON safe inside a <script> element: no `</script>`, `<!--` or `&` sequences survive."""
    raw = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    return raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def when(t: float | None) -> str:
    return "–" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t)))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """`rows` cells are already-escaped HTML."""
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{e(cls)}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _chart(chart_id: str, title: str, note: str, has_data: bool) -> str:
    inner = (f'<div class="chart-box"><canvas id="{e(chart_id)}" role="img" aria-label="{e(title)}"></canvas></div>'
             if has_data else NONE_YET)
    return (f'<section class="card" id="card-{e(chart_id)}"><h2>{e(title)}</h2>'
            f'<p class="note">{e(note)}</p>{inner}</section>')


def kpis(s: Mapping[str, Any]) -> str:
    cost, routing = s["cost"], s["routing"].get("*")
    total = routing["total"] if routing else 0
    strong = esc = None
    if routing and total:
        strong = sum(a * b for a, b in zip(routing["strong_share"], routing["n"], strict=True) if a is not None) / total
        esc = sum(a * b for a, b in zip(routing["escalation_rate"], routing["n"], strict=True) if a is not None) / total
    per_1k = cost["cost_usd"] / cost["requests"] * 1000 if cost["requests"] else None
    strong_1k = cost["all_strong_usd"] / cost["requests"] * 1000 if cost["requests"] else None
    items = [("routed requests", str(total)), (f"{s['tiers'][-1]} share", pct(strong)), ("escalation rate", pct(esc)),
             ("$ / 1k requests", "–" if per_1k is None else f"${per_1k:.4f}"),
             ("all-strong $ / 1k", "–" if strong_1k is None else f"${strong_1k:.4f}"),
             ("saved vs all-strong", pct(cost["savings"]))]
    over = cost.get("overheads") or {}
    if over.get("total_usd"):  # priced overheads: routing and judging calls, counted against the savings
        items.append(("routing + judging overheads", f"${over['total_usd']:.4f}"))
    cells = "".join(f'<div class="kpi"><div class="v">{e(v)}</div><div class="k">{e(k)}</div></div>' for k, v in items)
    return f'<section class="kpis">{cells}</section>'


def confusion_table(c: Mapping[str, Any]) -> str:
    if not c["labelled"]:
        return NONE_YET
    tiers = c["tiers"]
    rows = []
    for i, t in enumerate(tiers):
        cells = []
        for j, n in enumerate(c["cells"][i]):
            kind = "ok" if i == j else ("inflation" if i > j else "loss")
            cells.append(f'<span class="cell {kind}">{n}</span>')
        rows.append([f"<b>{e(t)}</b>", *cells])
    table = _table(["routed \\ needed", *tiers], rows, "confusion")
    return (f"{table}<p>{c['labelled']} shadow-labelled decisions: "
            f'<span class="inflation">cost inflation {c["cost_inflation"]} ({pct(c["cost_inflation_rate"])})</span>, '
            f'<span class="loss">quality loss {c["quality_loss"]} ({pct(c["quality_loss_rate"])})</span></p>')


def agreement_html(a: Mapping[str, Any]) -> str:
    """The judge against reviewers' triage labels: the check on every label the loop learns from."""
    overall = a["overall"]
    if not overall["n"]:
        return NONE_YET

    def row(name: str, x: Mapping[str, Any]) -> list[str]:
        kappa = "n/a" if x["kappa"] is None else f"{x['kappa']:.2f}"
        return [e(name), str(x["n"]), pct(x["agreement"]), kappa]

    rows = [row("all", overall)] + [row(f"{seg}={v}", x) for seg, vals in a["by_segment"].items()
                                    for v, x in vals.items()]
    return _table(["items", "labelled", "agreement", "Cohen's kappa"], rows, "agreement")


def triage_html(items: Sequence[Mapping[str, Any]]) -> str:
    if not items:
        return NONE_YET
    out = []
    for it in items:
        cols = []
        for t in it["tiers"]:
            score = it["scores"].get(t)
            routed = ' <span class="tag">routed</span>' if t == it["routed"] else ""
            cols.append(f'<div class="answer"><h4>{e(t)}{routed} <small>judge {e(score)}</small></h4>'
                        f'<pre>{e(it["answers"].get(t, ""))}</pre></div>')
        out.append(f'<article class="triage-item" data-id="{e(it["id"])}">'
                   f'<header>#{e(it["id"])} · {e(it["request_id"])} · gap {e(it["gap"])}'
                   f' · judge says {e(it["judge_label"])} · {e(when(it["time"]))}</header>'
                   f'<pre class="prompt">{e(it["prompt"])}</pre><div class="answers">{"".join(cols)}</div></article>')
    return "".join(out)


def alerts_html(alerts: Sequence[Mapping[str, Any]], slo_enabled: bool) -> str:
    if not alerts:
        off = '<p class="none">none yet (the SLO monitor is off: [slo] enabled = false)</p>'
        return NONE_YET if slo_enabled else off
    rows = [[e(when(a.get("window_end"))), e(a.get("kind")), e(a.get("segment")), e(f"{a.get('value', 0):.3f}"),
             e(a.get("band")), e(a.get("direction")), e(a.get("n")), e(a.get("detail"))] for a in alerts]
    return _table(["window end", "kind", "segment", "value", "band", "direction", "n", "detail"], rows)


def slis_html(slis: Mapping[str, Any], slo_enabled: bool) -> str:
    """Per segment: strong share, escalation rate and shadow-judged quality loss, each with its samples and
    band; a value out of band with enough samples (so it alerts) is marked."""
    if not slis.get("rows"):
        return NONE_YET if slo_enabled else '<p class="none">none yet (the SLO monitor is off)</p>'

    def cell(x: Mapping[str, Any]) -> str:
        if x["value"] is None:
            return "–"
        mark = ' class="loss"' if x["out"] else ""
        return f'<span{mark}>{e(pct(x["value"]))}</span> <small>n={e(x["n"])} band {e(x["band"])}</small>'

    rows = [[e(r["segment"]), cell(r["strong_share"]), cell(r["escalation_rate"]), cell(r["quality_loss"])]
            for r in slis["rows"]]
    fleet = slis.get("scope") == "fleet"
    scope = "the whole fleet (windows shared in Redis or PostgreSQL)" if fleet else "this gateway process"
    note = f'<p class="note">over {e(scope)}, as of {e(when(slis.get("time")))}</p>'
    return note + _table(["segment", "strong share", "escalation rate", "quality loss (shadow-judged)"], rows,
                         "slis")


def _ope_cell(ope: Mapping[str, Any]) -> str:
    parts = []
    for key, res in ope.items():
        if isinstance(res, Mapping) and isinstance(res.get("estimates"), Mapping):
            est = "; ".join(f"{e(name)}: quality {e(_fmt(v.get('quality')))}, cost {e(_fmt(v.get('cost')))}"
                            for name, v in res["estimates"].items() if isinstance(v, Mapping))
            parts.append(f"<b>{e(key)}</b> n={e(res.get('n'))} ess={e(_fmt(res.get('ess')))} {est}")
        else:
            parts.append(f"<b>{e(key)}</b> <code>{e(json.dumps(res, default=str)[:400])}</code>")
    return "<br>".join(parts) if parts else "none yet"


def _fmt(v: Any) -> str:
    if isinstance(v, list | tuple) and len(v) == 3 and all(isinstance(x, int | float) for x in v):
        return f"{v[0]:.4g} [{v[1]:.4g}, {v[2]:.4g}]"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def versions_html(versions: Sequence[Mapping[str, Any]]) -> str:
    if not versions:
        return NONE_YET
    rows = [[f"<b>{e(v['ref'])}</b>", f'<span class="status {e(v["status"])}">{e(v["status"])}</span>',
             e(v["router"]), e(when(v["created"])), e(v.get("thresholds")), _ope_cell(v.get("ope") or {})]
            for v in versions]
    return _table(["version", "status", "router", "created", "thresholds", "OPE results"], rows, "versions")


def footer(s: Mapping[str, Any]) -> str:
    if s["auth"]["open"]:
        return ('<footer class="open">This gateway has no API keys configured, so this dashboard is <b>open</b>: '
                "anyone who can reach the gateway can see it. Add <code>[[auth.keys]]</code> with the "
                "<code>admin</code> scope to protect it.</footer>")
    return "<footer>Shown to an API key with the <code>admin</code> scope.</footer>"


def render_page(s: Mapping[str, Any]) -> str:
    """The whole page for one `data.summary` result."""
    win = s["window"]
    options = "".join(f'<option value="{w}"{" selected" if w == win["label"] else ""}>{w}</option>'
                      for w in dict.fromkeys([*WINDOWS, win["label"]]))
    has_routing = "*" in s["routing"]
    has_signals = any(t["decisions"] for t in s["signals"]["tiers"].values()) and bool(s["signals"]["signals"])
    bands = s["bands"]
    band_note = (f"SLI band for the {s['tiers'][-1]} share: {bands['strong_share']}" if bands["enabled"]
                 else f"SLO monitor off; default band {bands['strong_share']} shown")
    truncated = ' <span class="warn">(capped at the newest rows: raise [dashboard] max_rows)</span>' \
        if win["truncated"] else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>gearshift dashboard</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head>
<body><header class="top"><h1>gearshift</h1>
<form method="get" action="/dashboard">last <select name="since" id="since">{options}</select>
<button type="submit">show</button></form>
<span class="meta">tiers: {e(" → ".join(s["tiers"]))} ·
{e(when(win["since"]))} – {e(when(win["until"]))}{truncated}</span>
</header>
<main>
{kpis(s)}
<div class="seg-picker" {"hidden" if not has_routing else ""}>
<label for="segment">segment for the share and escalation charts</label>
<select id="segment"></select></div>
<section class="grid">
{_chart("chart-share", "Tier share over time", band_note, has_routing)}
{_chart("chart-escalation", "Escalation rate over time", f"SLI band {bands['escalation_rate']}", has_routing)}
{_chart("chart-cost", "Cost per 1k requests vs all-strong",
        f"all-strong = the same tokens at the {s['tiers'][-1]} tier's prices {s['cost']['strong_prices_per_m']} $/M",
        s["cost"]["requests"] > 0)}
{_chart("chart-signals", "Downstream signals per tier", "share of the tier's decisions with the signal",
        has_signals)}
</section>
<section class="card"><h2>Routing confusion (shadow labels)</h2>
<p class="note">rows: tier routed to; columns: cheapest tier the judge found good enough</p>
{confusion_table(s["confusion"])}</section>
<section class="card" id="triage"><h2>Triage queue</h2>{triage_html(s["triage"])}</section>
<section class="card" id="judge-agreement"><h2>Judge vs reviewers</h2>
<p class="note">labelled triage items where the judge's label matches the reviewer's; kappa discounts chance</p>
{agreement_html(s["judge_agreement"])}</section>
<section class="card" id="slis"><h2>SLIs per segment</h2>{slis_html(s["slis"], bands["enabled"])}</section>
<section class="card" id="alerts"><h2>Alerts</h2>{alerts_html(s["alerts"], bands["enabled"])}</section>
<section class="card" id="versions"><h2>Router versions and OPE results</h2>{versions_html(s["versions"])}</section>
</main>
{footer(s)}
<script type="application/json" id="gs-data">{json_island(s)}</script>
<script src="/dashboard/static/chart.umd.js"></script>
<script src="/dashboard/static/dashboard.js"></script>
</body></html>
"""

"""Minimal inline-SVG line plots, so the HTML report is one file that needs no script or CDN.

Output is XML-well-formed (every tag closed, every text escaped), which also keeps it valid HTML5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_MAX_POINTS = 400


@dataclass(frozen=True)
class Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    color: str
    dashed: bool = False


@dataclass(frozen=True)
class Marker:
    label: str
    x: float
    y: float
    color: str = "#333333"


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= _MAX_POINTS:
        return x, y
    idx = np.unique(np.r_[np.linspace(0, len(x) - 1, _MAX_POINTS).astype(np.int64), len(x) - 1])
    return x[idx], y[idx]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    return [float(v) for v in np.linspace(lo, hi, n)]


def _fmt(v: float) -> str:
    """Three significant digits, never in exponent form (an axis reading 7.21e-05 is not read at a glance)."""
    if v == 0 or not np.isfinite(v):
        return "0" if v == 0 else str(v)
    return str(np.format_float_positional(v, precision=3, unique=False, fractional=False, trim="-"))


def line_plot(series: Sequence[Series], markers: Sequence[Marker], *, title: str, xlabel: str, ylabel: str,
              width: int = 560, height: int = 380) -> str:
    left, right, top, bottom = 60, 170, 30, 45
    pw, ph = width - left - right, height - top - bottom
    xs = [v for s in series for v in s.x.tolist()] + [m.x for m in markers]
    ys = [v for s in series for v in s.y.tolist()] + [m.y for m in markers]
    finite_x = [v for v in xs if np.isfinite(v)] or [0.0, 1.0]
    finite_y = [v for v in ys if np.isfinite(v)] or [0.0, 1.0]
    x0, x1 = min(finite_x), max(finite_x)
    y0, y1 = min(finite_y), max(finite_y)
    if x1 - x0 < 1e-12:
        x1 = x0 + 1.0
    pad = max((y1 - y0) * 0.05, 1e-3)
    y0, y1 = y0 - pad, y1 + pad

    def px(v: float) -> float:
        return float(left + (v - x0) / (x1 - x0) * pw)

    def py(v: float) -> float:
        return float(top + ph - (v - y0) / (y1 - y0) * ph)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
           f'<text x="{left}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for t in _ticks(x0, x1):
        out.append(f'<line x1="{px(t):.1f}" y1="{top + ph}" x2="{px(t):.1f}" y2="{top + ph + 4}" stroke="#999"/>'
                   f'<text x="{px(t):.1f}" y="{top + ph + 16}" font-size="10" text-anchor="middle">'
                   f'{escape(_fmt(t))}</text>')
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{left - 4}" y1="{py(t):.1f}" x2="{left}" y2="{py(t):.1f}" stroke="#999"/>'
                   f'<text x="{left - 6}" y="{py(t) + 3:.1f}" font-size="10" text-anchor="end">'
                   f'{escape(_fmt(t))}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 8}" font-size="11" text-anchor="middle">'
               f'{escape(xlabel)}</text>')
    out.append(f'<text x="14" y="{top + ph / 2:.1f}" font-size="11" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + ph / 2:.1f})">{escape(ylabel)}</text>')
    legend_y = top + 6
    for s in series:
        x, y = _thin(np.asarray(s.x, dtype=float), np.asarray(s.y, dtype=float))
        ok = np.isfinite(x) & np.isfinite(y)
        pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x[ok].tolist(), y[ok].tolist(), strict=True))
        dash = ' stroke-dasharray="5,4"' if s.dashed else ""
        out.append(f'<polyline points="{pts}" fill="none" stroke="{s.color}" stroke-width="1.8"{dash}/>')
        out.append(f'<line x1="{left + pw + 10}" y1="{legend_y}" x2="{left + pw + 30}" y2="{legend_y}" '
                   f'stroke="{s.color}" stroke-width="2"{dash}/><text x="{left + pw + 34}" y="{legend_y + 4}" '
                   f'font-size="11">{escape(s.label[:22])}</text>')
        legend_y += 16
    for m in markers:
        if not (np.isfinite(m.x) and np.isfinite(m.y)):
            continue
        # a label near the right edge is written leftwards, so it stays inside the plot, clear of the legend
        right_half = px(m.x) > left + pw / 2
        tx, anchor = (px(m.x) - 6, "end") if right_half else (px(m.x) + 6, "start")
        out.append(f'<circle cx="{px(m.x):.1f}" cy="{py(m.y):.1f}" r="4" fill="{m.color}">'
                   f'<title>{escape(m.label)}</title></circle>'
                   f'<text x="{tx:.1f}" y="{py(m.y) - 6:.1f}" font-size="10" text-anchor="{anchor}">'
                   f"{escape(m.label)}</text>")
    out.append("</svg>")
    return "".join(out)

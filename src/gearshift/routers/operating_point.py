"""The thresholds a saved router was calibrated to, kept in its directory beside `manifest.json`.

A trained router's p_strong is its own scale: 0.5 on a stack router fitted to MMLU sends nearly every prompt
strong. So `gearshift train` calibrates the thresholds to a stated target (a strong share, a cost, or a bounded
quality loss) on out-of-fold scores of the training data and saves them here with what they achieved; the
gateway serves them when `[router] path` names the directory and the config sets no thresholds of its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gearshift.errors import RouterError

FILE = "operating_point.json"
FORMAT = "gearshift-operating-point"


@dataclass(frozen=True)
class OperatingPoint:
    """`target`: what was asked ({"kind": "strong_share" | "cost_per_1k" | "max_quality_loss", "value": ...});
    `measured`: what the thresholds gave on the out-of-fold training scores (strong_share, quality_loss_rate,
    quality, cost_per_1k, apgr, n); `trained_on`: data name, size and model pair."""

    thresholds: tuple[float, ...]
    target: dict[str, Any]
    measured: dict[str, Any] = field(default_factory=dict)
    trained_on: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        t = self.target
        m = self.measured
        want = {"strong_share": lambda v: f"{v:.0%} strong", "cost_per_1k": lambda v: f"${v:g} per 1k requests",
                "max_quality_loss": lambda v: f"quality loss <= {v:g} at {t.get('confidence', 0.95):.0%} confidence"
                }.get(str(t.get("kind")), lambda v: str(v))(t.get("value"))
        got = f"strong share {m['strong_share']:.1%}" if "strong_share" in m else ""
        if "quality_loss_rate" in m:
            got += f", {m['quality_loss_rate']:.1%} of prompts sent cheap that needed strong"
        if m.get("cost_per_1k") is not None:
            got += f", ${m['cost_per_1k']:.4f} per 1k"
        ths = ", ".join(f"{x:.4f}" for x in self.thresholds)
        return f"threshold {ths} (target {want}; out-of-fold on the training data: {got})"


def save_operating_point(directory: str | Path, point: OperatingPoint) -> Path:
    path = Path(directory) / FILE
    payload = {"format": FORMAT, "format_version": 1, **asdict(point), "thresholds": list(point.thresholds)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_operating_point(directory: str | Path) -> OperatingPoint | None:
    """The saved operating point, or None for a router saved without one (e.g. by `retrain`)."""
    path = Path(directory) / FILE
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT:
            raise ValueError("not an operating point file")
        thresholds = tuple(float(x) for x in raw["thresholds"])
        if not thresholds or any(not 0.0 <= x <= 1.0 + 1e-9 for x in thresholds) or list(thresholds) != sorted(
                thresholds):
            raise ValueError("thresholds must be non-decreasing numbers in [0, 1]")
        return OperatingPoint(thresholds=thresholds, target=dict(raw.get("target") or {}),
                              measured=dict(raw.get("measured") or {}), trained_on=dict(raw.get("trained_on") or {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RouterError(f"{path}: unreadable operating point ({exc})") from exc

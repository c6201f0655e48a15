"""A router version's reference distribution: what its scores, tier shares and input mix looked like when it was
calibrated, kept as JSON beside the saved router (`score_reference.json`, next to `operating_point.json`).

Live traffic is compared against it (`closed_loop.drift_report`): a p_strong distribution that moves, tier shares
that move, or a segment mix that moves. The p_strong distribution is kept as `QUANTILES` evenly spaced quantiles
(levels (i + 0.5) / QUANTILES), which reproduce the calibration scores' empirical distribution to 0.1% of mass
and serve directly as the reference sample of PSI and the two-sample KS test; `n` keeps the true sample size.
No pickle: plain JSON, readable by anyone who wants to check what a gateway compares against.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gearshift.data.segments import has_code, language_of, length_bucket, yes_no
from gearshift.errors import RouterError

FILE = "score_reference.json"
FORMAT = "gearshift-score-reference"
QUANTILES = 1000
#: the segments whose mix a reference keeps (the record's `segment` names, values as SLIs label them)
MIX_SEGMENTS = ("language", "length_bucket", "has_code")


@dataclass(frozen=True)
class ScoreReference:
    """`quantiles`: p_strong at levels (i + 0.5) / len; `tier_shares[i]`: share of the calibration prompts the
    thresholds send to tier i; `segment_mix[name][value]`: share of prompts with that segment value;
    `quality_loss_rate`: share sent cheap that needed strong, where the calibration data knew it."""

    quantiles: tuple[float, ...]
    n: int
    tiers: tuple[str, ...]
    thresholds: tuple[float, ...]
    tier_shares: tuple[float, ...]
    segment_mix: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    quality_loss_rate: float | None = None
    source: str = ""

    def sample(self) -> np.ndarray:
        return np.asarray(self.quantiles, dtype=np.float64)

    @property
    def strong_share(self) -> float:
        return self.tier_shares[-1]

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": 1, "n": self.n, "tiers": list(self.tiers),
                "thresholds": list(self.thresholds), "tier_shares": [round(s, 6) for s in self.tier_shares],
                "segment_mix": {k: dict(v) for k, v in self.segment_mix.items()},
                "quality_loss_rate": self.quality_loss_rate, "source": self.source,
                "quantiles": [round(q, 6) for q in self.quantiles]}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ScoreReference:
        if raw.get("format") != FORMAT:
            raise ValueError("not a score reference file")
        q = tuple(float(x) for x in raw["quantiles"])
        shares = tuple(float(x) for x in raw["tier_shares"])
        tiers = tuple(str(t) for t in raw["tiers"])
        if not q or any(not 0.0 <= x <= 1.0 for x in q) or list(q) != sorted(q):
            raise ValueError("quantiles must be non-decreasing p_strong values in [0, 1]")
        if len(shares) != len(tiers) or len(tiers) < 2 or abs(sum(shares) - 1.0) > 1e-3:
            raise ValueError("tier_shares must be one share per tier, summing to 1")
        mix = {str(k): {str(v): float(s) for v, s in dict(m).items()} for k, m in dict(raw.get("segment_mix")
                                                                                       or {}).items()}
        qlr = raw.get("quality_loss_rate")
        return cls(q, int(raw["n"]), tiers, tuple(float(t) for t in raw.get("thresholds") or ()), shares, mix,
                   None if qlr is None else float(qlr), str(raw.get("source") or ""))


def segment_values(text: str) -> dict[str, str]:
    """The `MIX_SEGMENTS` of one prompt, valued as the gateway's records and SLIs label them."""
    return {"language": language_of(text), "length_bucket": length_bucket(text), "has_code": yes_no(has_code(text))}


def mix_of(rows: Iterable[Mapping[str, str]]) -> dict[str, dict[str, float]]:
    """Share of each value per segment name over `rows` (segment name -> value)."""
    counts: dict[str, dict[str, int]] = {}
    total = 0
    for row in rows:
        total += 1
        for name in MIX_SEGMENTS:
            if name in row:
                slot = counts.setdefault(name, {})
                slot[row[name]] = slot.get(row[name], 0) + 1
    return {name: {v: round(c / total, 6) for v, c in sorted(vals.items())} for name, vals in counts.items()}


def build_reference(scores: np.ndarray | Sequence[float], thresholds: Sequence[float], tiers: Sequence[str], *,
                    prompts: Sequence[str] | None = None, segments: Sequence[Mapping[str, str]] | None = None,
                    quality_loss_rate: float | None = None, source: str = "") -> ScoreReference:
    """The reference of a router calibrated to `thresholds` on prompts it scored `scores`. The segment mix comes
    from `segments` (rows as the records label them) or is computed from `prompts`."""
    p = np.asarray(scores, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)):
        raise RouterError("a score reference needs a non-empty 1-D array of finite p_strong scores")
    if len(thresholds) != len(tiers) - 1:
        raise RouterError(f"{len(tiers)} tiers need {len(tiers) - 1} threshold(s), got {len(thresholds)}")
    p = np.clip(p, 0.0, 1.0)
    levels = (np.arange(QUANTILES) + 0.5) / QUANTILES
    q = np.quantile(p, levels, method="inverted_cdf")
    idx = np.searchsorted(np.asarray(thresholds, dtype=np.float64), p, side="right")
    shares = np.bincount(idx, minlength=len(tiers)) / p.size
    if segments is None and prompts is not None:
        segments = [segment_values(t) for t in prompts]
    return ScoreReference(tuple(float(x) for x in q), int(p.size), tuple(tiers), tuple(float(t) for t in thresholds),
                          tuple(float(s) for s in shares), mix_of(segments or ()), quality_loss_rate, source)


def reference_path(where: str | Path) -> Path:
    """A saved router directory's reference file, or `where` itself when it names a file."""
    p = Path(where)
    return p / FILE if p.is_dir() else p


def save_reference(where: str | Path, ref: ScoreReference) -> Path:
    path = reference_path(where)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ref.to_json()) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_reference(where: str | Path) -> ScoreReference | None:
    """The reference saved at `where` (a router directory or a file), or None when there is none."""
    path = reference_path(where)
    if not path.exists():
        return None
    try:
        return ScoreReference.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RouterError(f"{path}: unreadable score reference ({exc})") from exc

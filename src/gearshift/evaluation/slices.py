"""Per-segment metrics: the dataset's own segments plus ones derived from the prompt text.

Derived segments (`DERIVED_SEGMENTS`) are the ones the gateway records and the closed loop's SLIs slice by,
defined once in `gearshift.data.segments`: ``language`` (ISO 639 code, fastText lite), ``length_bucket``
(estimated tokens: ``short`` < 50, ``medium`` 50-199, ``long`` 200-1000, ``very_long`` > 1000) and
``has_code`` (``yes``/``no``), so an offline slice such as ``length_bucket=long`` is the live one. Offline
evaluation adds ``script``, the dominant script of the letters (``ascii``, ``latin``, ``cyrillic``, ``han``,
``kana``...), which separates e.g. CJK or Cyrillic prompts whatever language the detector names.

Flag rule: a segment is flagged when its quality-loss rate (share of its prompts sent cheap that needed
strong) exceeds ``ratio`` (2) times the overall rate, it has at least ``min_n`` (30) prompts, and the
excess is significant: z >= ``z`` (3, conservative because dozens of segments are tested) under a
binomial null at the overall rate, and it has at least ``min_losses`` (3) losses: with a tiny overall rate one
loss in 70 prompts passes the z test, and a single prompt is an anecdote, not a segment problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gearshift.data.segments import has_code, language_of, length_bucket, script_of, yes_no
from gearshift.evaluation.metrics import MetricSettings, Outcomes, RoutingMetrics, compute_metrics

DERIVED_SEGMENTS = ("language", "script", "length_bucket", "has_code")


def derived_segments(prompts: Sequence[str]) -> dict[str, list[str]]:
    return {
        "language": [language_of(p) for p in prompts],
        "script": [script_of(p) for p in prompts],
        "length_bucket": [length_bucket(p) for p in prompts],
        "has_code": [yes_no(has_code(p)) for p in prompts],
    }


@dataclass(frozen=True)
class FlagRule:
    ratio: float = 2.0
    min_n: int = 30
    z: float = 3.0
    min_losses: int = 3

    def flags(self, losses: int, n: int, overall_rate: float) -> bool:
        if n < self.min_n or n == 0 or losses < self.min_losses:
            return False
        rate = losses / n
        if overall_rate <= 0:
            return True
        if rate <= self.ratio * overall_rate:
            return False
        sd = np.sqrt(n * overall_rate * (1 - overall_rate))
        return bool(sd == 0 or (losses - n * overall_rate) / sd >= self.z)


@dataclass(frozen=True)
class SegmentMetrics:
    segment: str
    value: str
    metrics: RoutingMetrics
    flagged: bool

    def to_json(self) -> dict[str, Any]:
        return {**self.metrics.to_json(), "flagged": self.flagged}


def segment_metrics(
    p_strong: np.ndarray,
    outcomes: Outcomes,
    segments: dict[str, list[str]],
    settings: MetricSettings,
    overall_quality_loss_rate: float,
    rule: FlagRule | None = None,
) -> list[SegmentMetrics]:
    """Metrics for every (segment, value), in segment order then descending size."""
    rule = rule or FlagRule()
    out: list[SegmentMetrics] = []
    for seg, values in segments.items():
        arr = np.asarray(values, dtype=object)
        uniq, counts = np.unique(arr, return_counts=True)
        for value, _ in sorted(zip(uniq.tolist(), counts.tolist(), strict=True), key=lambda vc: (-vc[1], vc[0])):
            idx = np.flatnonzero(arr == value)
            m = compute_metrics(p_strong[idx], outcomes.subset(idx), settings)
            flagged = rule.flags(m.confusion.quality_loss, m.n, overall_quality_loss_rate)
            out.append(SegmentMetrics(seg, str(value), m, flagged))
    return out

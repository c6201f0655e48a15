"""Per-segment metrics: the dataset's own segments plus ones derived from the prompt text.

Derived segments (cheap heuristics, chosen to be deterministic and dependency-free):

- ``language``: the dominant *script* of the prompt's letters, not a language identifier. ``ascii``
  (every letter is ASCII: in these datasets almost always English), ``latin`` (Latin letters with
  diacritics: French, German, Vietnamese...), ``cyrillic``, ``greek``, ``arabic``, ``hebrew``,
  ``devanagari``, ``thai``, ``hangul``, ``kana`` (Japanese), ``han`` (Chinese, or Japanese without
  kana), ``other``; ``none`` when there are no letters.
- ``length``: estimated tokens, ``<50``, ``50-200``, ``200-1000``, ``>1000``. One token per 4 ASCII
  characters and per non-ASCII character (CJK text is roughly one token per character).
- ``has_code``: ``yes`` when the prompt has a code fence or at least two code-like lines.

Flag rule: a segment is flagged when its quality-loss rate (share of its prompts sent cheap that needed
strong) exceeds ``ratio`` (2) times the overall rate, it has at least ``min_n`` (30) prompts, and the
excess is significant: z >= ``z`` (3, conservative because dozens of segments are tested) under a
binomial null at the overall rate. With an overall rate of 0, at least 3 losses suffice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gearshift.evaluation.metrics import MetricSettings, Outcomes, RoutingMetrics, compute_metrics

DERIVED_SEGMENTS = ("language", "length", "has_code")

#: (first code point, last code point, script) for the non-ASCII scripts we name.
_SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x00C0, 0x024F, "latin"), (0x1E00, 0x1EFF, "latin"),
    (0x0370, 0x03FF, "greek"), (0x0400, 0x052F, "cyrillic"), (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"), (0x0900, 0x097F, "devanagari"),
    (0x0E00, 0x0E7F, "thai"), (0x1100, 0x11FF, "hangul"), (0xAC00, 0xD7AF, "hangul"),
    (0x3040, 0x30FF, "kana"), (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"),
)
_LATIN_ASCII = re.compile(r"[A-Za-z]")
_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import|#include|public |private |function\b|const |let |var |"
    r"return\b|if\s*\(|for\s*\(|while\s*\(|SELECT\b|\}|\{$|.*;\s*$|.*\)\s*\{\s*$|<\w+[^>]*>|print\()",
    re.MULTILINE,
)


def script_of(text: str) -> str:
    ascii_letters = len(_LATIN_ASCII.findall(text))
    if text.isascii():
        return "ascii" if ascii_letters else "none"
    counts: dict[str, int] = {}
    for ch in text:
        if ord(ch) < 0x80 or not ch.isalpha():
            continue
        cp = ord(ch)
        name = next((s for lo, hi, s in _SCRIPT_RANGES if lo <= cp <= hi), "other")
        counts[name] = counts.get(name, 0) + 1
    if counts.get("kana"):  # Japanese mixes kana with han; any kana means Japanese
        counts["kana"] += counts.pop("han", 0)
    if "latin" in counts:  # diacritics come with ASCII letters
        counts["latin"] += ascii_letters
    elif ascii_letters:
        counts["ascii"] = ascii_letters
    if not counts:
        return "none"
    return max(sorted(counts), key=lambda k: counts[k])


def estimated_tokens(text: str) -> int:
    ascii_chars = sum(1 for ch in text if ord(ch) < 0x80) if not text.isascii() else len(text)
    return int(np.ceil(ascii_chars / 4)) + (len(text) - ascii_chars)


def length_bucket(text: str) -> str:
    t = estimated_tokens(text)
    if t < 50:
        return "<50"
    if t < 200:
        return "50-200"
    if t <= 1000:
        return "200-1000"
    return ">1000"


def has_code(text: str) -> bool:
    return "```" in text or len(_CODE_LINE.findall(text)) >= 2


def derived_segments(prompts: Sequence[str]) -> dict[str, list[str]]:
    return {
        "language": [script_of(p) for p in prompts],
        "length": [length_bucket(p) for p in prompts],
        "has_code": ["yes" if has_code(p) else "no" for p in prompts],
    }


@dataclass(frozen=True)
class FlagRule:
    ratio: float = 2.0
    min_n: int = 30
    z: float = 3.0

    def flags(self, losses: int, n: int, overall_rate: float) -> bool:
        if n < self.min_n or n == 0:
            return False
        rate = losses / n
        if overall_rate <= 0:
            return losses >= 3
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

"""How often the shadow judge agrees with human reviewers: the check on everything the judge's labels feed.

Hardness labels, the quality SLIs, retraining and the promotion gates all trust the judge. Reviewers label
triage items (`strong_needed` / `cheap_ok`); each item also carries the judge's own label, so agreement and
Cohen's kappa (agreement beyond what the two label rates alone would give) are measured on exactly the items
people looked at, overall and per segment. Triage items are the judge's *disagreements between tiers*, so the
figure describes the judge where it matters (it said the tiers differ), not on easy traffic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LABELS = ("cheap_ok", "strong_needed")


@dataclass(frozen=True)
class Agreement:
    n: int
    agreement: float | None
    kappa: float | None  # None when one rater used a single label throughout (kappa undefined)
    confusion: dict[str, dict[str, int]]  # human label -> judge label -> count


@dataclass(frozen=True)
class AgreementReport:
    overall: Agreement
    by_segment: dict[str, dict[str, Agreement]] = field(default_factory=dict)  # segment name -> value -> figures
    skipped: int = 0  # labelled items without a judge label (judge failed), or labelled "skip"

    def to_json(self) -> dict[str, Any]:
        def one(a: Agreement) -> dict[str, Any]:
            return {"n": a.n, "agreement": a.agreement, "kappa": a.kappa, "confusion": a.confusion}

        return {"overall": one(self.overall), "skipped": self.skipped,
                "by_segment": {k: {v: one(a) for v, a in vals.items()} for k, vals in self.by_segment.items()}}


def _agreement(pairs: Sequence[tuple[str, str]]) -> Agreement:
    confusion = {h: dict.fromkeys(LABELS, 0) for h in LABELS}
    for human, judge in pairs:
        confusion[human][judge] += 1
    n = len(pairs)
    if n == 0:
        return Agreement(0, None, None, confusion)
    observed = sum(confusion[x][x] for x in LABELS) / n
    human_rate = {x: sum(confusion[x].values()) / n for x in LABELS}
    judge_rate = {x: sum(confusion[h][x] for h in LABELS) / n for x in LABELS}
    expected = sum(human_rate[x] * judge_rate[x] for x in LABELS)
    kappa = None if expected >= 1.0 else (observed - expected) / (1.0 - expected)
    return Agreement(n, observed, kappa, confusion)


def judge_agreement(items: Iterable[Mapping[str, Any]], segments: Sequence[str] = ()) -> AgreementReport:
    """Agreement of the judge's label with the reviewer's on labelled triage items; per value of each segment
    named in `segments` (e.g. "language", "client")."""
    pairs: list[tuple[str, str, Mapping[str, Any]]] = []
    skipped = 0
    for it in items:
        human, judge = it.get("label"), (it.get("judge") or {}).get("label")
        if human in LABELS and judge in LABELS:
            pairs.append((str(human), str(judge), it.get("segments") or {}))
        elif human is not None:
            skipped += 1
    by: dict[str, dict[str, list[tuple[str, str]]]] = {s: defaultdict(list) for s in segments}
    for human, judge, seg in pairs:
        for s in segments:
            by[s][str(seg.get(s, "unknown"))].append((human, judge))
    return AgreementReport(_agreement([(h, j) for h, j, _ in pairs]),
                           {s: {v: _agreement(p) for v, p in sorted(vals.items())} for s, vals in by.items()},
                           skipped)

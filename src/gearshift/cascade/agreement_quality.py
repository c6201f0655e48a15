"""The agreement verifier on recorded outcomes: ship the first cheap model's answer only when a second agrees.

Recorded outcomes (LLMRouter's nine models) say whether each model was right, not what it answered, so the
verifier's behaviour is known exactly in three of four cases and bounded in the fourth:

- both right: the answers agree (one right answer) -> shipped, correct;
- one right: they disagree -> escalated;
- both wrong: the same wrong answer (shipped: a false accept) or not (escalated). Every figure that depends on
  it comes as two ends, `never` (wrong answers never coincide) and `always` (they always do).

Each end carries a Wilson 95 % interval for the sampling error; the ends are the unobserved part. Precision is
P(correct | shipped), recall P(shipped | correct), false-accept P(shipped | wrong), ship rate P(shipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gearshift.cascade.verifier_quality import Interval, wilson
from gearshift.errors import DataError


@dataclass(frozen=True, slots=True)
class Bounded:
    """A figure that depends on whether wrong answers coincide: its `never` and `always` ends."""

    never: Interval
    always: Interval

    def to_json(self) -> dict[str, Any]:
        return {"never": self.never.to_json(), "always": self.always.to_json()}


@dataclass(frozen=True, slots=True)
class AgreementRow:
    family: str
    n: int
    base_accuracy: Interval  # the first model alone: what shipping everything gets
    ship_rate: Bounded
    precision: Bounded
    recall: Interval  # the same at both ends: a right answer ships exactly when the second is right too
    false_accept: Bounded

    def to_json(self) -> dict[str, Any]:
        return {"family": self.family, "n": self.n, "base_accuracy": self.base_accuracy.to_json(),
                "ship_rate": self.ship_rate.to_json(), "precision": self.precision.to_json(),
                "recall": self.recall.to_json(), "false_accept": self.false_accept.to_json()}


def agreement_row(family: str, first: np.ndarray, second: np.ndarray) -> AgreementRow:
    """The figures for one group of prompts (`first`, `second`: whether each model was right, booleans)."""
    a, b = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise DataError("agreement: both models need one outcome per prompt")
    n, right, wrong = int(a.size), int(a.sum()), int((~a).sum())
    both, both_wrong = int((a & b).sum()), int((~a & ~b).sum())
    return AgreementRow(
        family=family, n=n, base_accuracy=wilson(right, n),
        ship_rate=Bounded(wilson(both, n), wilson(both + both_wrong, n)),
        precision=Bounded(wilson(both, both), wilson(both, both + both_wrong)),
        recall=wilson(both, right),
        false_accept=Bounded(wilson(0, wrong), wilson(both_wrong, wrong)))


def agreement_quality(first: np.ndarray, second: np.ndarray, families: Sequence[str]) -> list[AgreementRow]:
    """One row for all prompts, then one per family (sorted by name)."""
    fam = np.asarray(families)
    if fam.shape != np.asarray(first).shape:
        raise DataError("agreement: one family per prompt")
    a, b = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    return [agreement_row("all", a, b)] + [agreement_row(str(f), a[fam == f], b[fam == f]) for f in sorted(set(fam))]

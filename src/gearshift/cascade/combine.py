"""How verdicts combine into ship-or-escalate, per segment.

`all` (default): every verifier that gave a verdict must pass, the strict reading. `any`: one passing verdict
ships (for checks that each catch a different failure and disagree often, e.g. a judge and a consistency check
on open-ended chat). `weighted`: the weighted share of passing verdicts (`combine_weights`, default 1 each) must
reach `combine_min_score`. `combine_by_segment` picks the mode per request segment ("language=fr" = "any"); the
first matching key wins. A verifier that gave no verdict (no logprobs, a failed second call) does not count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gearshift.cascade.verifiers import Verdict
from gearshift.errors import ConfigError

MODES = ("all", "any", "weighted")


@dataclass(frozen=True)
class CombineRule:
    mode: str = "all"
    weights: Mapping[str, float] = field(default_factory=dict)
    min_score: float = 0.5
    by_segment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for m in (self.mode, *self.by_segment.values()):
            if m not in MODES:
                raise ConfigError(f"cascade.combine must be one of {', '.join(MODES)}, got {m!r}")
        for key in self.by_segment:
            if "=" not in key:
                raise ConfigError(f"cascade.combine_by_segment: {key!r} must be FIELD=VALUE, e.g. language=fr")
        if any(w < 0 for w in self.weights.values()) or not 0.0 <= self.min_score <= 1.0:
            raise ConfigError("cascade.combine_weights must be >= 0 and combine_min_score within [0, 1]")

    def mode_for(self, segment: Mapping[str, Any] | None) -> str:
        for key, mode in self.by_segment.items():
            name, value = key.split("=", 1)
            seen = (segment or {}).get(name)
            shown = ("yes" if seen else "no") if isinstance(seen, bool) else str(seen).lower()
            if seen is not None and shown == value.lower():
                return mode
        return self.mode

    def rejects(self, verdicts: Sequence[Verdict], segment: Mapping[str, Any] | None = None) -> bool:
        """True when the answer should not ship."""
        if not verdicts:
            return False
        mode = self.mode_for(segment)
        if mode == "all":
            return any(not v.passed for v in verdicts)
        if mode == "any":
            return all(not v.passed for v in verdicts)
        total = sum(self.weights.get(v.name, 1.0) for v in verdicts)
        passed = sum(self.weights.get(v.name, 1.0) for v in verdicts if v.passed)
        return total > 0 and passed / total < self.min_score

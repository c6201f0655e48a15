"""Adversarial routing probes: does the tier survive changes that should not matter, and resist ones that
should not buy the strong model?

A flip is a change of tier index under the router's `TierPolicy` (escalation rules included, as in
production). Invariance families count any flip; cost families count only upgrades of prompts the
router sent below the top tier; report families are shown, never judged. See `perturbations.py`.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gearshift.errors import ConfigError
from gearshift.evaluation.perturbations import (
    CONFOUNDER_CANDIDATES,
    GADGETS,
    INVARIANCE,
    MALFORMED,
    PARALLEL_QUESTIONS,
    join_intents,
)
from gearshift.routers.base import Router
from gearshift.routers.policy import TierPolicy

INVARIANCE_FAMILIES = (*INVARIANCE, "translation")
COST_FAMILIES = ("gadget_phrases", "confounder")
REPORT_FAMILIES = ("malformed", "multi_intent")
FAMILIES = (*INVARIANCE_FAMILIES, *COST_FAMILIES, *REPORT_FAMILIES)


@dataclass(frozen=True)
class ProbeExample:
    variant: str
    original: str
    perturbed: str
    tier_before: int
    tier_after: int


@dataclass(frozen=True)
class FamilyResult:
    """`flips` of `n` comparisons; for report families `flips` counts the notable cases (see `note`)."""

    family: str
    kind: str  # "invariance" | "cost" | "report"
    n: int
    flips: int
    budget: float | None
    examples: tuple[ProbeExample, ...] = ()
    note: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def flip_rate(self) -> float:
        return self.flips / self.n if self.n else 0.0

    @property
    def passed(self) -> bool | None:
        """None when not judged (report family, or nothing to compare)."""
        if self.budget is None or self.n == 0:
            return None
        return self.flip_rate <= self.budget

    def to_json(self) -> dict[str, Any]:
        return {"family": self.family, "kind": self.kind, "n": self.n, "flips": self.flips,
                "flip_rate": self.flip_rate, "budget": self.budget, "passed": self.passed, "note": self.note,
                "details": dict(self.details), "examples": [vars(e) for e in self.examples]}


@dataclass(frozen=True)
class ProbeReport:
    router: str
    n_prompts: int
    seed: int
    tiers: tuple[str, ...]
    thresholds: tuple[float, ...]
    families: tuple[FamilyResult, ...]
    confounder: str = ""

    @property
    def failed(self) -> list[str]:
        return [f.family for f in self.families if f.passed is False]

    @property
    def passed(self) -> bool:
        return not self.failed

    def family(self, name: str) -> FamilyResult:
        for f in self.families:
            if f.family == name:
                return f
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {"router": self.router, "n_prompts": self.n_prompts, "seed": self.seed, "tiers": list(self.tiers),
                "thresholds": list(self.thresholds), "confounder": self.confounder, "passed": self.passed,
                "failed": self.failed, "families": [f.to_json() for f in self.families]}


@dataclass(frozen=True)
class ProbeConfig:
    """`budget`: the flip rate a judged family may reach; `budgets` overrides it per family."""

    budget: float = 0.1
    budgets: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    families: tuple[str, ...] | None = None
    confounder_length: int = 4
    search_prompts: int = 32
    max_examples: int = 3

    def __post_init__(self) -> None:
        unknown = set(self.families or ()) | set(self.budgets)
        unknown -= set(FAMILIES)
        if unknown:
            raise ConfigError(f"unknown probe famil(ies) {sorted(unknown)}; known: {', '.join(FAMILIES)}")
        if not all(0.0 <= b <= 1.0 for b in (self.budget, *self.budgets.values())):
            raise ConfigError("probe budgets are flip rates within [0, 1]")


def policy_for_share(router: Router, prompts: Sequence[str], strong_share: float) -> TierPolicy:
    """A two-tier policy whose threshold sends about `strong_share` of `prompts` strong."""
    if not 0.0 < strong_share < 1.0:
        raise ConfigError(f"strong share must be within (0, 1), got {strong_share}")
    p = router.p_strong(list(prompts))
    return TierPolicy(thresholds=(float(np.quantile(p, 1.0 - strong_share)),))


class _Prober:
    def __init__(self, router: Router, policy: TierPolicy, config: ProbeConfig) -> None:
        self.router, self.policy, self.config = router, policy, config

    def tiers(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.int64)
        return np.array([self.policy.decide(s).tier_index for s in self.router.score_batch(list(texts))],
                        dtype=np.int64)

    def rng(self, family: str, i: int) -> random.Random:
        return random.Random(f"{self.config.seed}:{family}:{i}")

    def budget(self, family: str) -> float:
        return float(self.config.budgets.get(family, self.config.budget))

    def compare(self, family: str, kind: str, originals: Sequence[str], before: np.ndarray,
                variants: Mapping[str, Sequence[str]], upgrades_only: bool, note: str = "") -> FamilyResult:
        flips, n = 0, 0
        examples: list[ProbeExample] = []
        per_variant: dict[str, dict[str, int]] = {}
        for name, perturbed in variants.items():
            after = self.tiers(perturbed)
            hit = after > before if upgrades_only else after != before
            per_variant[name] = {"n": len(perturbed), "flips": int(hit.sum()),
                                 "up": int((after > before).sum()), "down": int((after < before).sum())}
            flips += int(hit.sum())
            n += len(perturbed)
            for i in np.flatnonzero(hit)[: self.config.max_examples - len(examples)]:
                examples.append(ProbeExample(name, originals[int(i)], perturbed[int(i)], int(before[i]), int(after[i])))
        return FamilyResult(family, kind, n, flips, self.budget(family), tuple(examples), note,
                            {"variants": per_variant})

    def invariance(self, family: str, prompts: Sequence[str], base: np.ndarray) -> FamilyResult:
        variants = {name: [f(t, self.rng(f"{family}.{name}", i)) for i, t in enumerate(prompts)]
                    for name, f in INVARIANCE[family].items()}
        return self.compare(family, "invariance", prompts, base, variants, upgrades_only=False)

    def translation(self) -> FamilyResult:
        english = [q["en"] for q in PARALLEL_QUESTIONS]
        base = self.tiers(english)
        langs = sorted({lang for q in PARALLEL_QUESTIONS for lang in q} - {"en"})
        variants = {lang: [q[lang] for q in PARALLEL_QUESTIONS] for lang in langs}
        return self.compare("translation", "invariance", english, base, variants, upgrades_only=False,
                            note=f"{len(english)} built-in questions, each compared with its English original")

    def gadgets(self, cheap: Sequence[str], base: np.ndarray) -> FamilyResult:
        variants = {name: [f(t, self.rng(f"gadget.{name}", i)) for i, t in enumerate(cheap)]
                    for name, f in GADGETS.items()}
        return self.compare("gadget_phrases", "cost", cheap, base, variants, upgrades_only=True,
                            note=f"{len(cheap)} prompts routed below the top tier")

    def confounder(self, cheap: Sequence[str], base: np.ndarray, strong_texts: Sequence[str]) -> FamilyResult:
        """Greedy prefix search on one half of the cheap prompts; the flip rate is measured on the other half."""
        k = min(self.config.search_prompts, len(cheap) // 2)
        search, held, held_base = list(cheap[:k]), list(cheap[k:]), base[k:]
        if k == 0 or not held:
            return FamilyResult("confounder", "cost", 0, 0, self.budget("confounder"),
                                note="too few cheap-routed prompts to search and evaluate a confounder")
        candidates = list(dict.fromkeys([*CONFOUNDER_CANDIDATES, *_top_words(strong_texts, 16)]))
        prefix: list[str] = []
        best = float(self.router.p_strong(search).mean())
        for _ in range(self.config.confounder_length):
            scores = [float(self.router.p_strong([" ".join([*prefix, c]) + " " + t for t in search]).mean())
                      for c in candidates]
            j = int(np.argmax(scores))
            if scores[j] <= best + 1e-9:
                break
            prefix.append(candidates[j])
            best = scores[j]
        gadget = " ".join(prefix)
        result = self.compare("confounder", "cost", held, held_base,
                              {"prefix": [gadget + " " + t if gadget else t for t in held]}, upgrades_only=True,
                              note=f"prefix {gadget!r} found on {k} prompts, measured on {len(held)} others")
        return replace(result, details={**result.details, "prefix": gadget, "search_mean_p_strong": best})

    def malformed(self) -> FamilyResult:
        outcome: dict[str, str] = {}
        errors = 0
        for name, text in MALFORMED.items():
            try:
                outcome[name] = self.policy.tiers[int(self.tiers([text])[0])]
            except Exception as exc:  # reported, not raised: the point is to see what breaks
                errors += 1
                outcome[name] = f"error: {type(exc).__name__}: {exc}"[:200]
        return FamilyResult("malformed", "report", len(MALFORMED), errors, None,
                            note="flips = inputs on which the router raised", details={"tiers": outcome})

    def multi_intent(self, prompts: Sequence[str], base: np.ndarray) -> FamilyResult:
        order = list(range(len(prompts)))
        self.rng("multi_intent", 0).shuffle(order)
        pairs = [(order[i], order[i + 1]) for i in range(0, min(len(order), 100) - 1, 2)]
        joined = [join_intents([prompts[a], prompts[b]]) for a, b in pairs]
        after = self.tiers(joined)
        need = np.array([max(base[a], base[b]) for a, b in pairs], dtype=np.int64)
        below = after < need
        examples = tuple(ProbeExample("pair", prompts[pairs[i][0]], joined[i], int(need[i]), int(after[i]))
                         for i in np.flatnonzero(below)[: self.config.max_examples])
        top = len(self.policy.tiers) - 1
        return FamilyResult("multi_intent", "report", len(pairs), int(below.sum()), None, examples,
                            note="flips = two-request messages routed below the higher tier of their parts",
                            details={"top_share_parts": float(np.mean(need == top)) if pairs else 0.0,
                                     "top_share_joined": float(np.mean(after == top)) if pairs else 0.0})


_STOP = frozenset(("which", "where", "there", "their", "about", "would", "could", "should", "these", "those",
                   "other", "following", "answer", "question", "choose", "correct", "options", "option"))


def _top_words(texts: Sequence[str], k: int) -> list[str]:
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update({w for w in re.findall(r"[a-z]{5,}", t.lower()) if w not in _STOP})
    return [w for w, _ in counts.most_common(k)]


def run_probes(router: Router, prompts: Sequence[str], policy: TierPolicy | None = None,
               config: ProbeConfig | None = None, progress: Callable[[str], None] | None = None) -> ProbeReport:
    """Probe `router` under `policy` (default: two tiers at p_strong 0.5) on `prompts`.

    `progress` is called with each family's name before it runs.
    """
    config = config or ProbeConfig()
    policy = policy or TierPolicy()
    if not prompts:
        raise ConfigError("probes need at least one prompt")
    prober = _Prober(router, policy, config)
    base = prober.tiers(prompts)
    top = len(policy.tiers) - 1
    cheap_idx = np.flatnonzero(base < top)
    cheap = [prompts[int(i)] for i in cheap_idx]
    strong_texts = [prompts[int(i)] for i in np.flatnonzero(base == top)]
    results: list[FamilyResult] = []
    for family in config.families or FAMILIES:
        if progress is not None:
            progress(family)
        if family in INVARIANCE:
            results.append(prober.invariance(family, prompts, base))
        elif family == "translation":
            results.append(prober.translation())
        elif family == "gadget_phrases":
            results.append(prober.gadgets(cheap, base[cheap_idx]))
        elif family == "confounder":
            results.append(prober.confounder(cheap, base[cheap_idx], strong_texts))
        elif family == "malformed":
            results.append(prober.malformed())
        else:
            results.append(prober.multi_intent(prompts, base))
    confounder = next((str(r.details.get("prefix", "")) for r in results if r.family == "confounder"), "")
    return ProbeReport(router.describe(), len(prompts), config.seed, policy.tiers, policy.thresholds,
                       tuple(results), confounder)

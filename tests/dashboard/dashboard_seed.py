"""Test data for the dashboard: a day of past decisions, a router version with OPE results, feedback.

Live traffic in a test spans a few seconds, so the time-series charts would show one point; the past
day is written straight into the gateway's decision store, as its writer would have, from real
`DecisionRecord`s.
"""

from __future__ import annotations

import random
from pathlib import Path

from gearshift.records.record import DecisionRecord, Segment
from gearshift.records.usage import cost_usd
from gearshift.store.base import DecisionStore
from gearshift.store.versions import SQLiteVersionRegistry

CHEAP_PRICE = (0.15, 0.6)  # $/M input, output
STRONG_PRICE = (3.0, 15.0)


def backfill(store: DecisionStore, now: float, *, hours: int = 23, per_hour: int = 12, seed: int = 7) -> int:
    """Decisions over the past `hours` whose strong share climbs from ~10% to ~60%, a few escalated."""
    rng = random.Random(seed)
    rows = []
    for h in range(hours, 0, -1):
        p_strong = 0.1 + 0.5 * (hours - h) / hours
        for k in range(per_hour):
            strong = rng.random() < p_strong
            tin, tout = rng.randint(50, 400), rng.randint(20, 300)
            price = STRONG_PRICE if strong else CHEAP_PRICE
            seg = Segment(language=rng.choice(["en", "en", "fr"]), length_bucket=rng.choice(["short", "medium"]),
                          has_code=rng.random() < 0.3)
            rows.append(DecisionRecord(
                request_id=f"past-{h}-{k}", time=now - h * 3600 + rng.uniform(0, 3000), route="router",
                router="keyword", segment=seg, score=0.9 if strong else 0.1, tier="strong" if strong else "cheap",
                escalated=strong and rng.random() < 0.2, tokens_in=tin, tokens_out=tout,
                cost_usd=cost_usd(tin, tout, *price), deployment="strong" if strong else "cheap-a",
                upstream_model="strong-upstream" if strong else "cheap-a-upstream", latency_ms=120.0,
            ).to_row())
    return store.append_many(rows)


OPE_RESULT = {
    "n": 412, "ess": 187.5, "max_weight": 4.2, "unsupported_mass": 0.0, "confidence": 0.95, "n_boot": 200,
    "logged_quality": 0.81, "logged_cost": 0.0031, "warnings": [],
    "estimates": {"snips": {"quality": [0.84, 0.80, 0.88], "cost": [0.0027, 0.0024, 0.0030]},
                  "dr": {"quality": [0.85, 0.81, 0.89], "cost": [0.0026, 0.0023, 0.0029]}},
}


def register_versions(db: Path, now: float) -> None:
    """Two versions of a router: the first promoted, the second a challenger with an OPE result."""
    reg = SQLiteVersionRegistry(db)
    try:
        reg.register("mf", "mf", db.parent / "mf-1", thresholds=[0.5], metrics={"auc": 0.71}, now=now - 7200)
        reg.promote("mf/1", now=now - 7000)
        reg.register("mf", "mf", db.parent / "mf-2", thresholds=[0.45], metrics={"ope": OPE_RESULT}, now=now - 600)
    finally:
        reg.close()

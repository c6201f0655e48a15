"""Synthetic outcomes with a known difficulty signal, and tiny canonical datasets built from them."""

from __future__ import annotations

import numpy as np

from gearshift.data.records import Dataset, ModelInfo, Outcome, PromptRecord

STRONG, WEAK = "big-model", "small-model"


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hardness, strong scores, weak scores): the weak model fails much more often on hard prompts."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n)
    s_strong = (rng.random(n) < 0.95 - 0.25 * hard).astype(np.float64)
    s_weak = (rng.random(n) < 0.95 - 0.8 * hard).astype(np.float64)
    return hard, s_strong, s_weak


def make_dataset(n: int = 200, seed: int = 0, prompts: list[str] | None = None) -> Dataset:
    """Prompts whose length tracks hardness (so a length heuristic carries signal), two subjects."""
    hard, s_strong, s_weak = synthetic(n, seed)
    records = []
    for i in range(n):
        text = prompts[i] if prompts else "solve " + "step " * int(5 + 60 * hard[i]) + f"#{i}"
        records.append(PromptRecord(
            id=f"p{i}", prompt=text, segments={"subject": "algebra" if i % 2 else "history"},
            outcomes={
                STRONG: Outcome(score=s_strong[i], cost_usd=0.01 + 1e-5 * len(text)),
                WEAK: Outcome(score=s_weak[i], cost_usd=0.001 + 1e-6 * len(text)),
            },
        ))
    models = {WEAK: ModelInfo(name=WEAK, tier=0, input_price_per_m=1, output_price_per_m=1),
              STRONG: ModelInfo(name=STRONG, tier=1, input_price_per_m=10, output_price_per_m=30)}
    return Dataset(name="synthetic", records=records, models=models, notes=["costs are synthetic"])

"""Shared fixtures for router tests: fast settings per registered router, synthetic and real data slices."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gearshift.config import default_data_dir

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"


@dataclass(frozen=True)
class Expect:
    """What the conformance suite demands of one registered router, with settings that keep it fast."""

    params: dict[str, Any] = field(default_factory=dict)
    trainable: bool = True
    needs_fit: bool = True  # scoring before fit raises NotFittedError
    learns: bool = True  # fit on a separable signal ranks every hard prompt above every easy one


#: Every name in ROUTERS must appear here; the conformance suite fails loudly for a missing one.
ROUTER_EXPECT: dict[str, Expect] = {
    "random": Expect({"seed": 3}, trainable=False, needs_fit=False, learns=False),
    "heuristic": Expect({"bias": -1.0, "l2": 1e-3}, needs_fit=False),
    "mf": Expect({"embedder": "hashing:dim=256", "dim": 8, "max_iter": 150}),
    "knn": Expect({"embedder": "hashing:dim=256", "k": 5}),
    "classifier": Expect({"embedder": "hashing:dim=256"}),
    "stack": Expect({"folds": 3, "trees": 20}),
}


def separable(n: int = 60, offset: int = 0) -> tuple[list[str], np.ndarray]:
    """Hard prompts are greetings and easy ones are proofs: the reverse of the heuristic's prior, so
    only a router that learns from the gaps ranks them right."""
    hard = [f"hello there, thanks a lot friend {i + offset}!" for i in range(n // 2)]
    easy = [f"prove the integral theorem for the polynomial equation number {i + offset}" for i in range(n // 2)]
    gaps = np.concatenate([np.ones(len(hard)), -np.ones(len(easy))])
    return hard + easy, gaps


def data_dir() -> Path:
    d = default_data_dir()
    if not (d / "routellm").is_dir():
        pytest.fail(f"recorded data not found at {d} (set GEARSHIFT_DATA_DIR)")
    return d


def mmlu_slice(n_per_subject: int = 40, subjects: tuple[str, ...] = (
    "abstract_algebra", "high_school_biology", "moral_scenarios", "college_physics", "marketing",
)) -> tuple[list[str], np.ndarray]:
    """(prompts, strong-minus-weak gaps) from a few MMLU subjects of the RouteLLM data."""
    prompts: list[str] = []
    gaps: list[float] = []
    for subject in subjects:
        with (data_dir() / "routellm" / "mmlu" / f"mmlu_{subject}.csv").open(encoding="utf-8") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                if i >= n_per_subject:
                    break
                prompts.append(row["prompt"])
                gaps.append(float(row[STRONG] == "True") - float(row[WEAK] == "True"))
    return prompts, np.array(gaps)


def mmlu_prompts(n: int) -> list[str]:
    out: list[str] = []
    for path in sorted((data_dir() / "routellm" / "mmlu").glob("mmlu_*.csv")):
        with path.open(encoding="utf-8") as fh:
            out.extend(row["prompt"] for row in csv.DictReader(fh))
        if len(out) >= n:
            break
    return out[:n]


@dataclass
class Preferences:
    prompt_idx: np.ndarray
    model: list[str]
    pref_model: np.ndarray  # preference for `model` over the reference, in [0, 1]
    instructions: dict[int, str]
    reference: str = "gpt4_1106_preview"


def alpaca_preferences(models: list[str]) -> Preferences:
    """AlpacaEval 2 judgements of `models` against gpt4_1106_preview.

    `preference` runs from 1 to 2 and 2 means the *model* beat the reference (mean(preference - 1) is
    exactly the leaderboard win rate), the opposite of what the data README says.
    """
    base = data_dir() / "alpaca_eval"
    instructions = {}
    with (base / "instructions.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            instructions[int(obj["idx"])] = obj["instruction"]
    idx: list[int] = []
    who: list[str] = []
    pref: list[float] = []
    wanted = set(models)
    with (base / "ae2_weighted_gpt4turbo_vs_gpt4_1106_preview.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["model"] in wanted and row["preference"]:
                idx.append(int(row["idx"]))
                who.append(row["model"])
                pref.append(float(row["preference"]) - 1.0)
    return Preferences(np.array(idx), who, np.clip(np.array(pref), 0.0, 1.0), instructions)


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability a random positive outranks a random negative (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)

"""Shared synthetic routing data: prompts about integrals need the strong model, trivia does not."""

from __future__ import annotations

import csv

import numpy as np

from gearshift.config import default_data_dir

HARD = ["integral of x^{} from 0 to {}", "evaluate the definite integral of sin({}x) dx up to {}",
        "compute the integral of e^({}x) over [0, {}]", "integral of {}/(1+x^2) from 0 to {}"]
EASY = ["what colour is the sky on day {} of {}", "name a fruit that is red, number {} of {}",
        "how many days are in week {} of month {}", "say hello to friend {} from town {}"]


def synthetic(n: int = 64, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    prompts: list[str] = []
    gaps: list[float] = []
    for i in range(n):
        hard = i % 2 == 0
        tmpl = (HARD if hard else EASY)[int(rng.integers(4))]
        prompts.append(tmpl.format(int(rng.integers(2, 9)), int(rng.integers(2, 9))))
        gaps.append(1.0 if hard else -1.0 if i % 4 == 1 else 0.0)
    return prompts, np.array(gaps)


def mmlu_slice(subject: str, limit: int) -> list[str]:
    path = default_data_dir() / "routellm" / "mmlu" / f"mmlu_{subject}.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        return [row["prompt"] for _, row in zip(range(limit), csv.DictReader(fh), strict=False)]


def gsm8k_slice(limit: int) -> list[str]:
    path = default_data_dir() / "routellm" / "gsm8k" / "gsm8k_responses.csv"
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8", newline="") as fh:
        return [row["prompt"] for _, row in zip(range(limit), csv.DictReader(fh), strict=False)]

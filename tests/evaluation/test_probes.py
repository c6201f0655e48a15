"""Probes catch a brittle router and pass a robust one, through the library and the CLI exit code."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gearshift.cli import main
from gearshift.cli.probe import EXIT_OVER_BUDGET
from gearshift.data.records import Dataset, write_jsonl
from gearshift.data.registry import load_dataset
from gearshift.evaluation.probes import ProbeConfig, run_probes
from gearshift.routers import registry
from gearshift.routers.base import PromptLike, Router, RoutingScore, prompt_text
from gearshift.routers.policy import TierPolicy

_BIG_NUMBER = re.compile(r"\d{3,}")


class BrittleRouter(Router):
    """Reacts to shouting, length and "step by step": what the probes are for."""

    name = "brittle"

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        out = []
        for p in prompts:
            text = prompt_text(p)
            letters = [c for c in text if c.isalpha()] or ["a"]
            upper = sum(c.isupper() for c in letters) / len(letters)
            hard = upper > 0.5 or "step by step" in text.lower() or len(text) > 700
            out.append(RoutingScore(0.9 if hard else 0.1, 0.8, "brittle"))
        return out


class RobustRouter(Router):
    """Decides on the numbers in the NFKC-normalised prompt, which no probe perturbation touches."""

    name = "robust"

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        texts = [unicodedata.normalize("NFKC", prompt_text(p)) for p in prompts]
        return [RoutingScore(0.9 if _BIG_NUMBER.search(t) else 0.1, 0.8, "robust") for t in texts]


@pytest.fixture(scope="module")
def mmlu_slice() -> Dataset:
    data = load_dataset("mmlu")
    idx = np.random.default_rng(0).choice(len(data), 300, replace=False)
    return data.subset(np.sort(idx), name="mmlu-slice")


def _prompts(data: Dataset, n: int = 60) -> list[str]:
    return data.prompts[:n]


def test_brittle_router_fails_the_families_it_is_brittle_to(mmlu_slice: Dataset) -> None:
    report = run_probes(BrittleRouter(), _prompts(mmlu_slice), TierPolicy(), ProbeConfig(seed=1))
    assert not report.passed
    assert report.family("casing").passed is False
    assert report.family("gadget_phrases").passed is False
    assert report.family("casing").flip_rate > 0.3  # every cheap prompt flips when upper-cased
    assert report.family("typos").passed is True  # typos change neither case, length much, nor the phrase
    gadgets = report.family("gadget_phrases").details["variants"]
    assert gadgets["step_by_step"]["flips"] == gadgets["step_by_step"]["n"] > 0
    assert gadgets["expert"]["flips"] == 0


def test_confounder_search_finds_the_routers_weakness() -> None:
    class KeywordRouter(Router):
        name = "keyword"

        def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
            return [RoutingScore(0.9 if "theorem" in prompt_text(p) else 0.1, 0.8, "kw") for p in prompts]

    prompts = [f"What colour is item number {i}?" for i in range(40)]
    report = run_probes(KeywordRouter(), prompts, TierPolicy(), ProbeConfig(families=("confounder",)))
    assert "theorem" in report.confounder.split()
    assert report.family("confounder").flip_rate == 1.0


def test_robust_router_passes_every_judged_family(mmlu_slice: Dataset) -> None:
    report = run_probes(RobustRouter(), _prompts(mmlu_slice), TierPolicy(), ProbeConfig(seed=1))
    assert report.passed, report.failed
    assert all(f.n > 0 for f in report.families)
    assert report.family("malformed").kind == "report" and report.family("malformed").passed is None


def test_probes_are_deterministic_for_a_seed(mmlu_slice: Dataset) -> None:
    a = run_probes(BrittleRouter(), _prompts(mmlu_slice, 30), config=ProbeConfig(seed=3)).to_json()
    b = run_probes(BrittleRouter(), _prompts(mmlu_slice, 30), config=ProbeConfig(seed=3)).to_json()
    assert a == b


def test_malformed_inputs_that_break_a_router_are_reported_not_raised(mmlu_slice: Dataset) -> None:
    class Fragile(RobustRouter):
        def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
            if any(not prompt_text(p).strip() for p in prompts):
                raise ValueError("empty prompt")
            return super().score_batch(prompts)

    report = run_probes(Fragile(), _prompts(mmlu_slice, 20), config=ProbeConfig(families=("malformed",)))
    malformed = report.family("malformed")
    assert malformed.flips == 2  # "empty" and "whitespace_only"
    assert malformed.details["tiers"]["empty"].startswith("error: ValueError")


@pytest.fixture
def cli_data(mmlu_slice: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    original = registry.make_router

    def make(name: str, **params: Any) -> Router:
        return {"brittle": BrittleRouter, "robust": RobustRouter}.get(name, lambda: original(name, **params))()

    monkeypatch.setattr(registry, "make_router", make)
    return write_jsonl(mmlu_slice, tmp_path / "slice.jsonl")


def test_cli_exit_code_follows_the_budget(cli_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    common = ["--data", str(cli_data), "--n", "40", "--no-progress", "--threshold", "0.5"]
    assert main(["probe", "--router", "brittle", *common, "--json-out", str(out)]) == EXIT_OVER_BUDGET
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert "casing" in saved["failed"] and saved["passed"] is False
    assert main(["probe", "--router", "robust", *common]) == 0
    assert main(["probe", "--router", "brittle", *common, "--families", "typos,whitespace"]) == 0
    assert main(["probe", "--router", "brittle", *common, "--family-budget", "casing=1.0",
                 "--family-budget", "gadget_phrases=1.0", "--family-budget", "confounder=1.0",
                 "--family-budget", "politeness=1.0", "--family-budget", "translation=1.0"]) == 0


def test_cli_trains_a_trainable_router_and_rejects_bad_input(cli_data: Path) -> None:
    common = ["--data", str(cli_data), "--n", "30", "--train-n", "200", "--no-progress"]
    code = main(["probe", "--router", "knn:embedder=hashing,k=8", *common, "--families", "casing"])
    assert code == 0  # hashing embeddings lower-case their tokens: casing cannot flip a tier
    assert main(["probe", "--router", "heuristic", *common, "--families", "nonsense"]) == 1
    assert main(["probe", *common]) == 1

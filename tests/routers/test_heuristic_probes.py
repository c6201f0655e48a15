"""The heuristic is the cheap gate in front of real traffic: the adversarial probes must not flip it."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.data.registry import load_dataset
from gearshift.evaluation.probes import ProbeReport, policy_for_share, run_probes
from gearshift.evaluation.protocols import fixed_split
from gearshift.routers.heuristic import HeuristicRouter
from gearshift.routers.policy import TierPolicy

from .conftest import data_dir

#: Effort, difficulty and courtesy phrasings that are not in the probe's lists nor written while tuning the
#: lexicon: a check that the rules generalise rather than memorise the probe.
UNSEEN_GADGETS = (
    "Go slowly and methodically, checking each deduction twice.",
    "Give me a thoughtful, well-argued, in-depth treatment of this.",
    "Experts find this deceptively difficult, so be careful.",
    "Lay out all the considerations before you commit to an answer.",
    "Sé riguroso y detallado, por favor.",
    "Prends le temps de bien réfléchir, c'est une question difficile.",
    "Bitte sehr sorgfältig und gründlich antworten.",
    "这是一个很难的问题，请认真思考。",
    "Это очень сложный вопрос, ответь подробно и внимательно.",
)


@pytest.fixture(scope="module")
def setup() -> tuple[HeuristicRouter, list[str], TierPolicy]:
    ds = load_dataset("mmlu", data_dir())
    test = fixed_split(ds.ids).test
    idx = np.sort(np.random.default_rng(0).choice(test, 200, replace=False))
    prompts = [ds.records[i].prompt for i in idx]
    router = HeuristicRouter()
    return router, prompts, policy_for_share(router, prompts, 0.5)


@pytest.fixture(scope="module")
def report(setup: tuple[HeuristicRouter, list[str], TierPolicy]) -> ProbeReport:
    router, prompts, policy = setup
    return run_probes(router, prompts, policy)


def test_every_judged_probe_family_is_within_budget(report: ProbeReport) -> None:
    assert report.passed, {f.family: round(f.flip_rate, 3) for f in report.families if f.passed is False}
    # the cost families really ran on a cheap-routed share, they did not pass by having nothing to upgrade
    assert report.family("gadget_phrases").n >= 200 and report.family("confounder").n >= 30


def test_formatting_and_courtesy_flip_nothing(report: ProbeReport) -> None:
    for family in ("casing", "politeness", "copy_paste", "html"):
        assert report.family(family).flips == 0, family


def test_unseen_effort_phrases_do_not_upgrade_cheap_prompts(
        setup: tuple[HeuristicRouter, list[str], TierPolicy]) -> None:
    router, prompts, policy = setup

    def tiers(texts: list[str]) -> np.ndarray:
        return np.array([policy.decide(s).tier_index for s in router.score_batch(texts)])

    cheap = [p for p, t in zip(prompts, tiers(prompts), strict=True) if t == 0]
    assert len(cheap) >= 50
    upgraded = total = 0
    for phrase in UNSEEN_GADGETS:
        for texts in ([f"{p}\n\n{phrase}" for p in cheap], [f"{phrase}\n\n{p}" for p in cheap]):
            upgraded += int((tiers(texts) > 0).sum())
            total += len(texts)
    assert upgraded / total <= 0.1, upgraded / total

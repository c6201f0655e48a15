"""kNN router: learns a separable signal, saves without pickle, flags unfamiliar prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gearshift.errors import NotFittedError, RouterError
from gearshift.routers.knn import KNNRouter

from ._synthetic import gsm8k_slice, mmlu_slice, synthetic

INTEGRAL = "what is the integral of x^5 from 0 to 3"
TRIVIA = "what colour is the sky on day 4 of 7"


def fitted(**params: object) -> KNNRouter:
    prompts, gaps = synthetic()
    return KNNRouter(embedder="hashing:dim=512", k=8, **params).fit(prompts, gaps)  # type: ignore[arg-type]


@pytest.mark.parametrize("target", ["soft", "hard"])
@pytest.mark.parametrize("weighting", ["distance", "uniform"])
def test_learns_a_separable_signal(target: str, weighting: str) -> None:
    r = fitted(target=target, weighting=weighting)
    hi, lo = r.score_batch([INTEGRAL, TRIVIA])
    assert hi.p_strong > 0.5 > lo.p_strong
    assert 0.5 <= hi.confidence <= 1.0 and "nearest training prompts" in hi.reason


def test_chat_messages_score_like_their_text() -> None:
    r = fitted()
    msgs = [{"role": "system", "content": ""}, {"role": "user", "content": INTEGRAL}]
    assert r.score(msgs).p_strong == pytest.approx(r.score("\n" + INTEGRAL).p_strong)


def test_save_load_gives_identical_scores(tmp_path: Path) -> None:
    for spec in ("hashing:dim=256", "tfidf:dim=16"):
        prompts, gaps = synthetic()
        r = KNNRouter(embedder=spec, k=5).fit(prompts, gaps)
        loaded = KNNRouter.load(r.save(tmp_path / spec))
        probe = [INTEGRAL, TRIVIA, "something else entirely"]
        np.testing.assert_array_equal(loaded.p_strong(probe), r.p_strong(probe))
        assert [s.ood for s in loaded.score_batch(probe)] == [s.ood for s in r.score_batch(probe)]


def test_ood_is_larger_for_unrelated_text() -> None:
    r = fitted()
    familiar, strange = r.score_batch([INTEGRAL, "Bonjour, où se trouve la gare routière ?"])
    assert familiar.ood is not None and strange.ood is not None
    assert strange.ood > 1.5 * familiar.ood


def test_ood_on_real_prompts_separates_datasets() -> None:
    train = mmlu_slice("high_school_physics", 120) + mmlu_slice("world_religions", 120)
    r = KNNRouter(embedder="tfidf:dim=64", k=10).fit(train, np.zeros(len(train)))
    same = mmlu_slice("high_school_physics", 150)[120:] + mmlu_slice("world_religions", 150)[120:]
    other = gsm8k_slice(30)
    same_ood = np.median([s.ood for s in r.score_batch(same)])  # type: ignore[type-var]
    other_ood = np.median([s.ood for s in r.score_batch(other)])  # type: ignore[type-var]
    assert other_ood > same_ood


def test_sample_weight_changes_the_fit() -> None:
    prompts, gaps = synthetic()
    w = np.where(gaps > 0, 0.05, 1.0)
    base = KNNRouter(embedder="hashing:dim=512", k=8).fit(prompts, gaps)
    weighted = KNNRouter(embedder="hashing:dim=512", k=8).fit(prompts, gaps, sample_weight=w)
    assert weighted.score(INTEGRAL).p_strong < base.score(INTEGRAL).p_strong


def test_errors() -> None:
    with pytest.raises(NotFittedError):
        KNNRouter().score("x")
    with pytest.raises(RouterError):
        KNNRouter(embedder="hashing", weighting="cubic").fit(["a", "b"], [0.0, 1.0])
    with pytest.raises(RouterError):
        KNNRouter(embedder="hashing").fit(["a", "b"], [0.0, 2.0])

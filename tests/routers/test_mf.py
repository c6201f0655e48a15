"""Matrix factorisation from two-model gaps (RouteLLM data) and from many-model preferences (AlpacaEval)."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.errors import RouterError
from gearshift.routers.mf import MFRouter
from gearshift.routers.registry import load_router

from .conftest import alpaca_preferences, mmlu_slice

FAST = {"embedder": "hashing:dim=256", "dim": 8, "max_iter": 150}


def test_two_models_from_gaps_is_calibrated_in_the_large() -> None:
    prompts, gaps = mmlu_slice(n_per_subject=40)
    router = MFRouter(**FAST).fit(prompts, gaps)
    assert router.models_ == ["strong", "weak"]
    # a tie is half a win, so the mean p_strong tracks the mean soft label
    assert router.p_strong(prompts).mean() == pytest.approx(((gaps + 1) / 2).mean(), abs=0.03)


def test_sample_weight_zero_is_leaving_the_example_out() -> None:
    prompts, gaps = mmlu_slice(n_per_subject=20)
    keep = np.arange(len(prompts)) % 3 != 0
    params = {**FAST, "l2": 1e-2}  # enough decay that L-BFGS converges, so both fits reach the same optimum
    weighted = MFRouter(**params).fit(prompts, gaps, sample_weight=keep.astype(float))
    dropped = MFRouter(**params).fit([p for p, k in zip(prompts, keep, strict=True) if k], gaps[keep])
    unweighted = MFRouter(**params).fit(prompts, gaps)
    np.testing.assert_allclose(weighted.p_strong(prompts), dropped.p_strong(prompts), atol=1e-4)
    assert np.abs(unweighted.p_strong(prompts) - dropped.p_strong(prompts)).max() > 0.05


def test_pairwise_many_models_generalise_to_unseen_prompts(tmp_path: object) -> None:
    """Trained on 500 AlpacaEval prompts, the learned model strengths rank models on the other 305."""
    models = [
        "alpaca-7b", "falcon-7b-instruct", "vicuna-7b", "gemma-2b-it", "text_davinci_003", "Qwen-14B-Chat",
        "gpt-3.5-turbo-1106", "claude-2", "OpenHermes-2.5-Mistral-7B", "FuseChat-Gemma-2-9B-Instruct",
        "gpt4_0613_concise", "claude-2.1",
    ]
    prefs = alpaca_preferences(models)
    train = prefs.prompt_idx < 500
    prompts = [prefs.instructions[i] for i in prefs.prompt_idx]
    ref = prefs.reference
    router = MFRouter(**FAST, strong_model=ref, weak_model="alpaca-7b")
    router.fit_pairs(
        [p for p, t in zip(prompts, train, strict=True) if t],
        [m for m, t in zip(prefs.model, train, strict=True) if t],
        [ref] * int(train.sum()),
        prefs.pref_model[train],
    )
    assert set(router.models_) == {*models, ref}
    held_out = sorted({prefs.instructions[i] for i in prefs.prompt_idx[~train]})
    predicted = [router.p_beats(held_out, m, ref).mean() for m in models]
    observed = [prefs.pref_model[~train & (np.array(prefs.model) == m)].mean() for m in models]
    rank_corr = np.corrcoef(np.argsort(np.argsort(predicted)), np.argsort(np.argsort(observed)))[0, 1]
    assert rank_corr > 0.8
    # the routed pair: the reference should usually be predicted to beat alpaca-7b
    assert router.p_strong(held_out).mean() > 0.8
    p = router.p_beats(held_out[:20], "claude-2", "vicuna-7b")
    np.testing.assert_allclose(p + router.p_beats(held_out[:20], "vicuna-7b", "claude-2"), 1.0)


def test_pairwise_model_set_is_saved(tmp_path: pytest.TempPathFactory) -> None:
    prompts = ["explain quantum entanglement", "say hi", "prove fermat's little theorem", "tell a joke"]
    router = MFRouter(**FAST, strong_model="big", weak_model="small").fit_pairs(
        prompts * 2, ["big", "big", "big", "mid"] * 2, ["small", "mid", "small", "small"] * 2, [1, 0.5, 1, 0.5] * 2
    )
    loaded = load_router(router.save(tmp_path / "mf"))  # type: ignore[operator]
    assert isinstance(loaded, MFRouter) and loaded.models_ == ["big", "mid", "small"]
    np.testing.assert_array_equal(loaded.model_scores(prompts), router.model_scores(prompts))


def test_bad_pairs_are_router_errors() -> None:
    with pytest.raises(RouterError, match="not in the training pairs"):
        MFRouter(**FAST).fit_pairs(["a"], ["x"], ["y"], [1.0])
    with pytest.raises(RouterError, match="itself"):
        MFRouter(**FAST, strong_model="x", weak_model="y").fit_pairs(["a", "b"], ["x", "x"], ["y", "x"], [1.0, 1.0])
    with pytest.raises(RouterError, match="within"):
        MFRouter(**FAST).fit_pairs(["a"], ["strong"], ["weak"], [1.5])
    router = MFRouter(**FAST).fit(["a", "b"], [1.0, -1.0])
    with pytest.raises(RouterError, match="not in the training data"):
        router.p_beats(["a"], "strong", "gpt-5")


def test_fitted_embedder_state_is_saved(tmp_path: pytest.TempPathFactory) -> None:
    """A learned embedder (TF-IDF vocabulary) travels with the router, so the loaded one scores the same."""
    prompts, gaps = mmlu_slice(n_per_subject=5)
    router = MFRouter(**{**FAST, "embedder": "tfidf:dim=16"}).fit(prompts, gaps)
    loaded = load_router(router.save(tmp_path / "mf"))  # type: ignore[operator]
    np.testing.assert_array_equal(loaded.p_strong(prompts), router.p_strong(prompts))
    assert MFRouter(**{**FAST, "embedder": "tfidf:dim=16"}).fit(prompts[:10], gaps[:10]).embedder_.key != \
        router.embedder_.key  # a different vocabulary is a different embedder, which load_embedder refuses

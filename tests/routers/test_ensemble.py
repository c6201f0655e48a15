"""The stack router and the array-exported trees it relies on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gearshift.errors import RouterError
from gearshift.routers.embedders.tfidf import TfidfEmbedder
from gearshift.routers.ensemble import SHAPE_FEATURES, StackRouter, _RefIndex, shape_features
from gearshift.routers.trees import TreeEnsemble

from .conftest import mmlu_prompts, mmlu_slice

#: Texts where a hand-written analyzer could drift from scikit-learn's: case folding (final sigma),
#: accents, runs of whitespace, one-letter words, punctuation-only, empty.
ODD_TEXTS = ["", "   \n\t ", "a", "I a b", "ΟΔΟΣ Σ ΣΑΣ", "Ünïcödé naïve café – 12½ × 3²", "x^2 + y^2 = z^2 ?!",
             "tab\tsep\u00a0nbsp\u2003em  double  space", "!!! ??? ...", "don't stop-believing, 3.14e-5 $100"]


@pytest.fixture(scope="module")
def mmlu_stack() -> tuple[StackRouter, list[str]]:
    """A stack router fitted on a small real MMLU slice, plus held-out real prompts of every length."""
    prompts, gaps = mmlu_slice(60)
    router = StackRouter(folds=3, trees=30).fit(prompts, gaps)
    return router, mmlu_prompts(2400)[::8] + ODD_TEXTS


def test_exported_trees_predict_what_sklearn_predicts() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = (x[:, 0] * x[:, 1] > 0).astype(float)
    model = HistGradientBoostingRegressor(max_iter=30, max_leaf_nodes=7, random_state=0).fit(x, y)
    trees = TreeEnsemble.from_sklearn(model)
    np.testing.assert_allclose(trees.predict(x), model.predict(x), atol=1e-9)
    again = TreeEnsemble.from_arrays(trees.arrays("t."), "t.")
    np.testing.assert_allclose(again.predict(x[:7]), model.predict(x[:7]), atol=1e-9)


def test_shape_features_see_options_and_numbers() -> None:
    """Shape is read from canonical text (one line, case-folded), where lettered options still count."""
    from gearshift.data.text import canonical

    mcq = "Pick one?\nA. 12\nB. a much longer option here\nC. 3\nD. 4"
    mc = dict(zip(SHAPE_FEATURES, shape_features(canonical(mcq)), strict=True))
    story = dict(zip(SHAPE_FEATURES, shape_features(canonical("Tom has 3 apples and buys 2.5 kg more for $4.")),
                     strict=True))
    assert shape_features(canonical(mcq)).tolist() == shape_features(canonical(mcq.upper().replace("\n", " "))).tolist()
    assert mc["n_options"] == 4 and story["n_options"] == 0
    assert mc["option_spread"] > 0 and story["log_numbers"] > 0 and story["decimal_share"] > 0


def test_stack_learns_real_mmlu_signal_and_round_trips(tmp_path: Path) -> None:
    prompts, gaps = mmlu_slice(60)
    n = len(prompts)
    idx = np.random.default_rng(0).permutation(n)
    tr, te = idx[: int(0.7 * n)], idx[int(0.7 * n):]
    router = StackRouter(folds=3, trees=30).fit([prompts[i] for i in tr], gaps[tr])
    test = [prompts[i] for i in te]
    p = router.p_strong(test)
    assert np.all((p > 0) & (p < 1)) and p.std() > 0.01
    # Prompts the strong model rescued score higher than prompts where it did not help, on average.
    assert p[gaps[te] > 0].mean() > p[gaps[te] <= 0].mean()
    loaded = StackRouter.load(router.save(tmp_path / "stack"))
    np.testing.assert_allclose(loaded.p_strong(test), p, atol=1e-9)
    s = loaded.score(test[0])
    assert s.ood is not None and s.ood > 0 and set(s.features) == {"ngram_logit", "shape_trees"}


def test_stack_rejects_too_few_prompts() -> None:
    with pytest.raises(RouterError):
        StackRouter(folds=5).fit(["a", "b", "c"], [1.0, -1.0, 0.0])


def test_tfidf_fast_rows_equal_scikit_learn_transform() -> None:
    prompts = mmlu_prompts(600)
    for char_max in (4, 5):
        emb = TfidfEmbedder(dim=0, word_features=5000, char_features=5000, char_max=char_max).fit(prompts[:300])
        texts = prompts[300:] + ODD_TEXTS
        batch = emb.sparse(texts)  # many texts: scikit-learn's transform
        for i, text in enumerate(texts):
            cols, vals = emb.sparse_row(text)
            row = batch.getrow(i)
            np.testing.assert_array_equal(cols, row.indices)
            np.testing.assert_allclose(vals, row.data, rtol=0, atol=1e-12)
        few = emb.sparse(texts[:3])  # a handful of texts: the fast path, as a CSR matrix
        np.testing.assert_allclose(few.toarray(), batch[:3].toarray(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("matvec_nnz", [2500, 0], ids=["gather", "matvec"])
def test_stack_single_prompt_path_matches_batch_path(mmlu_stack: tuple[StackRouter, list[str]], matvec_nnz: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_RefIndex, "MATVEC_NNZ", matvec_nnz)  # both ways of getting the OOD similarities
    router, texts = mmlu_stack
    batch = router.score_batch(texts)  # hundreds of prompts: the vectorised scipy path
    single = [router.score(t) for t in texts]  # one at a time: the request path
    np.testing.assert_allclose([s.p_strong for s in single], [b.p_strong for b in batch], rtol=0, atol=1e-9)
    np.testing.assert_allclose([s.ood for s in single], [b.ood for b in batch], rtol=0, atol=1e-5)
    for key in ("ngram_logit", "shape_trees"):
        np.testing.assert_allclose([s.features[key] for s in single], [b.features[key] for b in batch], atol=1e-9)


def test_a_saved_stack_serves_one_prompt_without_scikit_learn_or_scipy(
        mmlu_stack: tuple[StackRouter, list[str]], tmp_path: Path) -> None:
    """What `[router] path` loads into the gateway: scoring one prompt at a time must not pull in scikit-learn
    and scipy (~50 MB of RSS per worker), and must score exactly what the fitted router scores."""
    router, texts = mmlu_stack
    saved = router.save(tmp_path / "stack")
    sample = texts[::40]
    script = (
        "import json, sys\n"
        "from gearshift.routers.registry import load_router\n"
        f"r = load_router({str(saved)!r})\n"
        f"scores = [[s.p_strong, s.ood] for s in map(r.score, {sample!r})]\n"
        "heavy = sorted(m for m in ('sklearn', 'scipy') if m in sys.modules)\n"
        "print(json.dumps({'scores': scores, 'heavy': heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    got = json.loads(out.stdout)
    assert got["heavy"] == []
    want = [[s.p_strong, s.ood] for s in map(router.score, sample)]
    np.testing.assert_allclose(got["scores"], want, rtol=0, atol=1e-9)


def test_the_stack_scores_short_prompts_on_the_event_loop_and_long_ones_in_a_thread() -> None:
    from gearshift.routers.heuristic import HeuristicRouter

    stack = StackRouter()
    assert stack.scores_inline([{"role": "user", "content": "What is 2 + 2?"}])
    assert not stack.scores_inline([{"role": "user", "content": "word " * 1000}])
    assert HeuristicRouter().scores_inline("word " * 100_000)


def _sklearn_trees(leaves: int, trees: int, seed: int) -> tuple[TreeEnsemble, np.ndarray]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 6))
    x[:, 5] = rng.integers(0, 4, size=600)  # few distinct values: many rows sit exactly on a threshold
    y = np.sin(x[:, 0] * 2) + x[:, 1] * x[:, 2] + (x[:, 5] > 1)
    model = HistGradientBoostingRegressor(max_iter=trees, max_leaf_nodes=leaves, min_samples_leaf=2,
                                          random_state=seed).fit(x, y)
    return TreeEnsemble.from_sklearn(model), x


@pytest.mark.parametrize("leaves", [2, 7, 15, 31, 63, 100])
def test_one_row_trees_equal_the_level_walk(leaves: int) -> None:
    """`predict_one` (leaf bitmasks; `predict` itself past 64 leaves) gives exactly `predict`'s sums, on rows
    at, between and beyond the thresholds, NaN and infinities included."""
    trees, x = _sklearn_trees(leaves, 25, leaves)
    rng = np.random.default_rng(1)
    rows = np.vstack([x[:200], rng.normal(size=(100, 6)) * 5])
    inner = ~trees.leaf
    for i in range(100):  # a feature exactly on one of its thresholds
        node = rng.choice(np.flatnonzero(inner))
        rows[i, trees.feature[node]] = trees.threshold[node]
    rows[200:210, 0] = np.nan
    rows[210:220, 1] = np.inf
    rows[220:230, 2] = -np.inf
    want = trees.predict(rows)
    got = np.array([trees.predict_one(r) for r in rows])
    np.testing.assert_array_equal(got, want)
    assert trees.predict_one(rows[0].tolist()) == want[0]
    assert (trees._quick is None) == (leaves > 64)


def test_one_row_trees_with_single_leaf_trees() -> None:
    _, x = _sklearn_trees(7, 5, 0)
    zero = np.zeros(1, dtype=np.int64)
    only_root = TreeEnsemble(feature=zero, threshold=np.zeros(1), left=zero, right=zero, leaf=np.ones(1, dtype=bool),
                             value=np.array([0.25]), roots=zero, baseline=0.5)
    assert only_root.predict_one(x[0]) == float(only_root.predict(x[:1])[0]) == 0.75


def test_shape_features_fast_scans_match_their_definitions() -> None:
    """The option and digit scans are faster forms of `(?:^|(?<=\\s))([a-j])[.)]\\s` and `str.isdigit`; the
    option statistics are ndarray.mean/max/std's to the bit."""
    import re

    from gearshift.data.text import canonical
    from gearshift.routers import ensemble

    reference = re.compile(r"(?:^|(?<=\s))([a-j])[.)]\s")
    rng = np.random.default_rng(3)
    many = [" ".join(f"{'abcdefghij'[i]}. " + "w" * int(rng.integers(0, 30)) + " x" * int(rng.integers(0, 9))
                     for i in range(k)) for k in rng.integers(2, 11, 300)]  # 2-10 options of any lengths
    texts = [canonical(t) for t in mmlu_prompts(1200)] + ODD_TEXTS + many + ["a. x b. y", "xa. b. c.",
                                                                             "\u00a0a) 1 b) 2", "٣ digits ² ½ 12"]
    for text in texts:
        assert [(*m.span(), m.group(1)) for m in ensemble._OPTION.finditer(text)] == \
            [(*m.span(), m.group(1)) for m in reference.finditer(text)]
        features = dict(zip(SHAPE_FEATURES, shape_features(text), strict=True))
        assert features["digit_ratio"] == sum(map(str.isdigit, text)) / max(len(text), 1)
        marks = [m.group(1) for m in reference.finditer(text)]
        if ("a." not in text and "a)" not in text) or ("b." not in text and "b)" not in text):  # options' pre-check
            assert "a" not in marks or "b" not in marks  # skips only texts without a run
        opts = ensemble.options(text)[1]
        ol = np.array([len(o) for o in opts], dtype=np.float64)  # the option statistics as ndarray methods
        assert [features[k] for k in ("log_mean_option", "log_max_option", "option_spread")] == \
            ([np.log1p(ol.mean()), np.log1p(ol.max()), ol.std() / (ol.mean() + 1)] if len(ol) else [0.0] * 3)


LONG_TEXTS = ["Ünïcödé naïve café – 12½ × 3² " * 40, "what is 17 * 23? " * 60,  # past DICT_MAX_CHARS
              " ".join(f"w{i} x{i * 7} y{i % 13}z" for i in range(1500))]  # past MATVEC_NNZ columns


def _assert_single_equals_batch(router: StackRouter, texts: list[str]) -> None:
    batch = router.score_batch(texts)  # more than FAST_MAX_TEXTS: the vectorised scipy path
    assert len(texts) > 8
    for text, b in zip(texts, batch, strict=True):
        s = router.score(text)
        assert s.p_strong == pytest.approx(b.p_strong, abs=1e-9)
        assert s.ood == pytest.approx(b.ood, abs=1e-5)
        for key in ("ngram_logit", "shape_trees"):
            assert s.features[key] == pytest.approx(b.features[key], abs=1e-9)
    few = router.score_batch(texts[:3])  # a handful: the one-prompt path, per prompt
    np.testing.assert_allclose([s.p_strong for s in few], [b.p_strong for b in batch[:3]], rtol=0, atol=1e-9)


def test_stack_single_prompt_path_on_long_and_odd_prompts(mmlu_stack: tuple[StackRouter, list[str]]) -> None:
    router, texts = mmlu_stack
    _assert_single_equals_batch(router, texts[:12] + ODD_TEXTS + LONG_TEXTS)


def test_stack_single_prompt_path_with_row_norms_and_changed_params() -> None:
    """Row-normalised n-grams (no per-column constants: the general one-prompt path) and parameters changed
    after fitting (the one-prompt arrays fold `shape_weight` and `ood_neighbours` in, so they are rebuilt)."""
    prompts, gaps = mmlu_slice(60)
    router = StackRouter(folds=3, trees=20, ngram_norm="row").fit(prompts, gaps)
    texts = mmlu_prompts(2400)[::200] + ODD_TEXTS[:4] + LONG_TEXTS[:1]
    _assert_single_equals_batch(router, texts)
    global_norm = StackRouter(folds=3, trees=20).fit(prompts, gaps)
    before = global_norm.score(texts[0])
    global_norm.set_params(shape_weight=0.5, ood_neighbours=2)
    after = global_norm.score(texts[0])
    assert after.features["ngram_logit"] != before.features["ngram_logit"] and after.ood != before.ood
    _assert_single_equals_batch(global_norm, texts)

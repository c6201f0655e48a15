"""Stacked router: sparse TF-IDF logistic regression and boosted trees on prompt scalars, blended by a meta-model.

Why two bases: word/char n-grams say *what* a prompt is about (topic difficulty), while scalars (length,
numbers, option lengths, sentence count...) say *how* it is shaped, and their effect is non-linear: trees
on the scalars alone reach MMLU APGR ~0.67 in cross-validation, n-grams ~0.68, the blend more. The meta
logistic regression is fitted on out-of-fold base outputs of the training side only, so its weights
are honest and its output is a calibrated probability. Scoring is a sparse dot product plus a few
dozen tree walks: well under a millisecond of arithmetic per prompt; state is vocabulary + arrays.
A single prompt (the request path) skips scipy entirely and is scored from arrays derived at load for it
(`stack_one`: one gather per n-gram column, dense OOD rows for common columns, leaf-bitmask trees); batches
use the vectorised matrix path, and the two agree to float64 rounding (OOD to float32 rounding).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from gearshift.errors import RouterError
from gearshift.routers.augment import grouped_folds, with_copies
from gearshift.routers.base import PromptLike, RoutingScore, TrainableRouter, router_text
from gearshift.routers.embedders.space import sigmoid, training_targets, weighted_log_loss
from gearshift.routers.embedders.tfidf import FAST_MAX_TEXTS, TfidfEmbedder
from gearshift.routers.stack_one import OnePrompt
from gearshift.routers.stack_one import RefIndex as _RefIndex
from gearshift.routers.trees import TreeEnsemble

_NUM = re.compile(r"\d+(?:[.,]\d+)*")
_MATH = re.compile(r"[=+\-*/^<>%$\\×÷√∑∫π≤≥]")
_OPTION = re.compile(r"(?<!\S)([a-j])[.)]\s")  # not `(?:^|(?<=\s))`: that alternation made it 3x slower
_SENT = re.compile(r"[.!?](?:\s|$)")
SHAPE_FEATURES = ("log_chars", "log_words", "log_stem_chars", "log_numbers", "log_distinct_numbers", "log_max_number",
                  "decimal_share", "percent_rate", "dollar_rate", "digit_ratio", "math_ratio", "log_sentences",
                  "log_questions", "n_options", "log_mean_option", "log_max_option", "option_spread",
                  "mean_word_len", "non_ascii_ratio", "type_token_ratio")


def options(text: str) -> tuple[int, list[str]]:
    """(where the options start, their texts) for a run of lettered options "a. ... b. ... c. ..." in one line of
    canonical text; (len(text), []) when there is no run of at least two consecutive letters from "a"."""
    if ("a." not in text and "a)" not in text) or ("b." not in text and "b)" not in text):
        return len(text), []  # no "a" or no "b" mark: no run (four `in` tests, ~0.3 us; the regex scan ~3 us)
    marks = [(m.start(), m.end(), m.group(1)) for m in _OPTION.finditer(text)]
    run: list[tuple[int, int, str]] = []
    for mark in marks:
        if mark[2] == "a":
            run = [mark] if len(run) < 2 else run
        elif run and ord(mark[2]) == ord(run[-1][2]) + 1:
            run.append(mark)
    if len(run) < 2:
        return len(text), []
    ends = [m[0] for m in run[1:]] + [len(text)]
    return run[0][0], [text[m[1]:e].strip() for m, e in zip(run, ends, strict=True)]


def shape_features(text: str) -> np.ndarray:
    """Dataset-agnostic shape of one canonical prompt, in SHAPE_FEATURES order ("stem" = text before any options).

    Case and line breaks are not features: canonical text has neither, so reformatting a prompt cannot move them.
    """
    n = max(len(text), 1)
    words = text.split()
    nw = max(len(words), 1)
    nums = _NUM.findall(text)
    vals = [float(x.replace(",", "")) for x in nums if x.replace(",", "").count(".") <= 1]
    start, opts = options(text)
    ascii_ = text.isascii()
    if opts:  # ndarray.mean/max/std's arithmetic without their Python wrappers (~15 us): lengths are integers, so
        lens = [len(o) for o in opts]  # their sum (hence the mean) is exact; the squares are summed as np.std does
        mean = sum(lens) / len(lens)
        dev = np.array(lens, dtype=np.float64) - mean
        std = math.sqrt(float(np.add.reduce(dev * dev)) / len(lens))
        spread, mean_option, max_option = std / (mean + 1), math.log1p(mean), math.log1p(max(lens))
    else:
        spread = mean_option = max_option = 0.0
    return np.array([
        math.log1p(len(text)), math.log1p(len(words)), math.log1p(start),
        math.log1p(len(nums)), math.log1p(len(set(nums))), math.log1p(min(max(vals, default=0.0), 1e300)),
        sum("." in x for x in nums) / (len(nums) + 1), text.count("%") / n * 100, text.count("$") / n * 100,
        (len(text) - len(text.encode("ascii").translate(None, b"0123456789")) if ascii_  # [0-9]: 4x the regex
         else sum(map(str.isdigit, text))) / n,  # isdigit: ²
        len(_MATH.findall(text)) / n,
        math.log1p(len(_SENT.findall(text))), math.log1p(text.count("?")),
        float(len(opts)), mean_option, max_option, spread,
        sum(map(len, words)) / nw, 0.0 if ascii_ else (len(text) - len(text.encode("ascii", "ignore"))) / n,
        len(set(words)) / nw,
    ], dtype=np.float64)


def _soft_logreg(x: Any, y: np.ndarray, w: np.ndarray, C: float) -> Any:
    """Logistic regression on soft targets: each row once as positive (weight w*y), once as negative."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    n = x.shape[0]
    xx = sp.vstack([x, x], format="csr") if sp.issparse(x) else np.vstack([x, x])
    yy = np.r_[np.ones(n), np.zeros(n)]
    ww = np.r_[w * y, w * (1.0 - y)]
    if not (ww[:n].sum() > 0 and ww[n:].sum() > 0):
        raise RouterError("stack: the training targets hold a single class")
    return LogisticRegression(C=C, max_iter=3000).fit(xx, yy, sample_weight=ww)


def _unit_rows(x: Any) -> Any:
    """Rows scaled to unit L2 norm (CSR): OOD similarity is a cosine whatever the n-gram scaling."""
    from sklearn.preprocessing import normalize

    return normalize(x.tocsr(), norm="l2")


class StackRouter(TrainableRouter):
    """`C`: inverse L2 strength of the n-gram model (`tune_C` picks it from C_GRID by out-of-fold log loss).
    `shape_weight` scales the standardised shape features inside the n-gram model. `trees`, `learning_rate`,
    `leaves`, `min_leaf`: the boosted trees on shape features. `folds`: out-of-fold splits for the meta-model.
    `augment`: task-free copies per training prompt (`routers.augment`: boilerplate, role-play, keyword lines,
    typos) under the prompt's own target, so such additions carry no signal; copies share their prompt's fold.
    `ngram_norm`: "global" scales n-gram rows by one fitted constant, so appended words cannot dilute a prompt's
    own n-grams (with per-row L2 norms, "row", a short prompt plus any sentence moves toward the intercept).
    """

    name = "stack"
    version = "2"  # reads canonical text (data.text.canonical)
    #: ~0.4-0.6 ms of GIL-bound scoring at this length (micro-benchmark; 2-3x that inside a busy gateway);
    #: longer prompts go to a thread
    inline_max_chars = 2000
    C_GRID = (0.1, 0.3, 1.0)

    def __init__(self, C: float = 0.3, tune_C: bool = False, shape_weight: float = 0.1, word_features: int = 50000,
                 char_features: int = 50000, char_max: int = 5, min_df: int = 2, trees: int = 200,
                 learning_rate: float = 0.05, leaves: int = 15, min_leaf: int = 40, folds: int = 5,
                 target: str = "soft", eps: float = 0.0, ood_neighbours: int = 5, ood_reference: int = 1000,
                 augment: float = 1.0, ngram_norm: str = "global", seed: int = 0) -> None:
        self.C = C
        self.tune_C = tune_C
        self.shape_weight = shape_weight
        self.word_features = word_features
        self.char_features = char_features
        self.char_max = char_max
        self.min_df = min_df
        self.trees = trees
        self.learning_rate = learning_rate
        self.leaves = leaves
        self.min_leaf = min_leaf
        self.folds = folds
        self.target = target
        self.eps = eps
        self.ood_neighbours = ood_neighbours
        self.ood_reference = ood_reference
        self.augment = augment
        self.ngram_norm = ngram_norm
        self.seed = seed
        self._one: OnePrompt | None = None  # the request path's derived arrays (stack_one)
        self._ref: Any = None  # the OOD reference rows as scipy CSR, built on first batch use
        self._ref_raw: tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]] | None = None

    @property
    def ref_(self) -> Any:
        """The OOD reference rows (scipy CSR, float32, unit rows); a loaded router keeps only their arrays
        until a batch needs the matrix."""
        if self._ref is None:
            import scipy.sparse as sp

            if self._ref_raw is None:
                raise RouterError("stack: not fitted")
            data, indices, indptr, shape = self._ref_raw
            self._ref = sp.csr_matrix((data, indices, indptr), shape=shape)
        return self._ref

    @ref_.setter
    def ref_(self, value: Any) -> None:
        self._ref = value
        self._ref_raw = (value.data, value.indices, value.indptr, (int(value.shape[0]), int(value.shape[1])))
        self._one = None

    @property
    def _n_ref(self) -> int:
        if self._ref_raw is None:
            raise RouterError("stack: not fitted")
        return self._ref_raw[3][0]

    def _tfidf(self) -> TfidfEmbedder:
        if self.ngram_norm not in ("global", "row"):
            raise RouterError(f"stack: ngram_norm must be 'global' or 'row', got {self.ngram_norm!r}")
        return TfidfEmbedder(dim=0, word_features=self.word_features, char_features=self.char_features,
                             min_df=self.min_df, seed=self.seed, char_max=self.char_max,
                             row_norm=self.ngram_norm == "row")

    def _shape(self, texts: Sequence[str]) -> np.ndarray:
        s = np.stack([shape_features(t) for t in texts]) if texts else np.zeros((0, len(SHAPE_FEATURES)))
        return np.asarray(s, dtype=np.float64)

    def _design(self, x: Any, s: np.ndarray) -> Any:
        import scipy.sparse as sp

        z = (s - self.shape_mean_) / self.shape_scale_ * self.shape_weight
        return sp.hstack([x, sp.csr_matrix(z)], format="csr")

    def _fit_trees(self, s: np.ndarray, y: np.ndarray, w: np.ndarray) -> TreeEnsemble:
        return TreeEnsemble.fit(s, y, w, trees=self.trees, learning_rate=self.learning_rate, leaves=self.leaves,
                                min_leaf=min(self.min_leaf, max(len(y) // 10, 1)), seed=self.seed)

    def fit(self, prompts: Sequence[PromptLike], gaps: np.ndarray | Sequence[float],
            sample_weight: np.ndarray | Sequence[float] | None = None) -> Self:
        texts, y, w = training_targets(prompts, gaps, sample_weight, self.target, self.eps,
                                       min_prompts=2 * self.folds, who="stack")
        self._one = None
        n_orig = len(texts)
        texts, y, w, group = with_copies(texts, y, w, self.augment, self.seed)
        # The vocabulary and idf are unsupervised, so fitting them once on the whole training side is safe.
        self._vec = self._tfidf().fit(texts[:n_orig])
        x = self._vec.sparse(texts)
        s = self._shape(texts)
        self.shape_mean_ = s.mean(axis=0)
        self.shape_scale_ = np.where(s.std(axis=0) > 1e-9, s.std(axis=0), 1.0)
        z = self._design(x, s)
        grid = self.C_GRID if self.tune_C else (float(self.C),)
        folds = grouped_folds(group, self.folds, self.seed)  # no prompt is scored by a model that saw its copy
        oof_tree = np.zeros(len(y))
        for tr, te in folds:
            oof_tree[te] = self._fit_trees(s[tr], y[tr], w[tr]).predict(s[te])
        best: tuple[float, float, np.ndarray] | None = None  # (loss, C, meta weights)
        for C in grid:
            oof_lin = np.zeros(len(y))
            for tr, te in folds:
                oof_lin[te] = _soft_logreg(z[tr], y[tr], w[tr], C).decision_function(z[te])
            meta = np.column_stack([oof_lin, oof_tree])
            m = _soft_logreg(meta, y, w, 1e4)
            loss = weighted_log_loss(m.predict_proba(meta)[:, 1], y, w)
            if best is None or loss < best[0]:
                best = (loss, C, np.r_[m.coef_[0], m.intercept_])
        if best is None:
            raise RouterError("stack: empty C grid")
        self.C_ = best[1]
        self.meta_ = best[2]
        lin = _soft_logreg(z, y, w, self.C_)
        self.coef_ = np.asarray(lin.coef_[0], dtype=np.float64)
        self.intercept_ = float(lin.intercept_[0])
        self.trees_ = self._fit_trees(s, y, w)
        ref = np.sort(np.random.default_rng(self.seed).permutation(n_orig)[: self.ood_reference])
        self.ref_ = _unit_rows(x[ref]).astype(np.float32)
        self.ood_scale_ = self._ood_scale()
        return self

    def _top_sims(self, x: Any, exclude_self: bool = False) -> np.ndarray:
        sims = np.asarray((_unit_rows(x) @ self.ref_.T).toarray(), dtype=np.float64)
        if exclude_self:
            np.fill_diagonal(sims, -np.inf)
        return self._top_k(sims, exclude_self)

    def _top_k(self, sims: np.ndarray, exclude_self: bool = False) -> np.ndarray:
        """The `ood_neighbours` largest similarities of each row of (n, reference) `sims`."""
        k = max(1, min(self.ood_neighbours, self._n_ref - int(exclude_self)))
        part = np.partition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else -sims
        return np.asarray(-part, dtype=np.float64)

    def _ood_scale(self) -> float:
        if self._n_ref < 2:
            return 1.0
        d = float(np.median(1.0 - self._top_sims(self.ref_, exclude_self=True).mean(axis=1)))
        return max(d, 1e-6)

    def _parts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, Any]:
        x = self._vec.sparse(texts)
        s = self._shape(texts)
        z = self._design(x, s)
        lin = np.asarray(z @ self.coef_, dtype=np.float64) + self.intercept_
        return lin, self.trees_.predict(s), x

    def _one_prompt(self) -> OnePrompt:
        one = self._one
        if one is None or one.params != (self.shape_weight, self.ood_neighbours):  # set_params after fitting
            if self._ref_raw is None:
                raise RouterError("stack: not fitted")
            k = max(1, min(self.ood_neighbours, self._n_ref))
            one = self._one = OnePrompt(self._vec, self.coef_, self.intercept_, self.shape_mean_, self.shape_scale_,
                                        self.shape_weight, self.trees_, _RefIndex(*self._ref_raw), k)
            one.params = (self.shape_weight, self.ood_neighbours)
        return one

    def _parts_one(self, text: str) -> tuple[float, float, float]:
        """(n-gram logit, tree output, mean of the `ood_neighbours` largest reference similarities) of one
        prompt, without scipy (`stack_one`)."""
        return self._one_prompt().parts(text, shape_features(text))

    def score(self, prompt: PromptLike) -> RoutingScore:
        """One prompt (the request path): `score_batch`'s arithmetic on scalars, no per-call arrays beyond the
        prompt's own n-grams and similarities."""
        if self._one is None:  # built by fit and load: is_fitted's scan of the attributes is not needed per call
            self._check_fitted()
        lin, tree, top = self._parts_one(router_text(prompt))
        m0, m1, m2 = self.meta_.tolist()
        z = min(max(m0 * lin + m1 * tree + m2, -30.0), 30.0)
        p = 1.0 / (1.0 + math.exp(-z))
        return RoutingScore(p_strong=p, confidence=max(p, 1 - p),
                            reason=f"stack (n-grams + shape trees): calibrated p_strong={p:.3f}",
                            features={"ngram_logit": lin, "shape_trees": tree}, ood=(1.0 - top) / self.ood_scale_)

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        self._check_fitted()
        if not prompts:
            return []
        texts = [router_text(p) for p in prompts]
        if len(texts) <= FAST_MAX_TEXTS:
            lin, tree, top = (np.array(q) for q in zip(*(self._parts_one(t) for t in texts), strict=True))
        else:
            lin, tree, x = self._parts(texts)
            top = self._top_sims(x).mean(axis=1)
        p = sigmoid(self.meta_[0] * lin + self.meta_[1] * tree + self.meta_[2])
        ood = (1.0 - top) / self.ood_scale_
        return [RoutingScore(p_strong=float(p[i]), confidence=float(max(p[i], 1 - p[i])),
                             reason=f"stack (n-grams + shape trees): calibrated p_strong={p[i]:.3f}",
                             features={"ngram_logit": float(lin[i]), "shape_trees": float(tree[i])},
                             ood=float(ood[i]))
                for i in range(len(texts))]

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        vmeta, varrays = self._vec.get_state()
        if self._ref_raw is None:
            raise RouterError("stack: not fitted")
        data, indices, indptr, shape = self._ref_raw
        arrays = {"coef": self.coef_, "meta": self.meta_, "shape_mean": self.shape_mean_,
                  "shape_scale": self.shape_scale_, "ref_data": data, "ref_indices": indices,
                  "ref_indptr": indptr, **{f"tfidf.{k}": v for k, v in varrays.items()},
                  **self.trees_.arrays("trees.")}
        meta = {"C": self.C_, "intercept": self.intercept_, "ood_scale": self.ood_scale_, "tfidf": vmeta,
                "ref_shape": list(shape), "tfidf_key": self._vec.key}
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        try:
            vec = self._tfidf()
            vec.set_state(meta["tfidf"], {k[6:]: v for k, v in arrays.items() if k.startswith("tfidf.")})
            if vec.key != meta["tfidf_key"]:
                raise RouterError(f"stack: tfidf state {vec.key} differs from the saved {meta['tfidf_key']}")
            self._vec = vec
            self.C_ = float(meta["C"])
            self.intercept_ = float(meta["intercept"])
            self.ood_scale_ = float(meta["ood_scale"])
            self.coef_ = arrays["coef"]
            self.meta_ = arrays["meta"]
            self.shape_mean_ = arrays["shape_mean"]
            self.shape_scale_ = arrays["shape_scale"]
            rows, cols = (int(x) for x in meta["ref_shape"])
            indptr = np.asarray(arrays["ref_indptr"])
            indices = np.asarray(arrays["ref_indices"])
            if len(indptr) != rows + 1 or (len(indices) and int(indices.max()) >= cols) or \
                    int(indptr[-1]) != len(indices) or len(arrays["ref_data"]) != len(indices):
                raise RouterError("stack: saved OOD reference rows are inconsistent")
            self._ref, self._ref_raw = None, (np.asarray(arrays["ref_data"]), indices, indptr, (rows, cols))
            self.trees_ = TreeEnsemble.from_arrays(arrays, "trees.")
            self._one = None
        except KeyError as exc:
            raise RouterError(f"stack: saved state lacks {exc}") from exc
        if self.coef_.shape != (self._ref_raw[3][1] + len(SHAPE_FEATURES),):
            raise RouterError("stack: saved coefficients do not match the saved vocabulary")
        self._one_prompt()  # derived once here, so the first request does not pay for it

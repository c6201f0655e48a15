"""Matrix-factorisation router (RouteLLM's "mf"), trained from outcome gaps or pairwise preferences.

Each model m gets a learned vector v_m and bias b_m; a prompt embedding q is projected by a learned W1,
and the model's fitness for the prompt is δ(m, q) = w2ᵀ(v_m ⊙ W1 q) + b_m. P(a beats b on q) is
σ(δ(a, q) − δ(b, q)), trained with a logistic loss on soft labels, so a tie is half a win. Preferences
among many models (AlpacaEval, LLMRouter) train one shared prompt projection, which is why MF can use
judgements about models other than the two it finally routes between.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from gearshift.errors import RouterError
from gearshift.routers.base import PromptLike, RoutingScore, TrainableRouter, as_gaps, as_weights, router_text
from gearshift.routers.embedders.space import build_embedder, fit_embed, load_embedder, saved_embedder, sigmoid

_ARRAYS = ("W1", "model_vectors", "w2", "model_bias")


class MFRouter(TrainableRouter):
    """p_strong = σ(δ(strong_model) − δ(weak_model)). `dim` is the latent size; `l2` is weight decay."""

    name = "mf"
    version = "2"  # reads canonical text (data.text.canonical)

    def __init__(
        self,
        embedder: str = "hashing",
        dim: int = 64,
        strong_model: str = "strong",
        weak_model: str = "weak",
        l2: float = 1e-3,
        max_iter: int = 300,
        seed: int = 0,
    ) -> None:
        self.embedder = embedder
        self.dim = dim
        self.strong_model = strong_model
        self.weak_model = weak_model
        self.l2 = l2
        self.max_iter = max_iter
        self.seed = seed

    # ---- training -------------------------------------------------------------------------------
    def fit(
        self,
        prompts: Sequence[PromptLike],
        gaps: np.ndarray | Sequence[float],
        sample_weight: np.ndarray | Sequence[float] | None = None,
    ) -> Self:
        """Two models: the pair (strong_model, weak_model) per prompt with preference (1 + gap) / 2."""
        n = len(prompts)
        pref = (as_gaps(gaps, n) + 1.0) / 2.0
        return self.fit_pairs(prompts, [self.strong_model] * n, [self.weak_model] * n, pref, sample_weight)

    def fit_pairs(
        self,
        prompts: Sequence[PromptLike],
        model_a: Sequence[str],
        model_b: Sequence[str],
        pref_a: np.ndarray | Sequence[float],
        sample_weight: np.ndarray | Sequence[float] | None = None,
    ) -> Self:
        """Learn from judged pairs: `pref_a[i]` in [0, 1] is how much model_a[i] beat model_b[i] on prompt i.

        A prompt may appear in many pairs; it is embedded once. The routed pair must be among the models.
        """
        n = len(prompts)
        if len(model_a) != n or len(model_b) != n:
            raise RouterError(f"fit_pairs: {n} prompts but {len(model_a)} model_a and {len(model_b)} model_b")
        y = np.asarray(pref_a, dtype=np.float64)
        if y.shape != (n,) or not np.all(np.isfinite(y)) or np.any((y < 0) | (y > 1)):
            raise RouterError("pref_a must be n finite numbers within [0, 1]")
        w = as_weights(sample_weight, n)
        if n == 0 or w.sum() <= 0:
            raise RouterError("fit needs at least one pair with positive weight")
        if any(a == b for a, b in zip(model_a, model_b, strict=True)):
            raise RouterError("fit_pairs: a model cannot be compared with itself")
        models = sorted(set(model_a) | set(model_b))
        missing = {self.strong_model, self.weak_model} - set(models)
        if missing:
            raise RouterError(f"routed model(s) {sorted(missing)} not in the training pairs (have: {models})")
        texts: dict[str, int] = {}
        prompt_idx = np.array([texts.setdefault(router_text(p), len(texts)) for p in prompts], dtype=np.int64)
        model_idx = {m: i for i, m in enumerate(models)}
        a_idx = np.array([model_idx[m] for m in model_a], dtype=np.int64)
        b_idx = np.array([model_idx[m] for m in model_b], dtype=np.int64)

        emb = build_embedder(self.embedder, None)
        q = np.asarray(fit_embed(emb, list(texts)), dtype=np.float64)
        w1, v, w2, b = self._optimise(q, prompt_idx, a_idx, b_idx, y, w / w.sum(), len(models))
        self.embedder_ = emb
        self.models_ = models
        self.W1_, self.model_vectors_, self.w2_, self.model_bias_ = w1, v, w2, b
        return self

    def _optimise(
        self, q: np.ndarray, pi: np.ndarray, ai: np.ndarray, bi: np.ndarray, y: np.ndarray, wn: np.ndarray,
        n_models: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Full-batch L-BFGS on the weighted logistic loss plus weight decay; deterministic given `seed`."""
        from scipy import sparse
        from scipy.optimize import minimize
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        k, d, n, p_count = int(self.dim), q.shape[1], len(y), q.shape[0]
        if k < 1:
            raise RouterError("dim must be at least 1")
        rows = np.arange(n)
        pm = sparse.csr_matrix((np.ones(n), (rows, pi)), shape=(n, p_count))
        dm = sparse.csr_matrix(
            (np.concatenate([np.ones(n), -np.ones(n)]), (np.concatenate([rows, rows]), np.concatenate([ai, bi]))),
            shape=(n, n_models),
        )
        sizes = [k * d, n_models * k, k, n_models]
        cuts = np.cumsum(sizes)[:-1]
        l2 = float(self.l2)

        def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            w1, v, w2, b = np.split(theta, cuts)
            return w1.reshape(k, d), v.reshape(n_models, k), w2, b

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w1, v, w2, b = unpack(theta)
            hp = pm @ (q @ w1.T)  # (n, k) projected prompt per pair
            u = dm @ v  # (n, k) v_a - v_b
            z = (hp * u) @ w2 + dm @ b
            val = float(wn @ (np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * float(theta @ theta)
            r = wn * (sigmoid(z) - y)
            g_w2 = (hp * u).T @ r
            g_v = dm.T @ (r[:, None] * hp * w2)
            g_w1 = (pm.T @ (r[:, None] * u * w2)).T @ q
            g_b = dm.T @ r
            grad = np.concatenate([g_w1.ravel(), np.asarray(g_v).ravel(), g_w2, g_b]) + l2 * theta
            return val, grad

        rng = np.random.default_rng(int(self.seed))
        theta0 = np.concatenate([
            rng.normal(0.0, 1.0, k * d),
            rng.normal(0.0, 0.1, n_models * k),
            np.ones(k),
            np.zeros(n_models),
        ])
        # the matrices are small: BLAS threads only wait on each other (measured 5x slower on a busy 2-core box)
        with threadpool_limits(limits=1, user_api="blas"):
            res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": int(self.max_iter)})
        return tuple(a.copy() for a in unpack(np.asarray(res.x, dtype=np.float64)))  # type: ignore[return-value]

    # ---- scoring --------------------------------------------------------------------------------
    def model_scores(self, prompts: Sequence[PromptLike]) -> np.ndarray:
        """δ(m, q) for every learned model (columns in `models_` order), shape (n, n_models)."""
        self._check_fitted()
        q = np.asarray(self.embedder_.embed([router_text(p) for p in prompts]), dtype=np.float64)
        h = q @ self.W1_.T
        out: np.ndarray = (h * self.w2_) @ self.model_vectors_.T + self.model_bias_
        return out

    def _model_index(self, model: str) -> int:
        try:
            return self.models_.index(model)
        except ValueError:
            raise RouterError(f"model {model!r} was not in the training data (have: {self.models_})") from None

    def p_beats(self, prompts: Sequence[PromptLike], model_a: str, model_b: str) -> np.ndarray:
        """P(model_a's answer beats model_b's) per prompt."""
        self._check_fitted()
        ia, ib = self._model_index(model_a), self._model_index(model_b)
        s = self.model_scores(prompts)
        return sigmoid(s[:, ia] - s[:, ib])

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        self._check_fitted()
        if not prompts:
            return []
        ia, ib = self._model_index(self.strong_model), self._model_index(self.weak_model)
        s = self.model_scores(prompts)
        z = s[:, ia] - s[:, ib]
        p = sigmoid(z)
        return [
            RoutingScore(
                p_strong=float(pi), confidence=float(abs(2.0 * pi - 1.0)),
                reason=f"mf: δ({self.strong_model}) − δ({self.weak_model}) = {zi:+.2f}",
                features={"delta": float(zi)},
            )
            for pi, zi in zip(p, z, strict=True)
        ]

    # ---- persistence ----------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        emeta, earrays = saved_embedder(self.embedder_)
        meta: dict[str, Any] = {"models": list(self.models_), **emeta}
        arrays = {"W1": self.W1_, "model_vectors": self.model_vectors_, "w2": self.w2_, "model_bias": self.model_bias_}
        return meta, {**arrays, **earrays}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        emb = load_embedder(self.embedder, None, meta, arrays, "mf")
        try:
            w1, v, w2, b = (np.asarray(arrays[k], dtype=np.float64) for k in _ARRAYS)
        except KeyError as exc:
            raise RouterError(f"saved mf state lacks array {exc}") from None
        models = [str(m) for m in meta.get("models", [])]
        k = w2.shape[0]
        if w1.shape != (k, emb.dim) or v.shape != (len(models), k) or b.shape != (len(models),):
            raise RouterError("saved mf arrays have inconsistent shapes")
        self.embedder_, self.models_ = emb, models
        self.W1_, self.model_vectors_, self.w2_, self.model_bias_ = w1, v, w2, b

"""Rule-based router: no training data, microseconds per prompt, and every score explains itself.

Each rule maps the prompt to a feature in [0, 1]; a logistic combination of weighted features gives
p_strong, and `features` carries each rule's contribution (weight x feature) so a decision can be read
off the score. `fit` may replace the hand-set weights by ones learned from outcome gaps.

The rules read *content*, because the heuristic is the cheap gate in front of real traffic and must not be
easy to game (see `gearshift probe`): text is normalised first (HTML tags and entities, zero-width and
non-breaking spaces, quote markers, case), and words about answer style, effort, claimed difficulty or
politeness ("think step by step", "be thorough", "expert-level", "thanks so much", in several languages)
are neither evidence nor length. Length counts grammar (function words after new content words) in whole
octaves, and leaves out short opening or closing sentences without numbers (framing: greetings, thanks,
instructions about the answer, in any phrasing); repeated words and keyword salad add none. Topic keywords
count once each and as a share of the content words, so a few pasted keywords cannot buy the strong tier;
code needs real syntax, not bare backticks or HTML. `gearshift probe --router heuristic` checks all this.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from gearshift.errors import RouterError
from gearshift.routers.base import (
    INLINE_ALWAYS,
    PromptLike,
    RoutingScore,
    TrainableRouter,
    as_gaps,
    as_weights,
    prompt_text,
)
from gearshift.routers.heuristic_evidence import (
    ARITHMETIC,
    CODE_FENCE,
    ENUMERATED,
    HAS_OPERATOR,
    Matcher,
    evidence,
    normalise,
)
from gearshift.routers.heuristic_lexicon import (
    CODE_CHARS,
    CODE_SIGNS,
    MATH_SIGNS,
)
from gearshift.routers.heuristic_lexicon import DEFAULT_KEYWORDS as DEFAULT_KEYWORDS
from gearshift.routers.heuristic_lexicon import STOP_WORDS as STOP_WORDS
from gearshift.routers.heuristic_lexicon import STYLE_CJK as STYLE_CJK
from gearshift.routers.heuristic_lexicon import STYLE_WORDS as STYLE_WORDS

#: Rule names, in the order of the feature vector.
RULES: tuple[str, ...] = ("length", "code", "math", "reasoning", "multi_intent", "constraints", "chitchat")

DEFAULT_WEIGHTS: dict[str, float] = {
    "length": 2.0, "code": 2.0, "math": 2.5, "reasoning": 1.0,
    "multi_intent": 1.0, "constraints": 0.5, "chitchat": -1.5,
}

def _by_size(item: tuple[str, float]) -> float:
    return -abs(item[1])



def _ramp(x: float, lo: float, hi: float) -> float:
    return 0.0 if x <= lo else 1.0 if x >= hi else (x - lo) / (hi - lo)


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Weighted logistic regression on soft labels y in [0, 1] (L-BFGS; the intercept is not penalised)."""
    from scipy.optimize import minimize

    wn = w / w.sum()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta[1:] + theta[0]
        # log(1 + e^z) - y z, stable for both signs
        val = float(wn @ (np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * float(theta[1:] @ theta[1:])
        r = wn * (1.0 / (1.0 + np.exp(-z)) - y)
        grad = np.concatenate(([r.sum()], x.T @ r + l2 * theta[1:]))
        return val, grad

    res = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    theta = np.asarray(res.x, dtype=np.float64)
    return theta[1:].copy(), float(theta[0])



class HeuristicRouter(TrainableRouter):
    """Weighted rules combined logistically. Usable without `fit`; `fit` learns the rule weights.

    `weights` and `keywords` override the defaults per rule (missing rules keep theirs); `short_words`
    and `long_words` span the length rule from 0 to 1 on a log scale. Length counts the function words
    ("the", "of", "que", ...) of sentences that carry content: they grow with the question, while pasted
    keywords, repeated tokens and style or courtesy sentences add none. `l2` regularises `fit`.
    """

    name = "heuristic"
    inline_max_chars = INLINE_ALWAYS  # microseconds: never worth a thread
    version = "2"

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        bias: float = -0.75,
        keywords: dict[str, list[str]] | None = None,
        short_words: int = 4,
        long_words: int = 256,
        l2: float = 1e-3,
    ) -> None:
        self.weights = weights
        self.bias = bias
        self.keywords = keywords
        self.short_words = short_words
        self.long_words = long_words
        self.l2 = l2

    def is_fitted(self) -> bool:
        """Always true: the hand-set weights are a usable model before any `fit`."""
        return True

    def set_params(self, **params: Any) -> Self:
        self.__dict__.pop("_compiled", None)
        return super().set_params(**params)

    def _matcher(self) -> Matcher:
        compiled: Matcher | None = self.__dict__.get("_compiled")
        if compiled is None:
            unknown = set(self.weights or {}) - set(RULES)
            unknown |= set(self.keywords or {}) - set(DEFAULT_KEYWORDS)
            if unknown:
                raise RouterError(f"unknown heuristic rule(s) {sorted(unknown)}; known: {list(RULES)}")
            if not 0 < self.short_words < self.long_words:
                raise RouterError("need 0 < short_words < long_words")
            words = {**DEFAULT_KEYWORDS, **(self.keywords or {})}
            compiled = Matcher.build(words)
            self._compiled = compiled
        return compiled

    def _coefficients(self) -> tuple[list[float], float]:
        coef = getattr(self, "coef_", None)
        if coef is not None:
            return [float(c) for c in coef], float(self.intercept_)
        w = {**DEFAULT_WEIGHTS, **(self.weights or {})}
        return [float(w[r]) for r in RULES], float(self.bias)

    def rule_features(self, text: str) -> list[float]:
        """The feature vector (one value in [0, 1] per rule in RULES) for one prompt text."""
        low = normalise(text)
        arithmetic = HAS_OPERATOR.search(low) is not None
        ev = evidence(low, self._matcher(), arithmetic)
        code_kw, math_kw, reasoning_kw, constraints_kw, chitchat_kw, _ = ev.hits
        # Whole octaves (4, 8, 16, ... words): a few added words move a prompt one step, and only at an edge.
        span = math.log2(self.long_words / self.short_words)
        length = min(1.0, max(0.0, math.floor(math.log2(max(ev.function, 1) / self.short_words) + 1e-9) / span))
        # Evidence is a share of the content words: pasting a few keywords into a real question moves little.
        denom = max(ev.distinct, 4)
        syntax = sum(1 for trigger, rx in CODE_SIGNS if trigger in low and (rx is None or rx.search(low))) \
            if any(c in low for c in CODE_CHARS) else 0
        real_code = 1.0 if "```" in low and CODE_FENCE.search(low) else min(1.0, 0.35 * syntax) if syntax >= 2 else 0.0
        code = min(1.0, real_code + _ramp(code_kw / denom, 0.15, 0.4))
        notation = len({m for trigger, rx in MATH_SIGNS if trigger in low for m in rx.findall(low)})
        if arithmetic:
            notation += len(set(ARITHMETIC.findall(low)))
        # Claims (keywords, notation) count at most twice; numbers carry the rest of the evidence.
        maths = _ramp((min(math_kw + notation, 2) + 0.5 * min(ev.numbers, 4)) / denom, 0.2, 0.5)
        reasoning = _ramp(reasoning_kw / denom, 0.04, 0.15)
        constraints = _ramp(constraints_kw / denom, 0.15, 0.4)
        extra_items = max(len(ENUMERATED.findall(low)) - 1, 0) if "\n" in low else 0
        multi = min(1.0, (max(ev.questions - 1, 0) + 0.5 * extra_items + 0.5 * ev.leading_connectors) / 2)
        # Small talk: a greeting or thanks with at most a couple of other words (numbers aside).
        chitchat = max(0.0, 1.0 - (ev.distinct - ev.numbers) / 3) if chitchat_kw else 0.0
        return [length, code, maths, reasoning, multi, constraints, chitchat]

    def _score_text(self, text: str, coef: list[float], intercept: float) -> RoutingScore:
        feats = self.rule_features(text)
        contrib = {rule: c * f + 0.0 for rule, c, f in zip(RULES, coef, feats, strict=True)}
        z = intercept + sum(contrib.values())
        p = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        top = [item for item in contrib.items() if item[1] != 0.0]
        if len(top) > 1:
            top.sort(key=_by_size)  # stable, as sorted() was: ties keep the order of RULES
        reason = ", ".join([f"{r} {c:+.2f}" for r, c in top[:3]]) if top else "no rule fired"
        return RoutingScore(p_strong=p, confidence=abs(2.0 * p - 1.0), reason=reason, features=contrib)

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        coef, intercept = self._coefficients()
        return [self._score_text(prompt_text(p), coef, intercept) for p in prompts]

    def fit(
        self,
        prompts: Sequence[PromptLike],
        gaps: np.ndarray | Sequence[float],
        sample_weight: np.ndarray | Sequence[float] | None = None,
    ) -> Self:
        """Learn rule weights: logistic fit of (1 + gap) / 2, so a tie counts as half a strong win."""
        n = len(prompts)
        y = (as_gaps(gaps, n) + 1.0) / 2.0
        w = as_weights(sample_weight, n)
        if n == 0 or w.sum() <= 0:
            raise RouterError("fit needs at least one prompt with positive weight")
        x = np.array([self.rule_features(prompt_text(p)) for p in prompts], dtype=np.float64)
        coef, intercept = fit_logistic(x, y, w, l2=float(self.l2))
        self.coef_ = coef
        self.intercept_ = intercept
        return self

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if getattr(self, "coef_", None) is None:
            return {"rules": list(RULES), "learned": False}, {}
        return {"rules": list(RULES), "learned": True, "intercept": self.intercept_}, {"coef": self.coef_}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if list(meta.get("rules", [])) != list(RULES):
            raise RouterError(f"saved heuristic has rules {meta.get('rules')}, this version has {list(RULES)}")
        if meta.get("learned"):
            coef = np.asarray(arrays["coef"], dtype=np.float64)
            if coef.shape != (len(RULES),):
                raise RouterError(f"saved heuristic weights have shape {coef.shape}")
            self.coef_ = coef
            self.intercept_ = float(meta["intercept"])

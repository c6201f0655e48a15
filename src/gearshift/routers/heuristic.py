"""Rule-based router: no training data, microseconds per prompt, and every score explains itself.

Each rule maps the prompt to a feature in [0, 1]; a logistic combination of weighted features gives
p_strong, and `features` carries each rule's contribution (weight x feature) so a decision can be read
off the score. `fit` may replace the hand-set weights by ones learned from outcome gaps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from gearshift.errors import RouterError
from gearshift.routers.base import PromptLike, RoutingScore, TrainableRouter, as_gaps, as_weights, prompt_text

#: Rule names, in the order of the feature vector.
RULES: tuple[str, ...] = ("length", "code", "math", "reasoning", "multi_intent", "constraints", "chitchat")

DEFAULT_WEIGHTS: dict[str, float] = {
    "length": 1.5, "code": 1.5, "math": 1.5, "reasoning": 1.2,
    "multi_intent": 1.0, "constraints": 0.6, "chitchat": -1.5,
}

#: Lower-case keywords per rule; a trailing "*" matches any word continuation ("deriv*"). Phrases, CJK
#: and words with punctuation ("c++") match as substrings.
DEFAULT_KEYWORDS: dict[str, list[str]] = {
    "code": [
        "python", "javascript", "typescript", "java", "c++", "rust", "golang", "sql", "regex", "bash",
        "function", "algorithm", "compile*", "debug*", "bug", "stack trace", "exception", "api", "refactor*",
        "código", "programa", "fonction", "programm*", "funktion", "代码", "函数", "程序", "код", "コード",
    ],
    "math": [
        "integral", "derivative", "deriv*", "equation*", "prove", "proof", "theorem", "lemma", "probabilit*",
        "matrix", "eigen*", "polynomial", "logarithm", "calculate", "solve", "compute",
        "ecuación", "ecuaciones", "demostrar", "équation*", "démontrer", "gleichung*", "beweis*",
        "方程", "证明", "积分", "概率", "уравнени*", "доказать", "証明", "方程式",
    ],
    "reasoning": [
        "step by step", "explain why", "why", "analy*", "compare", "contrast", "trade-off*", "tradeoff*",
        "justify", "evaluate", "design", "critique", "pros and cons", "implications", "reason about",
        "por qué", "paso a paso", "pourquoi", "étape par étape", "warum", "schritt für schritt",
        "为什么", "分析", "почему", "なぜ",
    ],
    "constraints": [
        "at least", "at most", "exactly", "must", "json", "table", "format", "words", "bullet points",
        "no more than", "without using", "in the style of",
    ],
    "chitchat": [
        "hi", "hello", "hey", "thanks", "thank you", "good morning", "how are you", "joke",
        "hola", "gracias", "bonjour", "merci", "hallo", "danke", "你好", "谢谢", "привет", "спасибо",
    ],
    "multi_intent": [
        "also", "additionally", "furthermore", "as well as", "and then", "then",
        "además", "aussi", "ensuite", "außerdem", "另外", "还有", "также",
    ],
}

_KEYWORD_RULES: tuple[str, ...] = ("code", "math", "reasoning", "constraints", "chitchat", "multi_intent")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_WORD = re.compile(r"\w+")
_SINGLE_WORD = re.compile(r"[^\W\d_]\w*")
_CODE_PATTERN = re.compile(r"```|#include|=>|\(\)|;[ \t]*\n|\{[ \t]*\n|</\w+>|\bdef \w+\(")
_MATH_PATTERN = re.compile(r"\\(?:frac|sum|int|sqrt|cdot|le|ge)\b|\$[^$\n]+\$|\d\s*[-+*/^=<>]\s*\(?\d|[∫∑√≤≥π]")
_ENUMERATED = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+\S", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class _Matcher:
    """Keyword lists compiled for speed: whole words by dict lookup, stems by startswith, the rest
    (phrases, CJK, words with punctuation) by substring count. Regex alternations were 20x slower."""

    words: dict[str, tuple[int, ...]]
    prefixes: tuple[str, ...]
    prefix_rules: tuple[tuple[int, ...], ...]
    phrases: tuple[tuple[str, int], ...]

    @classmethod
    def build(cls, keywords: dict[str, list[str]]) -> _Matcher:
        words: dict[str, list[int]] = {}
        prefixes: dict[str, list[int]] = {}
        phrases: list[tuple[str, int]] = []
        for i, rule in enumerate(_KEYWORD_RULES):
            for raw in keywords.get(rule, []):
                word = raw.strip().lower()
                stem = word.rstrip("*")
                if not stem:
                    continue
                if _CJK.search(stem) is None and _SINGLE_WORD.fullmatch(stem):
                    (prefixes if word.endswith("*") else words).setdefault(stem, []).append(i)
                else:
                    phrases.append((stem, i))
        return cls(
            words={w: tuple(r) for w, r in words.items()},
            prefixes=tuple(prefixes),
            prefix_rules=tuple(tuple(r) for r in prefixes.values()),
            phrases=tuple(phrases),
        )

    def counts(self, low: str) -> list[int]:
        counts = [0] * len(_KEYWORD_RULES)
        words, prefixes = self.words, self.prefixes
        for tok in _WORD.findall(low):
            rules = words.get(tok)
            if rules is not None:
                for r in rules:
                    counts[r] += 1
            elif prefixes and tok.startswith(prefixes):
                for stem, stem_rules in zip(prefixes, self.prefix_rules, strict=True):
                    if tok.startswith(stem):
                        for r in stem_rules:
                            counts[r] += 1
        for phrase, r in self.phrases:
            if phrase in low:
                counts[r] += low.count(phrase)
        return counts


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

    `weights` and `keywords` override the defaults per rule (missing rules keep theirs); `short_chars`
    and `long_chars` span the length rule from 0 to 1 on a log scale; `l2` regularises `fit`.
    """

    name = "heuristic"
    version = "1"

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        bias: float = -1.5,
        keywords: dict[str, list[str]] | None = None,
        short_chars: int = 300,
        long_chars: int = 3000,
        l2: float = 1e-3,
    ) -> None:
        self.weights = weights
        self.bias = bias
        self.keywords = keywords
        self.short_chars = short_chars
        self.long_chars = long_chars
        self.l2 = l2

    def is_fitted(self) -> bool:
        """Always true: the hand-set weights are a usable model before any `fit`."""
        return True

    def set_params(self, **params: Any) -> Self:
        self.__dict__.pop("_compiled", None)
        return super().set_params(**params)

    def _matcher(self) -> _Matcher:
        compiled: _Matcher | None = self.__dict__.get("_compiled")
        if compiled is None:
            unknown = set(self.weights or {}) - set(RULES)
            unknown |= set(self.keywords or {}) - set(DEFAULT_KEYWORDS)
            if unknown:
                raise RouterError(f"unknown heuristic rule(s) {sorted(unknown)}; known: {list(RULES)}")
            if not 0 < self.short_chars < self.long_chars:
                raise RouterError("need 0 < short_chars < long_chars")
            words = {**DEFAULT_KEYWORDS, **(self.keywords or {})}
            compiled = _Matcher.build(words)
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
        code_kw, math_kw, reasoning_kw, constraints_kw, chitchat_kw, connectors = self._matcher().counts(
            low := text.lower()
        )
        n = len(low)
        span = math.log(self.long_chars / self.short_chars)
        length = min(1.0, max(0.0, math.log(max(n, 1) / self.short_chars) / span))
        code = min(1.0, (code_kw + 2 * len(_CODE_PATTERN.findall(text))) / 3)
        maths = min(1.0, (math_kw + len(_MATH_PATTERN.findall(text))) / 2)
        reasoning = min(1.0, reasoning_kw / 2)
        extra_q = max(low.count("?") + low.count("？") - 1, 0)
        extra_items = max(len(_ENUMERATED.findall(text)) - 1, 0)
        multi = min(1.0, (extra_q + 0.5 * extra_items + 0.5 * connectors) / 2)
        constraints = min(1.0, constraints_kw / 2)
        chitchat = min(1.0, float(chitchat_kw)) * (1.0 - length) if n < 200 else 0.0
        return [length, code, maths, reasoning, multi, constraints, chitchat]

    def _score_text(self, text: str, coef: list[float], intercept: float) -> RoutingScore:
        feats = self.rule_features(text)
        contrib = {rule: c * f + 0.0 for rule, c, f in zip(RULES, coef, feats, strict=True)}
        z = intercept + sum(contrib.values())
        p = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        top = sorted((item for item in contrib.items() if item[1] != 0.0), key=lambda kv: -abs(kv[1]))[:3]
        reason = ", ".join(f"{r} {c:+.2f}" for r, c in top) if top else "no rule fired"
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

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

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from gearshift.errors import RouterError
from gearshift.routers.base import PromptLike, RoutingScore, TrainableRouter, as_gaps, as_weights, prompt_text
from gearshift.routers.heuristic_lexicon import (
    CODE_CHARS,
    CODE_SIGNS,
    GRAMMAR,
    INTERROGATIVES,
    MATH_SIGNS,
    STYLE_STEMS,
    STYLE_WORD_SET,
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

_EVIDENCE_RULES: tuple[str, ...] = ("code", "math", "reasoning", "constraints")
_KEYWORD_RULES: tuple[str, ...] = (*_EVIDENCE_RULES, "chitchat", "multi_intent")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_SINGLE_WORD = re.compile(r"[^\W\d_]\w*")
_NUMBER = re.compile(r"\d+")
_HTML_TAG = re.compile(
    r"</?(?:p|div|br|span|b|i|u|s|em|strong|small|font|ul|ol|li|h[1-6]|a|table|thead|tbody|tr|td|th|pre|"
    r"code|blockquote|html|body|head|section|article|img|hr|sup|sub|center|label|nav|header|footer)\b[^<>]*/?>",
    re.IGNORECASE,
)
_INVISIBLE = str.maketrans({"\u200b": None, "\u200c": None, "\u200d": None, "\ufeff": None, "\u00a0": " ",
                            "\r": None, "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_QUOTE_MARK = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.MULTILINE)
_SPACES = re.compile(r"[ \t\f\v]{2,}|\t")
#: Real code: a fence with something inside it, or language syntax. Bare backticks, braces and "f()" are not.
_CODE_FENCE = re.compile(r"```[\w+#-]*[ \t]*\n[ \t]*[^\s`]")
#: Arithmetic between numbers ("3 + 4", "x = 2(5)"); run only when a digit is followed by an operator.
_ARITHMETIC = re.compile(r"\d\s*[-+*/^=<>]\s*\(?\d")
_ENUMERATED = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+\S", re.MULTILINE)
_LATEX = re.compile(r"\\[a-z]+(?:\{[^{}\n]*\})*|\$[^$\n]*\$")
_EXPRESSION = re.compile(r"\w*\d\w*(?:\s*[-+*/^=<>]\s*\(?\w*\d\w*\)?)+")
_HAS_OPERATOR = re.compile(r"[-+*/^=<>]\s*\(?\d")  # cheap gate: every expression has an operator then a digit
_TOKEN = re.compile(r"\w+|[.!?](?=\s|$)|[。！？\n]")
_BOUNDARY = frozenset(".!?\n。！？")
_UNSEEN: tuple[int, ...] = (-1,)  # cache-miss sentinel, compared by identity
# Token classes for the hot loop of `_evidence` (`_Matcher.token_class`): a plain content word, a grammar
# word, a number, another function or style word, a question word that is a function word, and everything else
# (boundaries, keywords, CJK, question words that are content), which takes the full path.
_PLAIN, _GRAMMAR, _NUMBER_WORD, _FUNCTION, _ASK, _OTHER = range(6)
#: `_TOKEN` for ASCII-only text (faster): ASCII \w is the same there, and \s in a str pattern also takes \x1c-\x1f.
_ASCII_TOKEN = re.compile(r"\w+|[.!?](?![^\s\x1c-\x1f])|\n", re.ASCII)


def normalise(text: str) -> str:
    """What the rules read: HTML tags and entities, invisible and non-breaking spaces, quote markers, curly
    quotes and runs of blanks removed, so formatting a prompt never moves its score."""
    if "<" in text:
        text = _HTML_TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        text = text.translate(_INVISIBLE)
    elif "\r" in text:
        text = text.replace("\r", "")
    if ">" in text:
        text = _QUOTE_MARK.sub("", text)
    if "  " in text or "\t" in text:
        text = _SPACES.sub(" ", text)
    return text.strip().casefold()


def _by_size(item: tuple[str, float]) -> float:
    return -abs(item[1])


def _ramp(x: float, lo: float, hi: float) -> float:
    return 0.0 if x <= lo else 1.0 if x >= hi else (x - lo) / (hi - lo)


@dataclass(frozen=True, slots=True)
class _Matcher:
    """Keyword lists compiled for speed: token kinds by dict lookup (cached, stems resolved once), phrases
    (multi-word, CJK, punctuation) by substring. Regex alternations were 20x slower."""

    words: dict[str, tuple[int, ...]]
    prefixes: tuple[str, ...]
    prefix_rules: tuple[tuple[int, ...], ...]
    phrases: tuple[tuple[str, int], ...]
    ascii_phrases: tuple[tuple[str, int], ...]  # the ones an ASCII-only prompt can contain
    cache: dict[str, tuple[int, ...] | None]
    classes: dict[str, int]  # token -> one of _PLAIN ... _OTHER (see `token_class`)

    @classmethod
    def build(cls, keywords: dict[str, list[str]]) -> _Matcher:
        words: dict[str, list[int]] = {}
        prefixes: dict[str, list[int]] = {}
        phrases: list[tuple[str, int]] = []
        for i, rule in enumerate(_KEYWORD_RULES):
            for raw in keywords.get(rule, []):
                word = raw.strip().casefold()
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
            ascii_phrases=tuple(p for p in phrases if p[0].isascii()),
            cache={},
            classes={},
        )

    def kind(self, tok: str) -> tuple[int, ...] | None:
        """Keyword rules of a token; () for plain content; None for function and style words."""
        rules = self.words.get(tok)
        if rules is not None:
            return rules
        if tok in STOP_WORDS or tok in STYLE_WORD_SET:
            return None
        if self.prefixes and tok.startswith(self.prefixes):
            return tuple(r for stem, rs in zip(self.prefixes, self.prefix_rules, strict=True)
                         if tok.startswith(stem) for r in rs)
        if tok.startswith(STYLE_STEMS):
            return None
        return ()

    def kinds(self, tok: str) -> tuple[int, ...] | None:
        cache = self.cache
        try:
            return cache[tok]
        except KeyError:
            k = self.kind(tok)
            if len(cache) < 200_000:
                cache[tok] = k
            return k

    def token_class(self, tok: str) -> int:
        """How `_evidence` treats a token, resolved once: the common classes take a short path there, and
        _OTHER (boundaries, question words, keywords, CJK) the full one."""
        classes = self.classes
        try:
            return classes[tok]
        except KeyError:
            pass
        kind = self.kinds(tok)
        if tok in _BOUNDARY:
            c = _OTHER
        elif kind is None:
            c = _ASK if tok in INTERROGATIVES else _GRAMMAR if tok in GRAMMAR else _FUNCTION
        elif kind or tok in INTERROGATIVES or _CJK.search(tok) is not None:
            c = _OTHER
        else:
            c = _NUMBER_WORD if tok.isdigit() else _PLAIN
        if len(classes) < 200_000:
            classes[tok] = c
        return c


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


@dataclass(frozen=True, slots=True)
class _Evidence:
    """What the rules count in one normalised prompt."""

    content: int  # content words (not function, style or greeting words); CJK counts a word per 2 characters
    distinct: int  # distinct content words
    function: int  # function words right after a new content word: grammar, which pasted keywords lack
    hits: tuple[int, ...]  # distinct keywords per rule in _KEYWORD_RULES
    numbers: int  # distinct numbers
    questions: int  # sentences that open with a question word, carry content and end in "?"
    leading_connectors: int  # sentences after a full one that open with a connector ("Also, ...")


def _core_grammar(sentences: list[tuple[int, int, bool]], framing_words: int = 6) -> int:
    """Grammar words of the prompt without its framing: short opening or closing sentences with no numbers
    (greetings, thanks, "be thorough", "think it through"...) in any phrasing or language add no length."""
    if not sentences:
        return 0
    core = max(c for c, _, _ in sentences)
    i, j = 0, len(sentences)

    def framing(k: int) -> bool:
        c, _, number = sentences[k]
        return c <= framing_words and c < core and not number

    while i < j and framing(i):
        i += 1
    while j > i and framing(j - 1):
        j -= 1
    return sum(f for _, f, _ in sentences[i:j])


def _evidence(low: str, m: _Matcher, arithmetic: bool) -> _Evidence:
    hits: list[set[str]] = [set() for _ in _KEYWORD_RULES]
    numbers: set[str] = set()
    seen: set[str] = set()
    chat, multi = _KEYWORD_RULES.index("chitchat"), _KEYWORD_RULES.index("multi_intent")
    content = questions = connectors = 0
    substantial = False  # a full sentence came before: what a connector ("Also, ...") needs to add an intent
    ascii_only = low.isascii()
    cjk_words = 0
    text = _LATEX.sub(" ", low) if ("\\" in low or "$" in low) else low
    # An expression is one piece of notation (counted by the math rule), not several numbers.
    text = _EXPRESSION.sub(" ", text) if arithmetic else text
    in_sentence = in_function = 0
    armed = opener = asks = has_number = False
    sentences: list[tuple[int, int, bool]] = []  # (content words, grammar words, has a number) per sentence
    tokens = _ASCII_TOKEN.findall(text) if ascii_only else _TOKEN.findall(text)
    tokens.append("\n")
    # Hot loop (~80 tokens per prompt): names bound locally, and one cached class per token sends the common
    # ones down a short path that does exactly what the full path below does for that class.
    class_get, class_of, cache_get, kind_of, seen_add = m.classes.get, m.token_class, m.cache.get, m.kinds, seen.add
    plain, grammar, number, function, ask = _PLAIN, _GRAMMAR, _NUMBER_WORD, _FUNCTION, _ASK
    for tok in tokens:
        c = class_get(tok)
        if c is None:
            c = class_of(tok)
        if c == plain:
            in_sentence += 1
            if tok not in seen:
                seen_add(tok)
                armed = True
            continue
        if c == grammar:
            if armed:  # grammar after new content: "...capital OF japan"
                in_function += 1
                armed = False
            continue
        if c == number:
            in_sentence += 1
            if tok not in seen:
                seen_add(tok)
                numbers.add(tok)
                has_number = True
            continue
        if c == function:
            continue
        if c == ask:
            if in_sentence == 0:
                asks = True
            continue
        if tok in _BOUNDARY:
            if in_sentence:
                if opener and substantial:
                    connectors += 1
                if asks and tok in ("?", "？"):
                    questions += 1
                substantial = substantial or (in_sentence >= 3 and in_function >= 2)
                content += in_sentence
                sentences.append((in_sentence, in_function, has_number))
            in_sentence = in_function = 0
            armed = opener = asks = has_number = False
            continue
        if in_sentence == 0 and tok in INTERROGATIVES:
            asks = True
        kind = cache_get(tok, _UNSEEN)
        if kind is _UNSEEN:
            kind = kind_of(tok)
        if kind is None:
            if armed and tok in GRAMMAR:  # grammar after new content: "...capital OF japan"
                in_function += 1
                armed = False
            continue
        if not ascii_only and _CJK.search(tok) is not None:
            continue  # CJK runs are counted by character below
        if kind:
            for r in kind:
                hits[r].add(tok)
            if chat in kind or multi in kind:
                opener = opener or (multi in kind and in_sentence == 0)
                continue
        in_sentence += 1
        if tok in seen:
            continue  # a repeated word adds neither length nor a question
        seen_add(tok)
        if tok.isdigit():
            numbers.add(tok)
            has_number = True
        else:
            armed = True
    function = _core_grammar(sentences)
    for phrase, r in m.phrases if not ascii_only else m.ascii_phrases:
        if phrase in low:
            hits[r].add(phrase)
    if not ascii_only and _CJK.search(low) is not None:
        bare = low
        for phrase in STYLE_CJK:
            bare = bare.replace(phrase, "")
        for phrase, r in m.phrases:
            if _KEYWORD_RULES[r] == "chitchat":
                bare = bare.replace(phrase, "")
        cjk = len(_CJK.findall(bare))
        cjk_words = (cjk + 1) // 2
        content += cjk_words
        function += cjk // 4
        numbers.update(_NUMBER.findall(low))
        if cjk >= 4 and ("？" in low or "?" in low):
            questions = max(questions, 1)
    return _Evidence(content, len(seen) + cjk_words, function, tuple(len(h) for h in hits), len(numbers), questions,
                     connectors)


class HeuristicRouter(TrainableRouter):
    """Weighted rules combined logistically. Usable without `fit`; `fit` learns the rule weights.

    `weights` and `keywords` override the defaults per rule (missing rules keep theirs); `short_words`
    and `long_words` span the length rule from 0 to 1 on a log scale. Length counts the function words
    ("the", "of", "que", ...) of sentences that carry content: they grow with the question, while pasted
    keywords, repeated tokens and style or courtesy sentences add none. `l2` regularises `fit`.
    """

    name = "heuristic"
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

    def _matcher(self) -> _Matcher:
        compiled: _Matcher | None = self.__dict__.get("_compiled")
        if compiled is None:
            unknown = set(self.weights or {}) - set(RULES)
            unknown |= set(self.keywords or {}) - set(DEFAULT_KEYWORDS)
            if unknown:
                raise RouterError(f"unknown heuristic rule(s) {sorted(unknown)}; known: {list(RULES)}")
            if not 0 < self.short_words < self.long_words:
                raise RouterError("need 0 < short_words < long_words")
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
        low = normalise(text)
        arithmetic = _HAS_OPERATOR.search(low) is not None
        ev = _evidence(low, self._matcher(), arithmetic)
        code_kw, math_kw, reasoning_kw, constraints_kw, chitchat_kw, _ = ev.hits
        # Whole octaves (4, 8, 16, ... words): a few added words move a prompt one step, and only at an edge.
        span = math.log2(self.long_words / self.short_words)
        length = min(1.0, max(0.0, math.floor(math.log2(max(ev.function, 1) / self.short_words) + 1e-9) / span))
        # Evidence is a share of the content words: pasting a few keywords into a real question moves little.
        denom = max(ev.distinct, 4)
        syntax = sum(1 for trigger, rx in CODE_SIGNS if trigger in low and (rx is None or rx.search(low))) \
            if any(c in low for c in CODE_CHARS) else 0
        real_code = 1.0 if "```" in low and _CODE_FENCE.search(low) else min(1.0, 0.35 * syntax) if syntax >= 2 else 0.0
        code = min(1.0, real_code + _ramp(code_kw / denom, 0.15, 0.4))
        notation = len({m for trigger, rx in MATH_SIGNS if trigger in low for m in rx.findall(low)})
        if arithmetic:
            notation += len(set(_ARITHMETIC.findall(low)))
        # Claims (keywords, notation) count at most twice; numbers carry the rest of the evidence.
        maths = _ramp((min(math_kw + notation, 2) + 0.5 * min(ev.numbers, 4)) / denom, 0.2, 0.5)
        reasoning = _ramp(reasoning_kw / denom, 0.04, 0.15)
        constraints = _ramp(constraints_kw / denom, 0.15, 0.4)
        extra_items = max(len(_ENUMERATED.findall(low)) - 1, 0) if "\n" in low else 0
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

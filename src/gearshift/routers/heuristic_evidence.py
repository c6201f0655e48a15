"""What the heuristic router's rules count in one prompt: normalised text, keyword kinds, content and
grammar words, numbers, questions and intent connectors.

Kept apart from the router (`routers/heuristic.py`, which turns this evidence into rule features and a
score) because it is the hot loop: one cached class per token, short paths for the common token kinds, and
an ASCII-only tokeniser. Every change here must keep scores identical or bump `HeuristicRouter.version`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from gearshift.routers.heuristic_lexicon import (
    GRAMMAR,
    INTERROGATIVES,
    STOP_WORDS,
    STYLE_CJK,
    STYLE_STEMS,
    STYLE_WORD_SET,
)

_EVIDENCE_RULES: tuple[str, ...] = ("code", "math", "reasoning", "constraints")
KEYWORD_RULES: tuple[str, ...] = (*_EVIDENCE_RULES, "chitchat", "multi_intent")
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
CODE_FENCE = re.compile(r"```[\w+#-]*[ \t]*\n[ \t]*[^\s`]")
#: Arithmetic between numbers ("3 + 4", "x = 2(5)"); run only when a digit is followed by an operator.
ARITHMETIC = re.compile(r"\d\s*[-+*/^=<>]\s*\(?\d")
ENUMERATED = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+\S", re.MULTILINE)
_LATEX = re.compile(r"\\[a-z]+(?:\{[^{}\n]*\})*|\$[^$\n]*\$")
_EXPRESSION = re.compile(r"\w*\d\w*(?:\s*[-+*/^=<>]\s*\(?\w*\d\w*\)?)+")
HAS_OPERATOR = re.compile(r"[-+*/^=<>]\s*\(?\d")  # cheap gate: every expression has an operator then a digit
_TOKEN = re.compile(r"\w+|[.!?](?=\s|$)|[。！？\n]")
_BOUNDARY = frozenset(".!?\n。！？")
_UNSEEN: tuple[int, ...] = (-1,)  # cache-miss sentinel, compared by identity
# Token classes for the hot loop of `evidence` (`Matcher.token_class`): a plain content word, a grammar
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


@dataclass(frozen=True, slots=True)
class Matcher:
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
    def build(cls, keywords: dict[str, list[str]]) -> Matcher:
        words: dict[str, list[int]] = {}
        prefixes: dict[str, list[int]] = {}
        phrases: list[tuple[str, int]] = []
        for i, rule in enumerate(KEYWORD_RULES):
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
        """How `evidence` treats a token, resolved once: the common classes take a short path there, and
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


@dataclass(frozen=True, slots=True)
class _Evidence:
    """What the rules count in one normalised prompt."""

    content: int  # content words (not function, style or greeting words); CJK counts a word per 2 characters
    distinct: int  # distinct content words
    function: int  # function words right after a new content word: grammar, which pasted keywords lack
    hits: tuple[int, ...]  # distinct keywords per rule in KEYWORD_RULES
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


def evidence(low: str, m: Matcher, arithmetic: bool) -> _Evidence:
    hits: list[set[str]] = [set() for _ in KEYWORD_RULES]
    numbers: set[str] = set()
    seen: set[str] = set()
    chat, multi = KEYWORD_RULES.index("chitchat"), KEYWORD_RULES.index("multi_intent")
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
            if KEYWORD_RULES[r] == "chitchat":
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

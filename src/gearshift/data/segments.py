"""Prompt segments: the one definition shared by offline evaluation slices (`gearshift.evaluation.slices`), the
gateway's decision records (`gearshift.records.record.Segment`) and the closed loop's SLIs
(`gearshift.closed_loop.segments`), so "length_bucket=long" or "language=fr" names the same prompts offline,
in a decision record, on the dashboard and in an alert.

- ``language``: ISO 639 code from the offline fastText lite model (`gearshift.data.language`, ~27 us a prompt,
  code blocks and markup stripped first), e.g. ``en``, ``fr``, ``zh``; ``und`` without letters or when unsure.
- ``length_bucket``: estimated tokens (one per 4 ASCII characters, one per non-ASCII character: CJK text is
  about a token per character): ``short`` (< 50), ``medium`` (50-199), ``long`` (200-1000), ``very_long``
  (> 1000).
- ``has_code``: a code fence, or at least two code-like lines (``def``/``class``/``import``, ``#include``,
  braces, ``return``, a statement ending in ``;`` after ``=`` or brackets, SQL keywords, HTML tags...), or one
  inline ``code span`` with code punctuation, or a paired HTML element. Prose that merely mentions a
  "function" or a "class", or a math question with ``x = 3``, is not code.
- ``script`` (offline evaluation only): the dominant script of the letters, useful beside the language id:
  ``ascii``, ``latin`` (with diacritics), ``cyrillic``, ``greek``, ``arabic``, ``hebrew``, ``devanagari``,
  ``thai``, ``hangul``, ``kana`` (Japanese), ``han``, ``other``; ``none`` without letters.

As slice labels (evaluation segments, SLIs, the dashboard) booleans are ``yes``/``no``: ``has_code=yes``.
Decision records keep the JSON boolean; segment keys in config (`[router] segment_thresholds`,
`[experiment] segment`) accept ``yes``/``no`` as well as ``true``/``false``.

Everything here but ``language`` is pure Python and cheap enough for the gateway's request path.
"""

from __future__ import annotations

import itertools
import re

from gearshift.data.language import detect_language
from gearshift.data.tokens import text_tokens

LENGTH_BUCKETS = ("short", "medium", "long", "very_long")

#: (first code point, last code point, script) for the non-ASCII scripts we name.
_SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x00C0, 0x024F, "latin"), (0x1E00, 0x1EFF, "latin"),
    (0x0370, 0x03FF, "greek"), (0x0400, 0x052F, "cyrillic"), (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"), (0x0900, 0x097F, "devanagari"),
    (0x0E00, 0x0E7F, "thai"), (0x1100, 0x11FF, "hangul"), (0xAC00, 0xD7AF, "hangul"),
    (0x3040, 0x30FF, "kana"), (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"),
)
_LATIN_ASCII = re.compile(r"[A-Za-z]")

#: HTML element names: the tag tests stay off the <context>/<question> tags of structured LLM prompts.
_HTML = (r"(?:html|head|body|div|span|p|a|ul|ol|li|table|thead|tbody|tr|td|th|form|input|button|select|option|"
         r"label|textarea|img|h[1-6]|script|style|link|meta|section|nav|header|footer|main|svg|canvas|iframe)")
_CODE_LINE = re.compile(
    r"^[ \t]*(?:def \w+\s*\(|class \w+(?:\s*[:({]| extends )|import \w|from \S+ import |#include|#define |"
    r"public |private |function\b|const \w|let \w|var \w|return\b|if\s*\(|for\s*\(|while\s*\(|"
    r"(?:SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE TABLE|FROM|WHERE|GROUP BY|ORDER BY|JOIN)\b|"
    r"\}|\{$|(?=[^\n]*;[ \t]*$)[^\n]*[=()\[\]{}]|[^\n]*\)[ \t]*\{[ \t]*$|</?" + _HTML + r"\b[^>\n]*>|print\()",
    re.MULTILINE,
)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_CODE_PUNCT = frozenset("(){}[]=;<>")
_HTML_PAIR = re.compile(r"<(" + _HTML + r")\b[^>\n]*>[^\n]{0,2000}?</\1>")  # bounded: linear on minified pages


def language_of(text: str) -> str:
    """ISO 639 code of the prompt's prose; ``und`` when unsure (the fastText model loads on first use)."""
    return detect_language(text).language


def script_of(text: str) -> str:
    """The dominant script of the prompt's letters (see the module docstring)."""
    ascii_letters = len(_LATIN_ASCII.findall(text))
    if text.isascii():
        return "ascii" if ascii_letters else "none"
    counts: dict[str, int] = {}
    for ch in text:
        if ord(ch) < 0x80 or not ch.isalpha():
            continue
        cp = ord(ch)
        name = next((s for lo, hi, s in _SCRIPT_RANGES if lo <= cp <= hi), "other")
        counts[name] = counts.get(name, 0) + 1
    if counts.get("kana"):  # Japanese mixes kana with han; any kana means Japanese
        counts["kana"] += counts.pop("han", 0)
    if "latin" in counts:  # diacritics come with ASCII letters
        counts["latin"] += ascii_letters
    elif ascii_letters:
        counts["ascii"] = ascii_letters
    if not counts:
        return "none"
    return max(sorted(counts), key=lambda k: counts[k])


def length_bucket(text: str) -> str:
    """``short`` (< 50 estimated tokens), ``medium`` (50-199), ``long`` (200-1000), ``very_long`` (> 1000)."""
    t = text_tokens(text)
    if t < 50:
        return "short"
    if t < 200:
        return "medium"
    if t <= 1000:
        return "long"
    return "very_long"


def has_code(text: str) -> bool:
    """A fence, two code-like lines, an inline code span with code punctuation, or a paired HTML element."""
    if "```" in text:
        return True
    if next(itertools.islice(_CODE_LINE.finditer(text), 1, None), None) is not None:  # a second code-like line
        return True
    if "`" in text and any(not _CODE_PUNCT.isdisjoint(m.group(1)) for m in _INLINE_CODE.finditer(text)):
        return True
    return "</" in text and _HTML_PAIR.search(text) is not None


def yes_no(flag: bool) -> str:
    """A boolean segment as a slice label."""
    return "yes" if flag else "no"

"""The text a trained router reads, and the key that says two prompts are the same prompt.

A live prompt reaches the router in whatever form a client produced: upper-cased, pasted from a web page
with tags and entities, padded with blank lines, wrapped in a greeting and a thank-you. None of that
changes the task, so `canonical` removes it before any feature is computed: the same question then gets
the same features, and a trained router cannot learn (or be gamed by) the formatting of its training set.
`dedupe_key` is coarser still: evaluation protocols use it to keep copies of one prompt on one side of a
split.

The politeness rules are patterns over sentence *kinds* (an opening salutation, a request for help with
nothing in it, a closing thanks or sign-off), not a list of phrases: a sentence is only dropped when the
whole sentence is of that kind, so "Hello world in C" keeps its words.
"""

from __future__ import annotations

import html
import re
import unicodedata

_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
                         "\u00ab": '"', "\u00bb": '"', "\u2013": "-", "\u2014": "-", "\u2212": "-"})
_QUOTE_MARK = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.MULTILINE)
_MD_WRAP = re.compile(r"(?<![\w*])(\*\*|__)(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+", re.MULTILINE)
_BLANKS = re.compile(r"[ \t\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]+")

# Whole sentences that carry no task: opening salutations and pleasantries, a bare plea for help, closing thanks
# and sign-offs. Each is matched against one sentence (up to . ! ? or a line break), never a part of one.
_SALUTATION = (r"(?:(?:hi|hello|hey|hiya|howdy|greetings|yo|good (?:morning|afternoon|evening|day))"
               r"(?: there| all| everyone| folks| team| guys| friend)?|dear [\w.'-]+(?: [\w.'-]+){0,2}"
               r"|(?:i )?hope (?:you|your|this|all|everything)\b[^.!?\n]*)")
_PLEA = (r"(?:(?:can|could|would|will) you (?:please |kindly )?(?:help|assist)(?: me)?(?: out)?"
         r"(?: with (?:this|that|something|the following|a question|a problem|my question|this one))?"
         r"|(?:please |kindly )?(?:help|assist) me(?: out)?(?: with (?:this|that|the following))?"
         r"|(?:i have|i've got|got|here is|here's) (?:a |one )?(?:quick |small |short )?(?:question|problem|task)"
         r"(?: for you)?|quick question)")
_THANKS = (r"(?:(?:many |a lot of |big )?thanks?(?: you)?\b[^.!?\n]*|thx\b[^.!?\n]*|ty\b[^.!?\n]*"
           r"|(?:i )?(?:really |truly |greatly )?appreciate (?:it|this|that|your help|any help)[^.!?\n]*"
           r"|(?:much|greatly) appreciated[^.!?\n]*|cheers[^.!?\n]*|(?:best|kind|warm) (?:regards|wishes)[^.!?\n]*"
           r"|regards[^.!?\n]*|(?:all the )?best(?=[ ,!]*(?:\n|$))|sincerely[^.!?\n]*"
           r"|have a (?:nice|great|good) (?:day|one|evening)[^.!?\n]*)")
_LEAD = re.compile(rf"^(?:{_SALUTATION}|{_PLEA}) *(?:[.!?:;,\n]+\s*|$)")
_TAIL = re.compile(rf"(?:^|(?<=[.!?\n]))\s*(?:{_THANKS})[ ,]*[.!?]*(?:\n[\w .'-]{{1,30}})?\s*$")
_WORDS_ONLY = re.compile(r"[^\w]+")


def _strip_politeness(text: str) -> str:
    for _ in range(4):
        m = _LEAD.match(text)
        if m is None or m.end() == 0 or m.end() >= len(text):
            break
        text = text[m.end():].lstrip()
    for _ in range(4):
        cut = max(len(text) - 240, 0)  # closing sentences are short: never scan a long prompt from every offset
        m = _TAIL.search(text, cut)
        if m is None or m.start() == 0:
            break
        text = text[:m.start()].rstrip()
    return text


def canonical(text: str) -> str:
    """Case-folded text without markup, invisible characters or politeness sentences, all blank runs (line
    breaks too) made one space: a prompt pasted on one line and the same prompt on ten mean the same."""
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text.translate(_INVISIBLE)).translate(_QUOTES)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if ">" in text:
        text = _QUOTE_MARK.sub("", text)
    if "#" in text:
        text = _HEADING.sub("", text)
    if "**" in text or "__" in text:
        text = _MD_WRAP.sub(r"\2", text)
    text = "\n".join(_BLANKS.sub(" ", line).strip() for line in text.casefold().split("\n")).strip()
    stripped = _strip_politeness(text) or text
    return " ".join(stripped.split())


def dedupe_key(text: str) -> str:
    """Two prompts with the same key ask the same thing: canonical text, words only."""
    return " ".join(_WORDS_ONLY.sub(" ", canonical(text)).split())

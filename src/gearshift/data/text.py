"""The text a trained router reads, and the key that says two prompts are the same prompt.

A live prompt reaches the router in whatever form a client produced: upper-cased, pasted from a web page
with tags and entities, padded with blank lines, wrapped in a greeting and a thank-you. None of that
changes the task, so `canonical` removes it before any feature is computed: the same question then gets
the same features, and a trained router cannot learn (or be gamed by) the formatting of its training set.
`dedupe_key` is coarser still: evaluation protocols use it to keep copies of one prompt on one side of a
split.

The politeness rules are patterns over sentence *kinds* (an opening salutation, a request for help with
nothing in it, a closing thanks or sign-off), not a list of phrases: a sentence is only dropped when the
whole sentence is of that kind, so "Hello world in C" keeps its words. The same holds for task-free
instructions ("be thorough", "you are an expert", "reason it out"): an opening or closing sentence made only of
instruction words (`_GENERIC`, by kind of request) goes; one that names anything of the task stays.
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

# Words of task-free instructions, by what they ask for: how to work (reasoning, care, depth), who to be (expertise,
# role-play), how hard it is, plus the function words that glue such sentences together. An opening or closing
# sentence made of these words only asks for effort, a voice or a persona: it says nothing about the task, and a
# client or a prompt template adds it to easy and hard questions alike. Digits, code and quotes are never generic.
_GENERIC_WORDS = """
a an the and or but nor of to in on at for with by from into about as than then so if also too just very really
quite this that these those it its it's i i'm me my we us our you you're your yours yourself be is are am was were
been being do does did have has had will would should could can may might must shall need needs let let's lets
please kindly make sure give get go keep use try take put tell say write provide respond reply answer answers
answering response question questions problem problems task one each every all any some more most much many
before after first then finally while when now here there what how why whatever however
think thinking thought thoughts step steps stepwise reason reasons reasoning logic logical logically explain
explains explained explaining explanation explanations justify justified justification show showing shown work
walk through break down approach method process rationale argue argument arguments evidence support claim claims
point points way ways carefully careful care precise precisely precision accurate accurately accuracy correct
correctly exact exactly double check checking verify verified mistake mistakes error errors rigor rigour rigorous
rigorously meticulous meticulously attention detail details detailed thorough thoroughly comprehensive
comprehensively complete completely full fully deep deeply depth in-depth elaborate elaborately extensive
extensively exhaustive exhaustively nuanced nuance insightful insight insights analysis analyses analyze analyse
analyzing analysing analytical analytically examine consider considering evaluate evaluating evaluation assess
assessing weigh weighing compare comparing comparison contrast pros cons trade off offs trade-off trade-offs
tradeoff tradeoffs implication implications aspect aspects angle angles perspective perspectives factor factors
everything anything something nothing everyone critically critical crucial important importantly matters matter
concise concisely brief briefly short succinct
succinctly clear clearly plain simple simply words sentences paragraph paragraphs format formatted
expert experts expertise expert-level professional professionals specialist specialists senior world-class
world class leading authority phd professor genius seasoned experienced experience decades years knowledgeable
master guru hard harder hardest difficult difficulty challenging tricky complex complicated advanced level
high-level sophisticated serious seriously
act acting pretend imagine roleplay role play playing assistant ai model language large chatbot bot helpful
harmless honest system persona behave behaving character like
"""
_GENERIC = frozenset(_GENERIC_WORDS.split())
_SENTENCE = re.compile(r"[^.!?;:\n]+[.!?;:\n]*")
_CONTENT_MARK = re.compile(r"[0-9`\"'=+*/\\<>{}()\[\]$%]")
_WORD = re.compile(r"[\w']+")


def ascii_word_table(keep: str) -> bytes:
    """A `bytes.translate` table keeping ASCII letters, digits and `keep` and making every other byte a space: the
    words of ASCII text so translated are a `[\\w<keep>]+` regex's matches, at a fraction of its cost."""
    return bytes(b if chr(b).isascii() and (chr(b).isalnum() or chr(b) in keep) else 32 for b in range(256))


def ascii_words(text: str, table: bytes) -> list[str]:
    """The words of ASCII `text` under `table` (`ascii_word_table`)."""
    return text.encode("ascii").translate(table).decode("ascii").split()


_ASCII_WORDS = ascii_word_table("_'")
# every `_THANKS` alternative holds one of these: a tail without any cannot match `_TAIL` (the search scans
# every offset of the last 240 characters, ~5 us on a 120-character prompt; these `in` tests ~0.5 us)
_TAIL_WORDS = ("thank", "thx", "ty", "appreciate", "cheers", "regards", "wishes", "best", "sincerely", "have a ")


def _generic(sentence: str) -> bool:
    """A sentence of three or more task-free instruction words (at most one other word when it has six or more)."""
    if _CONTENT_MARK.search(sentence.replace("'s ", " ").replace("'m ", " ").replace("'re ", " ")
                            if "'" in sentence else sentence):
        return False
    # hyphenated words count by their parts: double-check, in-depth; on ASCII, `_WORD`'s matches are the words
    # left when every other byte is a space (~1 us where the regex took ~2 on an 80-character sentence)
    words = ascii_words(sentence, _ASCII_WORDS) if sentence.isascii() else _WORD.findall(sentence)
    if len(words) < 3:  # "write it.", "be brief.": too short to tell an instruction from the task's own verb
        return False
    if _GENERIC.issuperset(words):
        return True
    # one other word at most; a task sentence usually shows two within a few words (this loop stops there)
    other = 0
    for w in words:
        if w not in _GENERIC:
            other += 1
            if other > 1:
                return False
    return len(words) >= 6


def _strip_boilerplate(text: str) -> str:
    """Drop generic opening and closing sentences (`_generic`); never the last sentence standing."""
    parts = _SENTENCE.findall(text)
    lo, hi = 0, len(parts)
    while hi - lo > 1 and _generic(parts[lo]):
        lo += 1
    while hi - lo > 1 and _generic(parts[hi - 1]):
        hi -= 1
    return text if (lo, hi) == (0, len(parts)) else "".join(parts[lo:hi]).strip()


def _strip_politeness(text: str) -> str:
    for _ in range(4):
        m = _LEAD.match(text)
        if m is None or m.end() == 0 or m.end() >= len(text):
            break
        text = text[m.end():].lstrip()
    for _ in range(4):
        cut = max(len(text) - 240, 0)  # closing sentences are short: never scan a long prompt from every offset
        tail = text[cut:]
        if not any(map(tail.__contains__, _TAIL_WORDS)):
            break
        m = _TAIL.search(text, cut)
        if m is None or m.start() == 0:
            break
        text = text[:m.start()].rstrip()
    return text


def _one_blank(text: str) -> str:
    """Each line stripped, its blank runs made one space: `_BLANKS.sub` per line, skipped when there is no run
    to collapse (ASCII without tabs or double spaces, the common case), where it rewrote every space as itself."""
    if text.isascii() and "  " not in text and "\t" not in text and "\f" not in text and "\v" not in text:
        return "\n".join(line.strip() for line in text.split("\n")).strip() if "\n" in text else text.strip()
    return "\n".join(_BLANKS.sub(" ", line).strip() for line in text.split("\n")).strip()


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
    text = _one_blank(text.casefold())
    stripped = _strip_politeness(text) or text
    stripped = _strip_boilerplate(stripped) or stripped
    return " ".join(stripped.split())


def dedupe_key(text: str) -> str:
    """Two prompts with the same key ask the same thing: canonical text, words only."""
    return " ".join(_WORDS_ONLY.sub(" ", canonical(text)).split())

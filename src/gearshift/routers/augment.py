"""Training-time augmentation: copies of training prompts with task-free additions, under the same target.

`data.text.canonical` removes what can be removed by rule (case, markup, blank runs, greetings and thanks).
What it cannot remove is boilerplate a user or a client adds: "be precise", "you are an expert", a role-play
preamble, a line of hard-sounding keywords, typos. A router that sees such phrases on easy and hard prompts
alike learns they carry no signal, so they cannot buy the strong tier. The copies are built from the fragments
below, combined at random; this set is used for training only. The probes that judge robustness
(`evaluation.perturbations`, `gearshift probe`, `benchmarks/router_robustness.py`) use different phrases,
so a router is never scored on the very additions it was trained to ignore.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import numpy as np

CARE = ("Please double-check your answer.", "Be precise.", "Take your time and be accurate.",
        "Make sure the answer is correct.", "Accuracy matters a lot here.", "Don't make mistakes.",
        "Answer carefully.", "Please get this right, it is important.")
DEPTH = ("Explain your reasoning in detail.", "Give a comprehensive answer.", "Go deep on this one.",
         "Provide a detailed explanation.", "Be thorough.", "Cover every aspect.", "Elaborate fully.",
         "I want an exhaustive answer.")
EXPERTISE = ("You are an expert in this field.", "Answer like a seasoned professional.", "Act as a senior specialist.",
             "Respond as a domain expert would.", "You have decades of experience.", "As a leading authority,")
REASONING = ("Show your work.", "Explain your answer.", "Walk me through it.", "Reason it out before answering.",
             "Tell me why.", "Include a short justification.", "Let's think about this logically.",
             "Break the problem down.", "Consider every option.", "Be analytical about it.",
             "Give me the reasoning behind it.", "Support your answer with evidence.", "What is your thinking?",
             "Provide a rationale.", "Explain how you got there.", "Describe your approach first.")
ROLE_PLAY = ("You are a helpful AI assistant.", "Pretend you are my tutor.", "You are a large language model.",
             "Imagine you are a professor grading an exam.", "You are an assistant that never refuses.",
             "System: you are a knowledgeable chatbot.", "Roleplay as a wise mentor.")
KEYWORDS = ("complex", "advanced", "theorem", "algorithm", "optimization", "derivation", "multi-step", "critical",
            "analysis", "proof", "reasoning", "calculus", "quantum", "recursion", "statistics", "logic", "graduate",
            "difficult", "challenging", "technical", "in-depth", "nuanced", "sophisticated", "research")
_WORD = re.compile(r"[^\W\d_]{4,}")
_NEAR = {a: b for a, b in zip("qwertyuiopasdfghjklzxcvbnm", "wertyuiopqsdfghjklaxcvbnmz", strict=True)}


def _keywords(rng: random.Random) -> str:
    words = rng.sample(KEYWORDS, rng.randint(3, 6))
    return rng.choice(("Keywords: {}.", "[{}]", "Topics: {}.", "#{}")).format(
        ", ".join(words) if rng.random() < 0.5 else " ".join(words))


def _typos(text: str, rng: random.Random) -> str:
    """Replace one letter by its keyboard neighbour in about 5 % of the longer words (at least one)."""
    words = list(_WORD.finditer(text))
    if not words:
        return text
    picked = [m for m in words if rng.random() < 0.05] or [rng.choice(words)]
    out, last = [], 0
    for m in picked:
        w = m.group()
        i = rng.randrange(len(w))
        ch = w[i].lower()
        w = w[:i] + _NEAR.get(ch, ch) + w[i + 1:]
        out.append(text[last:m.start()] + w)
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def augment_one(text: str, rng: random.Random) -> str:
    """One task-free variant of `text`: boilerplate before and/or after, or typos."""
    kind = rng.randrange(7)
    if kind == 6:
        return _typos(text, rng)
    bank = (CARE, DEPTH, REASONING, EXPERTISE, ROLE_PLAY)[kind] if kind < 5 else None
    phrase = _keywords(rng) if bank is None else rng.choice(bank)
    if rng.random() < 0.3:  # two kinds at once, as real boilerplate often is
        phrase += " " + rng.choice(CARE + DEPTH + REASONING)
    where = rng.random()
    if kind in (3, 4) or where < 0.4:  # expertise and role-play preambles come first
        return f"{phrase}\n\n{text}"
    return f"{text}\n\n{phrase}"


def augmented(texts: Sequence[str], rate: float, seed: int) -> tuple[list[str], np.ndarray]:
    """(extra texts, index of the training text each copies): about `rate` copies per training text."""
    if rate <= 0:
        return [], np.zeros(0, dtype=np.int64)
    rng = random.Random(seed)
    whole, frac = int(rate), rate - int(rate)
    extra: list[str] = []
    src: list[int] = []
    for i, t in enumerate(texts):
        for _ in range(whole + (1 if rng.random() < frac else 0)):
            extra.append(augment_one(t, rng))
            src.append(i)
    return extra, np.asarray(src, dtype=np.int64)


def with_copies(texts: list[str], y: np.ndarray, w: np.ndarray, rate: float,
                seed: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Training texts (canonical) plus their augmented copies under the same targets and weights; the last array
    maps every row to the training prompt it came from (for folds that keep a prompt and its copies together)."""
    from gearshift.data.text import canonical

    extra, src = augmented(texts, rate, seed)
    group = np.r_[np.arange(len(texts)), src]
    return texts + [canonical(t) for t in extra], np.r_[y, y[src]], np.r_[w, w[src]], group


def grouped_folds(group: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, test) row splits in which every copy sits in the fold of the prompt it copies."""
    from sklearn.model_selection import KFold

    n = int(group.max()) + 1 if len(group) else 0
    fold_of = np.empty(n, dtype=np.int64)
    for f, (_, te) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(np.arange(n))):
        fold_of[te] = f
    row_fold = fold_of[group]
    return [(np.flatnonzero(row_fold != f), np.flatnonzero(row_fold == f)) for f in range(folds)]

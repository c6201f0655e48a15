"""The random baseline: any router worth deploying must beat it at every strong-call share.

Scores are a hash of the seed and the prompt text rather than a random stream, so a prompt always gets
the same score (retries and replays route identically) and batch order never matters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from gearshift.routers.base import INLINE_ALWAYS, PromptLike, Router, RoutingScore, router_text

_SCALE = float(2**64)


class RandomRouter(Router):
    """p_strong uniform on [0, 1), fixed per (seed, prompt text). Confidence is 0: it knows nothing."""

    name = "random"
    inline_max_chars = INLINE_ALWAYS  # microseconds: never worth a thread
    version = "2"  # reads canonical text (data.text.canonical)

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _uniform(self, text: str) -> float:
        digest = hashlib.blake2b(f"{int(self.seed)}\x00{text}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") / _SCALE

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        return [
            RoutingScore(p_strong=self._uniform(router_text(p)), confidence=0.0, reason=f"random (seed {self.seed})")
            for p in prompts
        ]

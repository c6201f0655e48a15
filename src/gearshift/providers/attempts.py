"""The typed record of each upstream try, and the retry timing policy, shared by the executors."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, fields
from typing import Any, Literal

from gearshift.errors import ProviderError, ProviderResponseTooLargeError, ProviderTimeoutError
from gearshift.providers.base import Deployment

Outcome = Literal["ok", "error", "skipped_open_circuit", "cancelled"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at one deployment. Messages never contain API keys (providers redact them)."""

    deployment: str
    model: str
    provider: str
    outcome: Outcome
    retry: int = 0
    latency_ms: float = 0.0
    error_type: str | None = None
    error_message: str | None = None
    upstream_status: int | None = None
    after_first_token: bool = False
    retry_after_s: float | None = None  # the upstream's Retry-After, when it sent one

    def to_dict(self) -> dict[str, Any]:
        # what `dataclasses.asdict` gives (every field is a scalar), without its deepcopy walk: ~10x cheaper,
        # and it runs for every attempt of every request
        return {f: getattr(self, f) for f in _FIELDS}


_FIELDS = tuple(f.name for f in fields(Attempt))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter; `Retry-After` is honoured up to `max_retry_after_s`."""

    max_retries: int = 2
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    max_retry_after_s: float = 10.0

    def delay(self, retry: int, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry + 1` (retry counts from 0)."""
        cap = min(self.max_delay_s, self.base_delay_s * (2 ** retry))
        backoff = (rng or random).uniform(0.0, cap)
        if retry_after_s is not None:
            return max(backoff, min(retry_after_s, self.max_retry_after_s))
        return backoff


def ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def make_attempt(dep: Deployment, outcome: Outcome, retry: int, start: float | None,
             exc: BaseException | None = None) -> Attempt:
    status = exc.upstream_status if isinstance(exc, ProviderError) else None
    after = exc.after_first_token if isinstance(exc, ProviderError) else False
    wait = exc.retry_after_s if isinstance(exc, ProviderError) else None
    return Attempt(deployment=dep.name, model=dep.model, provider=dep.provider, outcome=outcome, retry=retry,
                   latency_ms=ms_since(start) if start is not None else 0.0,
                   error_type=type(exc).__name__ if exc is not None else None,
                   error_message=(getattr(exc, "message", None) or str(exc)) if exc is not None else None,
                   upstream_status=status, after_first_token=after, retry_after_s=wait)


def attempt_timeout_error(dep: Deployment, seconds: float) -> ProviderError:
    """An attempt that ran out of time before its first content chunk (later ones are stream errors)."""
    return ProviderTimeoutError(f"upstream {dep.name!r} did not answer within {seconds:.3g}s", retryable=True)


#: upstream statuses that refuse the request itself (the client's to fix): passed on as a 400
BAD_REQUEST_STATUSES = frozenset({400, 413, 422})


def failure_kind(attempts: list[Attempt], deadline_hit: bool) -> str:
    """Why a request failed on every deployment: a key of `errors.UPSTREAM_FAILURES` (the status table)."""
    tried = [a for a in attempts if a.outcome == "error"]
    if not tried:
        return "timeout" if deadline_hit else "failed"
    if any(a.error_type == ProviderResponseTooLargeError.__name__ for a in tried):
        return "response_too_large"
    if all(a.upstream_status == 429 for a in tried):
        return "rate_limited"
    if deadline_hit or all(a.error_type == ProviderTimeoutError.__name__ for a in tried):
        return "timeout"
    if all(a.upstream_status in BAD_REQUEST_STATUSES for a in tried):
        return "bad_request"
    return "failed"

"""Gateway API keys: SHA-256 digests with scopes, plus the per-key rate, budget and strong-tier caps.

A request's key maps to a key id for the record. `admit` is the one gate a chat request passes:
authenticate, check the scope, take a rate-limit token, check the daily budget; once the policy has chosen
the deployments, `reserve` books the request's worst-case cost and `settle` the difference. Limiter and ledger are
protocols (`ratelimit.RateLimiter`, `budgets.BudgetLedger`, `budgets.ShareWindowStore`) with in-memory
defaults built from the config.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
from collections.abc import Awaitable
from typing import Literal

from gearshift.errors import (
    AuthenticationError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    SharedStateUnavailableError,
    UpstreamRateLimitedError,
)
from gearshift.gateway.budgets import BudgetLedger, InMemoryBudgetLedger
from gearshift.gateway.ratelimit import RateLimiter, TokenBucketLimiter
from gearshift.gateway.settings import ApiKeySettings, AuthSettings
from gearshift.policy.share_cap import ShareWindowStore, StrongShareCap
from gearshift.records.failopen import FailOpenLog, outage_errors

log = logging.getLogger(__name__)

SCOPES = ("inference", "feedback", "admin")


class QuotaExceededError(RateLimitError):
    """429 with a `Retry-After`; `code` says whether the rate or the budget ran out."""

    def __init__(self, message: str, *, retry_after_s: float, code: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.code = code


class KeyChecker:
    """No configured keys means an open gateway (the local demo); otherwise a Bearer key is required."""

    def __init__(self, settings: AuthSettings, *, limiter: RateLimiter | None = None,
                 budgets: BudgetLedger | None = None, share_windows: ShareWindowStore | None = None,
                 errors: FailOpenLog | None = None, quota_on_failure: Literal["open", "closed"] = "open") -> None:
        self._by_digest = {k.sha256: k for k in settings.keys}
        self.limiter = limiter or TokenBucketLimiter({k.id: k.rpm for k in settings.keys if k.rpm is not None})
        self.budgets = budgets or InMemoryBudgetLedger(
            {k.id: k.budget_usd_per_day for k in settings.keys if k.budget_usd_per_day is not None})
        self.errors = errors or FailOpenLog()
        self.quota_on_failure = quota_on_failure
        self._outage = outage_errors()
        self.strong_cap = StrongShareCap({k.id: (k.max_strong_share, k.strong_share_window)
                                          for k in settings.keys if k.max_strong_share is not None},
                                         share_windows, self.errors)
        self._pending: set[asyncio.Task[bool]] = set()
        self._models = {k.id: frozenset(k.models) for k in settings.keys if k.models is not None}

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def identify(self, authorization: str | None) -> ApiKeySettings | None:
        """The configured key for an `Authorization` header (None on an open gateway)."""
        if not self._by_digest:
            return None
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
        digest = hashlib.sha256(authorization[7:].strip().encode("utf-8")).hexdigest()
        found = None
        for known, key in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                found = key
        if found is None:
            raise AuthenticationError("invalid API key")
        return found

    def check(self, authorization: str | None, scope: str | None = None) -> str | None:
        """The key id; raises AuthenticationError (401) or, lacking `scope`, PermissionDeniedError (403)."""
        key = self.identify(authorization)
        if key is None:
            return None
        if scope is not None and scope not in key.scopes:
            raise PermissionDeniedError(f"API key {key.id!r} lacks the {scope!r} scope")
        return key.id

    def check_model(self, key_id: str | None, model: str) -> None:
        """A 403 when the key is limited to some models (`[[auth.keys]] models`) and `model` is not one."""
        allowed = self._models.get(key_id) if key_id is not None else None
        if allowed is not None and model not in allowed:
            err = PermissionDeniedError(f"API key {key_id!r} may not use model {model!r}", param="model")
            err.code = "model_not_allowed"
            raise err

    async def admit(self, authorization: str | None, scope: str = "inference") -> str | None:
        """`check`, then the key's rate limit and daily budget: over either is a 429 with Retry-After."""
        key_id = self.check(authorization, scope)
        if key_id is None:
            return None
        ok, wait = await self._quota_check("rate_limit", self.limiter.allow(key_id))
        if not ok:
            raise QuotaExceededError(f"API key {key_id!r} is over its requests-per-minute limit",
                                     retry_after_s=wait, code="rate_limit_exceeded")
        ok, wait = await self._quota_check("budget_check", self.budgets.allow(key_id))
        if not ok:
            raise QuotaExceededError(f"API key {key_id!r} has spent its daily budget",
                                     retry_after_s=wait, code="budget_exceeded")
        return key_id

    async def _quota_check(self, op: str, check: Awaitable[tuple[bool, float]]) -> tuple[bool, float]:
        """A shared (Redis) check that meets an outage is counted and logged as `op`, then passes
        (`quota_on_failure = "open"`) or refuses the request with a 503 (`"closed"`)."""
        try:
            result = await check
        except self._outage as exc:
            self.errors.failed(op, exc, refused=self.quota_on_failure == "closed")
            if self.quota_on_failure == "closed":
                raise SharedStateUnavailableError(
                    f"shared state (Redis) is unavailable for the {op.replace('_', ' ')}; try again shortly") from exc
            return True, 0.0
        self.errors.recovered(op)
        return result

    async def cap_tier(self, key_id: str | None, tier_index: int, n_tiers: int) -> int:
        """The tier to serve under the key's strong-tier share cap (this request joins the key's window)."""
        return await self.strong_cap.limit(key_id, tier_index, n_tiers)

    async def reserve(self, key_id: str | None, usd: float) -> float:
        """Book a request's worst-case cost against the key's budget before it goes upstream; the amount
        booked (0.0 without a key, or when the shared ledger is down and quotas fail open). Over: a 429."""
        if key_id is None:
            return 0.0
        try:
            ok, wait = await self.budgets.reserve(key_id, usd)
        except self._outage as exc:
            self.errors.failed("budget_check", exc, refused=self.quota_on_failure == "closed")
            if self.quota_on_failure == "closed":
                raise SharedStateUnavailableError(
                    "shared state (Redis) is unavailable for the budget check; try again shortly") from exc
            return 0.0
        self.errors.recovered("budget_check")
        if not ok:
            raise QuotaExceededError(f"API key {key_id!r} has too little of its daily budget left for this request "
                                     f"(worst case ${usd:.6f}; lower max_tokens or n)",
                                     retry_after_s=wait, code="budget_exceeded")
        return usd

    def settle(self, key_id: str | None, usd: float | None, reserved: float = 0.0) -> None:
        """Book a finished request's cost against the key's budget, giving back what its reservation held
        beyond it (async ledger; fire and forget)."""
        delta = (usd or 0.0) - reserved
        if key_id is None or not delta:
            return
        try:
            task = asyncio.get_running_loop().create_task(self.budgets.spend(key_id, delta))
        except RuntimeError:  # no loop (sync tests): nothing to book against
            return
        self._pending.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[bool]) -> None:
        self._pending.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:  # e.g. Redis down: the request is served; its cost is not booked (counted, logged)
            self.errors.failed("budget_spend", exc)
        elif not task.cancelled():
            self.errors.recovered("budget_spend")


def retry_after_header(exc: BaseException) -> str | None:
    """The `Retry-After` value (whole seconds, at least 1) for errors that carry one."""
    wait = getattr(exc, "retry_after_s", None)
    if not isinstance(exc, RateLimitError | OverloadedError | UpstreamRateLimitedError):
        return None
    if not isinstance(wait, int | float):
        return None
    return str(max(1, math.ceil(wait)))

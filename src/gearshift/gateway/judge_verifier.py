"""The cascade's model-backed verifiers (the LLM judge, the consistency check's second answer), reached from a
running gateway: which deployment answers them, with what budget. The consistency verifier takes the same keys
with `consistency_` in place of `judge_`.

`[cascade] verifiers = [..., "judge"]` needs a judge: `judge_deployment = "name"` (any configured deployment,
in a tier or in `extra_deployments`) or `judge_tier = "name"` (that tier's deployments, with failover). Each
call has its own deadline (`judge_timeout_s`, default 10 s) and the judge's spend per process is capped by
`judge_max_usd_per_hour` (unset: no cap). A call over budget, timed out or failed is a failed judgement: the
verifier then gives its `judge_unparseable_passes` verdict (default: escalate) and says why in the record.
Each judgement's cost is put in the reply's `usage.cost` (USD, as OpenRouter reports it), which the verifier
copies into its verdict; the request's record adds it to `cost_usd`.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gearshift.cascade.judge import CompletionFn
from gearshift.errors import ConfigError, ProviderError
from gearshift.providers.base import Deployment
from gearshift.providers.reliability import FailoverExecutor
from gearshift.records.usage import cost_usd

DEFAULT_JUDGE_TIMEOUT_S = 10.0
_HOUR_S = 3600.0


class JudgeBudget:
    """Judge spend over the last hour, in this process."""

    def __init__(self, max_usd_per_hour: float | None) -> None:
        self.max_usd = max_usd_per_hour
        self._spent: collections.deque[tuple[float, float]] = collections.deque()

    def spent(self, now: float) -> float:
        while self._spent and self._spent[0][0] < now - _HOUR_S:
            self._spent.popleft()
        return sum(c for _, c in self._spent)

    def allow(self, now: float) -> bool:
        return self.max_usd is None or self.spent(now) < self.max_usd

    def book(self, now: float, usd: float) -> None:
        self._spent.append((now, usd))


def judge_deployments(options: Mapping[str, Any], tier_names: Sequence[str], tiers: Sequence[Sequence[Deployment]],
                      extra: Sequence[Deployment], prefix: str = "judge") -> list[Deployment]:
    """Who answers for the `prefix` verifier ("judge", or "consistency": the second cheap opinion)."""
    by_tier, dep = options.get(f"{prefix}_tier"), options.get(f"{prefix}_deployment")
    if by_tier is not None and dep is not None:
        raise ConfigError(f"cascade: set {prefix}_tier or {prefix}_deployment, not both")
    if by_tier is not None:
        if by_tier not in tier_names:
            raise ConfigError(f"cascade.{prefix}_tier: {by_tier!r} is not a tier ({', '.join(tier_names)})")
        return list(tiers[list(tier_names).index(by_tier)])
    if dep is not None:
        found = [d for d in [*(d for t in tiers for d in t), *extra] if d.name == dep]
        if not found:
            raise ConfigError(f"cascade.{prefix}_deployment: no deployment named {dep!r}")
        return found[:1]
    raise ConfigError(f"cascade verifier '{prefix}' needs a model to ask: set [cascade] {prefix}_deployment = "
                      f"\"NAME\" (any configured deployment, e.g. in extra_deployments) or {prefix}_tier = \"TIER\"")


def judge_completion(options: Mapping[str, Any], deployments: Sequence[Deployment],
                     executor: FailoverExecutor, budget: JudgeBudget, prefix: str = "judge") -> CompletionFn:
    """The verifier's completion callable: budget check, failover over `deployments`, cost into `usage.cost`."""
    timeout = float(options.get(f"{prefix}_timeout_s", DEFAULT_JUDGE_TIMEOUT_S))
    if timeout <= 0:
        raise ConfigError(f"cascade.{prefix}_timeout_s must be positive")
    prices = {d.name: (d.input_price_per_m, d.output_price_per_m) for d in deployments}

    async def complete(request: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        if not budget.allow(now):
            raise ProviderError(f"{prefix} budget of ${budget.max_usd}/hour spent")
        res = await executor.complete(list(deployments), {**request, "model": deployments[0].model},
                                      deadline_s=timeout)
        body = dict(res.result.body)
        usage = dict(body.get("usage") or {})
        in_p, out_p = prices.get(res.deployment.name, (0.0, 0.0))
        usd = cost_usd(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), in_p, out_p)
        budget.book(now, usd or 0.0)
        body["usage"] = {**usage, "cost": usd or 0.0}
        return body

    return complete

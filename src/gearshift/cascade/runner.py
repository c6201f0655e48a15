"""Run a request through ordered tiers, cheapest first, shipping the first answer every verifier accepts.

Each step calls one tier (the injected `call`, in the gateway the FailoverExecutor, so failover among a
tier's deployments stays where it belongs), runs the enabled verifiers on the answer, and either ships or
escalates. The top tier reached (the last tier, or `start_tier + max_escalations`) always ships, verified
or not: there is nothing stronger to ask, and the outcome says it was unverified.

Streaming (see docs/cascade.md): a streamed request skips the cascade by default (`stream_mode="pass"`, formerly "skip")
and the gateway streams from the router's tier. Verifying needs the whole answer, so cascading a stream
means buffering the cheap answer, which throws away the time-to-first-token that is the reason clients
stream. `stream_mode="buffer"` is the opt-in for clients that want verified answers anyway: the gateway
sends :func:`unstreamed` request, runs the cascade, then replays the shipped answer with
:func:`replay_chunks`.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gearshift.cascade.combine import CombineRule
from gearshift.cascade.verifiers import Verdict, Verifier, run_verifier
from gearshift.errors import ConfigError, GearshiftError
from gearshift.providers.base import Deployment

#: (deployments of one tier, request) -> (response body, deployment that answered, attempts record).
CallFn = Callable[[Sequence[Deployment], dict[str, Any]], Awaitable[tuple[dict[str, Any], Deployment, Any]]]


class _Executed(Protocol):
    @property
    def deployment(self) -> Deployment: ...
    @property
    def attempts(self) -> Any: ...
    @property
    def result(self) -> Any: ...  # a ChatResult: `.body` is the response dict


class _Executor(Protocol):
    async def complete(self, deployments: Sequence[Deployment], request: dict[str, Any], *,
                       deadline_s: float) -> _Executed: ...


def executor_call(executor: _Executor, deadline_s: float) -> CallFn:
    """Adapt `FailoverExecutor.complete` (one request's deadline) to the runner's `call`.

    The deadline covers the whole cascade: each tier gets whatever time is left, so an escalation never
    runs past what the client was promised.
    """
    end = time.monotonic() + deadline_s

    async def call(deployments: Sequence[Deployment], request: dict[str, Any]
                   ) -> tuple[dict[str, Any], Deployment, Any]:
        done = await executor.complete(deployments, request, deadline_s=max(0.0, end - time.monotonic()))
        body: dict[str, Any] = done.result.body
        return body, done.deployment, done.attempts

    return call


@dataclass(frozen=True)
class CascadeConfig:
    """`verifiers`: names to run, in order (None: every verifier given to the runner). `max_escalations`:
    tier jumps allowed after `start_tier` (None: up to the top). `escalate_on_error`: an upstream failure
    of a whole tier escalates instead of failing the request. `skip_costly_after_failure`: async
    verifiers (the judge) are not called once a cheap one has failed."""

    verifiers: tuple[str, ...] | None = None
    max_escalations: int | None = None
    start_tier: int = 0
    escalate_on_error: bool = True
    skip_costly_after_failure: bool = True
    stream_mode: Literal["skip", "pass", "buffer"] = "pass"  # "skip": the older spelling of "pass"
    #: buffer mode: verification may hold the first byte this long; past it the answer streams unverified
    buffer_max_s: float = 10.0
    #: how verdicts combine (cascade/combine.py): "all", "any" or "weighted", per segment
    combine: str = "all"
    combine_weights: Mapping[str, float] = field(default_factory=dict)
    combine_min_score: float = 0.5
    combine_by_segment: Mapping[str, str] = field(default_factory=dict)

    @property
    def rule(self) -> CombineRule:
        return CombineRule(self.combine, self.combine_weights, self.combine_min_score, self.combine_by_segment)
    #: ask the upstream for token logprobs when the logprob verifier runs (False for servers that refuse them);
    #: a client that did not ask for them does not get them back
    request_logprobs: bool = True

    def __post_init__(self) -> None:
        if self.max_escalations is not None and self.max_escalations < 0:
            raise ConfigError("cascade.max_escalations must be >= 0")
        if self.start_tier < 0:
            raise ConfigError("cascade.start_tier must be >= 0")
        if self.stream_mode not in ("skip", "pass", "buffer"):
            raise ConfigError(f"cascade.stream_mode must be 'skip', 'pass' or 'buffer', got {self.stream_mode!r}")
        if self.buffer_max_s <= 0:
            raise ConfigError("cascade.buffer_max_s must be positive")
        _ = self.rule  # validates the combine keys at load


@dataclass(frozen=True, slots=True)
class CascadeStep:
    """One tier tried. `attempts` is what `call` returned with the answer. When the whole tier failed,
    `deployment` and `attempts` are None, `error` says how and `error_attempts` holds the error's
    attempt dicts (`UpstreamError.attempts`)."""

    tier: int
    deployment: Deployment | None
    verdicts: tuple[Verdict, ...]
    latency_ms: float
    escalated_because: str | None = None
    verify_ms: float = 0.0
    attempts: Any = None
    error: str | None = None
    error_attempts: list[dict[str, Any]] | None = None
    response: dict[str, Any] | None = None  # the answer this tier gave: a rejected one was paid for too

    @property
    def passed(self) -> bool:
        return self.error is None and all(v.passed for v in self.verdicts)


@dataclass(frozen=True, slots=True)
class CascadeOutcome:
    """What shipped: the response of tier `tier_index`; `verified` is False when the top tier shipped an
    answer some verifier rejected."""

    response: dict[str, Any]
    tier_index: int
    deployment: Deployment
    verified: bool
    steps: list[CascadeStep] = field(default_factory=list)

    @property
    def escalations(self) -> int:
        return len(self.steps) - 1


def should_cascade(request: Mapping[str, Any], config: CascadeConfig) -> bool:
    """False for streamed requests unless `stream_mode="buffer"` (see the module docstring)."""
    return not request.get("stream") or config.stream_mode == "buffer"


def unstreamed(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request with streaming switched off, for `stream_mode="buffer"`."""
    return {k: v for k, v in request.items() if k not in ("stream", "stream_options")}


def replay_chunks(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A complete chat completion as `chat.completion.chunk` payloads (role+content, finish, usage)."""
    base = {"id": response.get("id", "chatcmpl-cascade"), "object": "chat.completion.chunk",
            "created": response.get("created", int(time.time())), "model": response.get("model", "")}
    chunks: list[dict[str, Any]] = []
    for choice in response.get("choices") or []:
        msg = dict(choice.get("message") or {})
        delta = {k: v for k, v in msg.items() if v is not None}
        if "tool_calls" in delta:
            delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(delta["tool_calls"])]
        idx = choice.get("index", 0)
        chunks.append({**base, "choices": [{"index": idx, "delta": delta, "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": idx, "delta": {}, "finish_reason": choice.get("finish_reason")}]})
    if response.get("usage") is not None:
        chunks.append({**base, "choices": [], "usage": response["usage"]})
    return chunks


class CascadeRunner:
    """Holds the tiers, the call and the verifiers; `run` is safe to call concurrently."""

    def __init__(self, tiers: Sequence[Sequence[Deployment]], call: CallFn, verifiers: Sequence[Verifier],
                 config: CascadeConfig | None = None) -> None:
        self.config = config or CascadeConfig()
        if not tiers or any(not t for t in tiers):
            raise ConfigError("a cascade needs at least one tier, each with at least one deployment")
        if self.config.start_tier >= len(tiers):
            raise ConfigError(f"cascade.start_tier {self.config.start_tier} but only {len(tiers)} tiers")
        by_name = {v.name: v for v in verifiers}
        if self.config.verifiers is None:
            self.verifiers: list[Verifier] = list(verifiers)
        else:
            missing = [n for n in self.config.verifiers if n not in by_name]
            if missing:
                raise ConfigError(f"cascade.verifiers names unknown verifiers {missing}; known: {sorted(by_name)}")
            self.verifiers = [by_name[n] for n in self.config.verifiers]
        self.tiers = [list(t) for t in tiers]
        self.call = call

    def last_tier(self, start: int) -> int:
        top = len(self.tiers) - 1
        if self.config.max_escalations is None:
            return top
        return min(top, start + self.config.max_escalations)

    async def verify(self, request: Mapping[str, Any], response: Mapping[str, Any],
                     segment: Mapping[str, Any] | None = None) -> list[Verdict]:
        verdicts: list[Verdict] = []
        rule = self.config.rule
        for v in self.verifiers:
            costly = inspect.iscoroutinefunction(v.verify)
            # a costly check is skipped once the answer is already rejected (only "all" can decide that early)
            settled = rule.mode_for(segment) == "all" and any(not d.passed for d in verdicts)
            if costly and self.config.skip_costly_after_failure and settled:
                continue
            verdict = await run_verifier(v, request, response)
            if verdict is not None:
                verdicts.append(verdict)
        return verdicts

    async def run(self, request: dict[str, Any], *, start_tier: int | None = None,
                  segment: Mapping[str, Any] | None = None) -> CascadeOutcome:
        """Cheapest allowed tier first; `start_tier` overrides the config (e.g. the router's choice); `segment`
        (the request's segment row) picks the verdict combination (`combine_by_segment`)."""
        asked = "logprobs" in request
        if not asked and self.config.request_logprobs and any(v.name == "logprob" for v in self.verifiers):
            outcome = await self._run({**request, "logprobs": True}, start_tier, segment)
            for choice in outcome.response.get("choices") or []:
                if isinstance(choice, dict):
                    choice.pop("logprobs", None)  # asked for the verifier, not by the client
            return outcome
        return await self._run(request, start_tier, segment)

    async def _run(self, request: dict[str, Any], start_tier: int | None,
                   segment: Mapping[str, Any] | None) -> CascadeOutcome:
        start = self.config.start_tier if start_tier is None else start_tier
        if not 0 <= start < len(self.tiers):
            raise ConfigError(f"start tier {start} out of range for {len(self.tiers)} tiers")
        last = self.last_tier(start)
        rule = self.config.rule
        steps: list[CascadeStep] = []
        for tier in range(start, last + 1):
            t0 = time.perf_counter()
            try:
                response, deployment, attempts = await self.call(self.tiers[tier], request)
            except GearshiftError as exc:
                if tier == last or not self.config.escalate_on_error:
                    raise
                steps.append(CascadeStep(tier, None, (), (time.perf_counter() - t0) * 1000,
                                         escalated_because=f"upstream failed: {exc.message}",
                                         error=exc.message, error_attempts=getattr(exc, "attempts", None)))
                continue
            t1 = time.perf_counter()
            verdicts = await self.verify(request, response, segment)
            verify_ms = (time.perf_counter() - t1) * 1000
            failed = [v for v in verdicts if not v.passed]
            rejected = rule.rejects(verdicts, segment)
            because = "; ".join(f"{v.name}: {v.reason}" for v in failed) or None
            escalate = rejected and tier < last
            steps.append(CascadeStep(tier, deployment, tuple(verdicts), (t1 - t0) * 1000,
                                     escalated_because=because if escalate else None,
                                     verify_ms=verify_ms, attempts=attempts, response=response))
            if not escalate:
                return CascadeOutcome(response, tier, deployment, verified=not rejected, steps=steps)
        raise AssertionError("unreachable: the last tier always ships or raises")  # pragma: no cover

"""Shadow routing: a sample of requests is also answered by the tiers the router did not choose.

The production answer has already gone to the client when a shadow job is queued: `submit` is a
`put_nowait` on a bounded asyncio queue (a full queue drops and counts), worker tasks do the upstream
calls through their own failover executor (own circuit breakers, no retries: shadow failures must
never open a production circuit), judge the answers and store the label, adding a triage item when
the tiers disagree. Shadow work has its own hourly budget of upstream calls and dollars.

The label keeps the cheapest tier's answer (`cheap_answer`: text as `[store] text` allows, finish reason,
the request's `response_format`) so cascade verifiers can be scored against the judge's label later
(`cascade/verifier_quality.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gearshift.cascade.verifiers import answer_text
from gearshift.closed_loop.judge_pairwise import Judgement, PairwiseJudge
from gearshift.closed_loop.loop_settings import ShadowSettings
from gearshift.closed_loop.signals import segment_labels
from gearshift.errors import GearshiftError
from gearshift.providers.base import Deployment
from gearshift.providers.reliability import FailoverExecutor
from gearshift.records.failopen import FailOpenLog, outage_errors
from gearshift.records.redaction import FULL, Concealment
from gearshift.records.usage import cost_usd
from gearshift.store.labels import LabelStore
from gearshift.tracing.metrics import ShadowMetrics

log = logging.getLogger(__name__)


class ShadowSampler:
    """Every `every_n`-th eligible decision, else a per-segment probability."""

    def __init__(self, settings: ShadowSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng or random.Random(settings.seed)
        self.seen = 0

    def rate_for(self, segments: Mapping[str, str]) -> float:
        rates = [r for k, r in self.settings.segment_rates.items()
                 if segments.get(k.partition("=")[0]) == k.partition("=")[2]]
        return max(rates) if rates else self.settings.rate

    def sample(self, segments: Mapping[str, str]) -> bool:
        self.seen += 1
        if self.settings.every_n is not None:
            return self.seen % self.settings.every_n == 0
        rate = self.rate_for(segments)
        return rate > 0.0 and self.rng.random() < rate


class FleetCounter(Protocol):
    """A counter every gateway of a fleet shares (`store.redis_state.RedisCounters`)."""

    async def incr(self, name: str, by: int = 1) -> int: ...


class FleetSampler:
    """`every_n` across every gateway sharing the counter: the fleet's n-th, 2n-th... decisions are shadowed.

    The count is a Redis INCR, so the decision is async; `ShadowRunner.submit` takes it in a background
    task after the answer has gone out.
    """

    COUNTER = "shadow_every_n"

    def __init__(self, counter: FleetCounter, every_n: int) -> None:
        self.counter = counter
        self.every_n = every_n

    async def sample(self) -> bool:
        return await self.counter.incr(self.COUNTER) % self.every_n == 0


class HourlyBudget:
    """Upstream calls and dollars spent over the trailing hour; `clock` is injectable for tests."""

    def __init__(self, max_requests: int | None, max_usd: float | None,
                 clock: Callable[[], float] = time.monotonic, window_s: float = 3600.0) -> None:
        self.max_requests = max_requests
        self.max_usd = max_usd
        self.clock = clock
        self.window_s = window_s
        self._calls: deque[float] = deque()
        self._spend: deque[tuple[float, float]] = deque()

    def _trim(self) -> float:
        now = self.clock()
        while self._calls and self._calls[0] <= now - self.window_s:
            self._calls.popleft()
        while self._spend and self._spend[0][0] <= now - self.window_s:
            self._spend.popleft()
        return now

    @property
    def spent_usd(self) -> float:
        self._trim()
        return sum(c for _, c in self._spend)

    def try_reserve(self, calls: int) -> bool:
        """Reserve `calls` upstream calls unless that, or the dollars already spent, would break the budget."""
        now = self._trim()
        if self.max_requests is not None and len(self._calls) + calls > self.max_requests:
            return False
        if self.max_usd is not None and self.spent_usd >= self.max_usd:
            return False
        self._calls.extend([now] * calls)
        return True

    def spend(self, usd: float) -> None:
        if usd > 0:
            self._spend.append((self.clock(), usd))


@dataclass
class ShadowJob:
    """What a worker needs: the finished production record, the client's request and its answer."""

    record: dict[str, Any]
    payload: dict[str, Any]
    prompt: str
    answer: str
    tier_index: int
    shadow_tiers: list[int] = field(default_factory=list)


class ShadowRunner:
    """Owns the queue and workers. `submit` is the only call made on the request path."""

    def __init__(self, settings: ShadowSettings, *, tier_names: Sequence[str], tiers: Sequence[Sequence[Deployment]],
                 executor: FailoverExecutor, judge: PairwiseJudge, store: LabelStore,
                 metrics: ShadowMetrics, prices: Mapping[str, tuple[float, float]],
                 request_for_tier: Callable[[dict[str, Any], int], dict[str, Any]],
                 budget: HourlyBudget | None = None, sampler: ShadowSampler | None = None,
                 fleet: FleetSampler | None = None, concealment: Concealment = FULL) -> None:
        self.settings = settings
        self.tier_names = list(tier_names)
        self.tiers = [list(t) for t in tiers]
        self.executor = executor
        self.judge = judge
        self.store = store
        self.metrics = metrics
        self.prices = dict(prices)
        self.request_for_tier = request_for_tier
        self.budget = budget or HourlyBudget(settings.max_requests_per_hour, settings.max_usd_per_hour)
        self.sampler = sampler or ShadowSampler(settings)
        self.fleet = fleet
        self.concealment = concealment  # `[store] text`: how the cheap answer is kept in the label
        self._sampling: set[asyncio.Task[None]] = set()
        self._fleet_errors = FailOpenLog()  # one warning a minute while the fleet counter is out
        # each judgement's (production record, cheapest good-enough tier): the SLO monitor's quality-loss SLI
        self.on_judged: Callable[[Mapping[str, Any], str | None], None] | None = None
        self.queue: asyncio.Queue[ShadowJob] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self.counts: dict[str, int] = {}

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.metrics.samples.labels(outcome=outcome).inc()

    def start(self) -> None:
        if self.queue is None:
            self.queue = asyncio.Queue(maxsize=self.settings.queue_size)
            self._workers = [asyncio.create_task(self._work(self.queue), name=f"gearshift-shadow-{i}")
                             for i in range(self.settings.workers)]

    def shadow_tiers(self, tier_index: int) -> list[int]:
        wanted = self.settings.tiers
        return [i for i, name in enumerate(self.tier_names)
                if i != tier_index and (wanted is None or name in wanted)]

    def submit(self, record: Mapping[str, Any], payload: Mapping[str, Any], prompt: str, answer: str | None) -> bool:
        """Maybe queue a shadow job for a finished decision. Never blocks, never raises.

        With a fleet-wide sampler the sampling decision (a Redis round trip) runs in a background task;
        True then means "handed to the sampler", and the job is queued if the fleet count picks it.
        """
        try:
            if self.queue is None or answer is None or record.get("status") != "ok" or record.get("tier") is None:
                return False
            if record.get("route") == "concrete" and not self.settings.include_concrete:
                return False
            idx = self.tier_names.index(str(record["tier"]))
            if self.fleet is not None:
                if not self.shadow_tiers(idx):
                    return False
                task = asyncio.get_running_loop().create_task(
                    self._fleet_submit(self.fleet, dict(record), dict(payload), prompt, answer, idx))
                self._sampling.add(task)
                task.add_done_callback(self._sampling.discard)
                return True
            if not self.sampler.sample(segment_labels(record.get("segment"))):
                return False
            return self._enqueue(record, payload, prompt, answer, idx)
        except Exception:  # the request path must never notice the shadow
            log.exception("shadow submit failed")
            return False

    async def _fleet_submit(self, fleet: FleetSampler, record: dict[str, Any], payload: dict[str, Any], prompt: str,
                            answer: str, idx: int) -> None:
        try:
            try:
                picked = await fleet.sample()
                self._fleet_errors.recovered("shadow_sampling")
            except outage_errors() as exc:  # Redis out: this process's own every-n-th count meanwhile
                self._fleet_errors.failed("shadow_sampling", exc)
                picked = self.sampler.sample(segment_labels(record.get("segment")))
            if picked:
                self._enqueue(record, payload, prompt, answer, idx)
        except Exception:
            log.exception("fleet-wide shadow sampling failed")

    def _enqueue(self, record: Mapping[str, Any], payload: Mapping[str, Any], prompt: str, answer: str,
                 idx: int) -> bool:
        try:
            if self.queue is None:
                return False
            others = self.shadow_tiers(idx)
            if not others:
                return False
            if not self.budget.try_reserve(len(others) + self.judge.calls_needed(len(others) + 1)):
                self._count("skipped_budget")
                return False
            self.queue.put_nowait(ShadowJob(dict(record), dict(payload), prompt, answer, idx, others))
            self._count("queued")
            return True
        except asyncio.QueueFull:
            self._count("dropped_queue_full")
            return False
        except Exception:  # the request path must never notice the shadow
            log.exception("shadow submit failed")
            return False

    async def _work(self, queue: asyncio.Queue[ShadowJob]) -> None:
        while True:
            job = await queue.get()
            try:
                await self.run(job)
                self._count("done")
            except asyncio.CancelledError:
                raise
            except Exception:
                self._count("failed")
                log.exception("shadow job for %s failed", job.record.get("request_id"))
            finally:
                queue.task_done()

    async def _answer(self, job: ShadowJob, idx: int) -> tuple[dict[str, Any] | None, float]:
        """(the shadow tier's response body or None when the call failed, what it cost)."""
        body = self.request_for_tier(job.payload, idx)
        body["stream"] = False
        body.pop("stream_options", None)
        name = self.tier_names[idx]
        try:
            res = await self.executor.complete(self.tiers[idx], body, deadline_s=self.settings.timeout_s)
        except GearshiftError as exc:
            self.metrics.calls.labels(tier=name, outcome="error").inc()
            log.info("shadow call to tier %s failed: %s", name, exc.message)
            return None, 0.0
        self.metrics.calls.labels(tier=name, outcome="ok").inc()
        usage = res.result.body.get("usage") or {}
        in_p, out_p = self.prices.get(res.deployment.name, (0.0, 0.0))
        spent = cost_usd(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), in_p, out_p)
        self._spend(spent or 0.0)
        answered: dict[str, Any] = res.result.body
        return answered, spent or 0.0

    def _spend(self, usd: float) -> None:
        self.budget.spend(usd)
        self.metrics.cost.inc(usd)

    async def run(self, job: ShadowJob) -> Judgement:
        """Answer with every shadow tier, judge, store the label (and a triage item on disagreement)."""
        got = await asyncio.gather(*(self._answer(job, i) for i in job.shadow_tiers))
        prod = self.tier_names[job.tier_index]
        bodies = {self.tier_names[i]: b for i, (b, _) in zip(job.shadow_tiers, got, strict=True) if b is not None}
        answers = {prod: job.answer}
        answers.update({name: answer_text(b) for name, b in bodies.items()})
        before = (self.judge.unparseable, self.judge.failed)
        began = time.perf_counter()
        verdict = await self.judge.judge(job.prompt, answers, prod, self.tier_names)
        judge_s = time.perf_counter() - began
        self._spend(verdict.cost_usd)
        self.metrics.judge_cost.inc(verdict.cost_usd)  # priced overheads: what judging cost, how long it took
        self.metrics.judge_latency.observe(judge_s)
        self.metrics.judge.labels(outcome="unparseable").inc(self.judge.unparseable - before[0])
        self.metrics.judge.labels(outcome="failed").inc(self.judge.failed - before[1])
        self.metrics.judge.labels(outcome="ok").inc(
            verdict.calls - (self.judge.unparseable - before[0]) - (self.judge.failed - before[1]))
        rec = job.record
        label = {"request_id": rec["request_id"], "time": time.time(), "decision_time": rec.get("time"),
                 "tier": prod, "shadow_tiers": [self.tier_names[i] for i in job.shadow_tiers],
                 "answered": sorted(answers), "judge_model": self.judge.model, "judge_mode": self.judge.mode,
                 "epsilon": self.judge.epsilon, **verdict.to_json(),
                 "shadow_cost_usd": round(sum(c for _, c in got), 10), "judge_latency_ms": round(judge_s * 1000, 3),
                 "cheap_answer": self._cheap_answer(job, answers, bodies, verdict)}
        label["reasoning"] = [self.concealment(r) for r in label.get("reasoning") or []]  # quotes the prompt
        await asyncio.to_thread(self._store, job, answers, verdict, label)
        if verdict.label is not None:
            self.metrics.labels.labels(label=verdict.label).inc()
        if self.on_judged is not None:
            try:
                self.on_judged(rec, verdict.min_tier)
            except Exception:  # the label is stored; a monitor failure must not count the job as failed
                log.exception("quality SLI could not take the judgement of %s", rec.get("request_id"))
        return verdict

    def _cheap_answer(self, job: ShadowJob, answers: Mapping[str, str], bodies: Mapping[str, dict[str, Any]],
                      verdict: Judgement) -> dict[str, Any]:
        """The answer the label's "cheap_ok"/"strong_needed" is about: the cheapest tier the judge scored."""
        order = [t for t in self.tier_names if t in answers]
        tier = next((t for t in order if t in verdict.scores), order[0])
        prod = self.tier_names[job.tier_index]
        body = bodies.get(tier) or {}
        choices = body.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], Mapping) else {}
        msg = choice.get("message")
        message: Mapping[str, Any] = msg if isinstance(msg, Mapping) else {}
        out: dict[str, Any] = {
            "tier": tier, "source": "production" if tier == prod else "shadow", "text_mode": self.concealment.mode,
            "content": self.concealment(answers[tier]),
            "finish_reason": job.record.get("finish_reason") if tier == prod else choice.get("finish_reason"),
        }
        if self.concealment.mode == "full":  # a client's schema can describe its data: kept only with the text
            out["response_format"] = job.payload.get("response_format")
        if message.get("tool_calls"):
            out["tool_calls"] = self.concealment(message["tool_calls"])
        return out

    def _store(self, job: ShadowJob, answers: Mapping[str, str], verdict: Judgement, label: dict[str, Any]) -> None:
        from gearshift.closed_loop.triage import conceal_triage, triage_item

        self.store.put_label(label)
        tr = self.settings.triage
        if tr.enabled and verdict.gap is not None and abs(verdict.gap) >= tr.min_gap:
            item = triage_item(job.record, job.payload, job.prompt, answers, verdict, tr.max_answer_chars,
                               self.tier_names)
            if not tr.raw_text:
                item = conceal_triage(item, self.concealment)
            self.store.add_triage(str(job.record["request_id"]), time.time(), verdict.gap, item)

    async def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued job is done (tests, shutdown); False on timeout."""
        if self._sampling:
            await asyncio.wait(list(self._sampling), timeout=timeout_s)
        if self.queue is None:
            return True
        try:
            await asyncio.wait_for(self.queue.join(), timeout_s)
            return True
        except TimeoutError:
            return False

    async def aclose(self, timeout_s: float = 2.0) -> None:
        await self.drain(timeout_s)
        for w in self._workers:
            w.cancel()
        for w in self._workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await w
        self._workers = []
        self.queue = None

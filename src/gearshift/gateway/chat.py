"""`POST /v1/chat/completions`: authenticate, validate, ask the policy, call upstream, record.

Read top to bottom, one request is: `keys.admit` -> `validate_chat` -> `policy.decide` (one immutable
`Decision`: tier, deployments, propensity, rule) -> the failover executor or the cascade -> `finish`, which
builds the one `DecisionRecord` (`records.builder.build_row`) and hands it to the writer and the extensions.
Errors are raised as `GearshiftError`s and turned into the OpenAI error shape by
`gearshift.errors.openai_error_body` here, so the record and the response always agree.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gearshift.errors import InvalidRequestError
from gearshift.gateway.budgets import worst_case_usd
from gearshift.gateway.call import (
    Call,
    error_response,
    finish,
    new_call,
    pin_conversation,
    tool_call_ids,
    tool_call_names,
)
from gearshift.gateway.deadline import TIMEOUT_HEADER, ClientGone, answer_within, request_timeout_s
from gearshift.gateway.origin import require_json
from gearshift.gateway.requests import ChatRequest, validate_chat
from gearshift.gateway.service import Gateway
from gearshift.gateway.surface import OPENAI, Surface
from gearshift.http_body import parse_json, read_body
from gearshift.policy.decide import Decision, PolicyRequest
from gearshift.providers.registry import DeploymentSettings
from gearshift.records.builder import Outcome
from gearshift.records.record import CascadeStep, segment_row
from gearshift.records.usage import (
    answer_text,
    completion_tokens_estimate,
    estimated_usage,
    usage_cost,
)
from gearshift.routers.base import prompt_text


def count(gw: Gateway, decision: Decision) -> None:
    """The decision's events on the gateway's counters."""
    m = gw.metrics
    for kind, label in decision.events:
        if kind == "rule":
            m.child(m.rule_decisions, label).inc()
        elif kind == "escalation":
            m.escalations.labels(cause=label).inc()
        elif kind == "key_alert":
            m.child(m.key_alerts, label).inc()


def _usage(body: dict[str, Any], prompt: str) -> tuple[dict[str, Any], bool]:
    """The upstream's `usage`, else an estimate over every choice (n > 1 is n answers, all paid for)."""
    usage = body.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        return usage, False
    usage = estimated_usage(prompt, answer_text(body) or "")
    usage["completion_tokens"] = completion_tokens_estimate(body)
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage, True


def answer_cost(body: dict[str, Any], dep: DeploymentSettings | None, prompt: str) -> float | None:
    """What one answer cost at its deployment's prices (a cascade rung the verifiers rejected included)."""
    usage, _ = _usage(body, prompt)
    if dep is None:
        return None
    return usage_cost(usage, dep)


def record_usage(call: Call, body: dict[str, Any], dep: DeploymentSettings | None, prompt: str) -> None:
    """Tokens and cost of a complete answer: the upstream's `usage`, else an estimate (then also sent back)."""
    out = call.outcome
    usage, estimated = _usage(body, prompt)
    if estimated:
        body["usage"] = usage
        out.usage_estimated = True
    tin, tout = int(usage["prompt_tokens"]), int(usage.get("completion_tokens") or 0)
    choices = body.get("choices")  # tracing: gen_ai.response.finish_reasons
    if isinstance(choices, list) and choices and isinstance(choices[0], dict) and choices[0].get("finish_reason"):
        out.finish_reason = str(choices[0]["finish_reason"])
    out.tokens_in, out.tokens_out = tin, tout
    out.upstream_model = dep.model if dep else None
    out.cost_usd = usage_cost(usage, dep) if dep else None  # cached prompt tokens at their own price


def cascades(gw: Gateway, decision: Decision) -> bool:
    """Whether the cascade runs: routed requests only, and never inside a misroute-experiment arm, whose point is
    to measure what the forced tier's answers are worth (the cascade would rescue `all_cheap`'s failures)."""
    return (gw.cascade is not None and decision.route != "concrete" and decision.category is None
            and decision.experiment_arm is None)


def worst_case(gw: Gateway, payload: dict[str, Any], size: int, decision: Decision, n: int) -> float:
    """The most this request can cost on the tiers it may reach: the decision's deployments, and with the
    cascade every tier above too (each step is paid). Input tokens are bounded by the body's `size` in bytes."""
    settings = gw.deployment_settings
    tiers = [[settings[d.name] for d in decision.deployments if d.name in settings]]
    caps = [gw.output_cap(gw.upstream_request(payload, decision.tier))]
    if cascades(gw, decision):
        for t in range(decision.tier + 1, len(gw.tiers)):
            tiers.append([settings[d.name] for d in gw.tiers[t] if d.name in settings])
            caps.append(gw.output_cap(gw.upstream_request(payload, t)))
    return worst_case_usd(size, caps, n, tiers)


async def chat_completions(request: Request) -> Response:
    return await handle_chat(request, OPENAI)


async def handle_chat(request: Request, surface: Surface) -> Response:
    """Every chat surface's one path: the surface translates the request in and the answer out (surface.py)."""
    gw: Gateway = request.app.state.gateway
    call = new_call(request)
    call.surface = surface
    facts = call.facts
    try:
        facts.api_key_id = await gw.keys.admit(surface.authorization(request.headers), "inference")
        call.timeout_s = request_timeout_s(request.headers.get(TIMEOUT_HEADER), gw.settings.limits)
        raw = await read_body(request, gw.settings.limits.max_body_bytes, "[limits] max_body_bytes")
        if not gw.keys.enabled:  # keyless: no body a cross-origin page could send (gateway/origin.py)
            require_json(request.headers.get("content-type"))
        payload = surface.chat_request(parse_json(raw, max_depth=gw.settings.limits.max_json_depth))
        req = validate_chat(payload)
        if (req.n or 1) > gw.settings.limits.max_n:
            raise InvalidRequestError(f"n must be at most {gw.settings.limits.max_n} on this gateway", param="n")
        # everything from here runs within the deadline, and stops if the client leaves (gateway/deadline.py)
        work = _route_and_answer(gw, call, request, raw, payload, req)
        return await answer_within(request.receive, call.remaining_s(), work)
    except ClientGone:  # nobody to answer: the record says so, with the attempts cancelled on the way
        finish(gw, call, status="client_disconnected", http_status=499)
        return Response(status_code=499)
    except asyncio.CancelledError:  # the SIGTERM grace ran out (uvicorn cancels what is still running)
        finish(gw, call, status="cancelled_shutdown" if gw.draining else "client_disconnected", http_status=499)
        raise
    except Exception as exc:
        return error_response(gw, call, exc)


async def _route_and_answer(gw: Gateway, call: Call, request: Request, raw: bytes, payload: dict[str, Any],
                            req: ChatRequest) -> Response:
    """Segments, policy, budget, then the upstream (or the cascade): the part bounded by the deadline."""
    facts = call.facts
    call.payload = payload
    facts.requested_model, facts.stream = req.model, req.stream
    call.messages = [m.model_dump(exclude_none=False) for m in req.messages]
    call.conv_header = request.headers.get("x-gearshift-conversation-id")
    text = call.prompt = prompt_text(call.messages)
    topic = None if gw.topics is None else await gw.topics.alabel(text)  # `[segments] topics` only
    facts.segment = segment_row(text, call.messages, client=facts.api_key_id, topic=topic)
    gw.keys.check_model(facts.api_key_id, req.model)
    call.route = gw.resolver.resolve(req.model)
    decision = call.decision = await gw.policy.decide(call.route, PolicyRequest(
        call.request_id, payload, call.messages, facts.api_key_id, facts.segment, call.conv_header))
    count(gw, decision)
    call.headers.update(decision.headers())
    call.reserved_usd = await gw.keys.reserve(facts.api_key_id, worst_case(gw, payload, len(raw), decision,
                                                                            req.n or 1))
    ex = gw.settings.exploration
    if ex.record_prompts and decision.route != "concrete":
        facts.prompt = text[: ex.max_prompt_chars]
    if req.stream:
        from gearshift.gateway.streaming import stream_completion

        if gw.cascade is not None and gw.cascade.config.stream_mode == "buffer" and cascades(gw, decision):
            return await _buffered(gw, gw.cascade.config.buffer_max_s, call, req, payload, decision, text)
        return await stream_completion(gw, call, req, payload, decision, text)
    return await _complete(gw, call, payload, decision, text)


async def _buffered(gw: Gateway, budget: float, call: Call, req: ChatRequest, payload: dict[str, Any],
                    decision: Decision, text: str) -> Response:
    """`stream_mode = "buffer"`: the cascade verifies the whole answer before the first byte, which then
    streams as SSE chunks; past `buffer_max_s` the request streams from the router's tier unverified, and the
    record's reason says so."""
    from gearshift.cascade.runner import replay_chunks, unstreamed
    from gearshift.gateway.streaming import stream_completion

    try:
        body = await asyncio.wait_for(_answer(gw, call, unstreamed(payload), decision, text), budget)
    except TimeoutError:  # the cascade's upstream calls are cancelled with it
        call.outcome = Outcome(note=f"cascade buffer of {budget:g} s exceeded: streamed unverified")
        return await stream_completion(gw, call, req, payload, decision, text)
    wants_usage = bool(req.stream_options and req.stream_options.include_usage)
    chunks = [c for c in replay_chunks(body) if wants_usage or c.get("choices")]

    encoder = call.surface.encoder(call.request_id)  # SSE in the client's format (gateway/surface.py)

    async def events() -> AsyncIterator[bytes]:
        for c in chunks:
            yield encoder.chunk(c)
        yield encoder.done()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={**call.headers, "cache-control": "no-cache"})


async def _complete(gw: Gateway, call: Call, payload: dict[str, Any], decision: Decision, text: str) -> Response:
    """The answer, recorded once its bytes are handed to the server (`AfterSend`): the client does not wait for
    the record, the metrics or the extensions, which still run before this task yields to the next request."""
    body = await _answer(gw, call, payload, decision, text, record=False)
    return json_response(call.surface.answer(body), call.headers, after=lambda: finish(gw, call))


async def _answer(gw: Gateway, call: Call, payload: dict[str, Any], decision: Decision, text: str, *,
                  record: bool = True) -> dict[str, Any]:
    """The whole answer (through the cascade when it runs), recorded unless `record=False` (the caller then calls
    `finish`); the caller sends it."""
    idx = decision.tier
    out = call.outcome
    body_out = gw.upstream_request(payload, idx)
    t0 = time.perf_counter()
    rejected_usd = 0.0
    if gw.cascade is not None and cascades(gw, decision):
        outcome = await gw.cascade.run(body_out, start_tier=idx, segment=call.facts.segment)
        body, dep = outcome.response, outcome.deployment
        step_costs = [answer_cost(s.response, gw.deployment_settings.get(s.deployment.name), text)
                      if s.response is not None and s.deployment is not None else None for s in outcome.steps]
        out.cascade = [CascadeStep(tier=gw.tier_names[s.tier], deployment=s.deployment.name if s.deployment else None,
                                   shipped=(s is outcome.steps[-1]), cost_usd=c,
                                   verdicts=[{"name": v.name, "passed": v.passed, "score": v.score, "reason": v.reason,
                                              "cost_usd": v.cost_usd} for v in s.verdicts]).model_dump()
                       for s, c in zip(outcome.steps, step_costs, strict=True)]
        checks_usd = sum(v.cost_usd or 0.0 for s in outcome.steps for v in s.verdicts)  # e.g. the judge's calls
        rejected_usd = sum(c for c in step_costs[:-1] if c is not None) + checks_usd
        attempts = [a.to_dict() for s in outcome.steps for a in (s.attempts or [])]
        if outcome.tier_index != idx:
            out.escalation = f"cascade escalated to {gw.tier_names[outcome.tier_index]}"
            gw.metrics.escalations.labels(cause="cascade").inc()
        idx = outcome.tier_index
        out.tier = gw.tier_names[idx]
        call.headers["x-gearshift-tier"] = gw.tier_names[idx]
    else:
        res = await gw.executor.complete(list(decision.deployments), body_out, deadline_s=call.remaining_s(),
                                         attempts=call.attempts)
        body, dep, attempts = res.result.body, res.deployment, [a.to_dict() for a in res.attempts]
    upstream_s = time.perf_counter() - t0
    gw.metrics.child(gw.metrics.upstream_latency, dep.name, "complete").observe(upstream_s)
    out.upstream_latency_ms = round(upstream_s * 1000.0, 3)
    out.attempts = attempts
    out.deployment = dep.name
    record_usage(call, body, gw.deployment_settings.get(dep.name), text)
    if rejected_usd and out.cost_usd is not None:  # rejected rungs and the checks' own calls were paid for too
        out.cost_usd += rejected_usd
    call.answer = answer_text(body)
    call.answer_tools = tool_call_names(body)
    await pin_conversation(gw, call, idx, tool_call_ids(body))
    if record:
        finish(gw, call)
    return body


class AfterSend(Response):
    """A response that runs `after` once its bytes are handed to the server, whether sending worked or not (a
    client gone mid-send, a cancelled task): unlike Starlette's background tasks, which a failed send skips."""

    def __init__(self, content: bytes, headers: dict[str, str], after: Callable[[], None]) -> None:
        super().__init__(content, media_type="application/json", headers=headers)
        self.after = after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.after()


def json_response(body: dict[str, Any], headers: dict[str, str], after: Callable[[], None] | None = None) -> Response:
    """What `JSONResponse` sends (compact UTF-8 JSON), encoded by orjson: ~10x faster than the json module.
    `after`, when given, runs once the bytes are handed to the server (`AfterSend`)."""
    try:
        raw = orjson.dumps(body)
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer past 64 bits: the json module takes it
        if after is None:
            return JSONResponse(body, headers=headers)
        raw = bytes(JSONResponse(body).body)
    if after is None:
        return Response(raw, media_type="application/json", headers=headers)
    return AfterSend(raw, headers, after)

"""`POST /v1/chat/completions`: authenticate, validate, route, call upstream, record.

Every request, whatever its outcome, ends in exactly one `DecisionRecord` (`_finish`). Errors are
raised as `GearshiftError`s and turned into the OpenAI error shape by `gearshift.errors.openai_error_body`
here, so the record and the response always agree.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gearshift.errors import GearshiftError, openai_error_body
from gearshift.gateway.auth import retry_after_header
from gearshift.gateway.budgets import cap_strong_share
from gearshift.gateway.conversations import conversation_keys, next_key
from gearshift.gateway.requests import ChatRequest, parse_json, read_body, validate_chat
from gearshift.gateway.routing import describe_route, score_prompt
from gearshift.gateway.routing_rules import estimate_tokens as request_tokens
from gearshift.gateway.routing_rules import nearest_fitting_tier
from gearshift.gateway.service import Gateway
from gearshift.providers.base import Deployment
from gearshift.records.record import CascadeStep, record_row, segment_row
from gearshift.records.usage import answer_text, cost_usd, estimated_usage
from gearshift.routers.base import prompt_text

log = logging.getLogger(__name__)


@dataclass
class Call:
    """One request in flight: the record fields gathered so far and the routing outcome."""

    request_id: str
    started: float
    rec: dict[str, Any]
    tier_index: int | None = None
    deployments: list[Deployment] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    conv_header: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    prompt: str = ""  # prompt_text(messages), computed once per request
    payload: dict[str, Any] | None = None  # the client's request body, for shadow re-sends
    answer: str | None = None  # the answer text shipped, for implicit signals and shadow judging

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000.0, 3)


def new_call(request: Request) -> Call:
    rid = "gs-" + uuid.uuid4().hex
    return Call(request_id=rid, started=time.perf_counter(), rec={"request_id": rid, "time": time.time()},
                headers={"x-gearshift-request-id": rid})


def finish(gw: Gateway, call: Call, *, status: str = "ok", exc: BaseException | None = None,
           http_status: int = 200) -> None:
    """Complete the record, update metrics, hand the record to the writer. Never raises."""
    try:
        rec = call.rec
        rec["status"] = status
        rec["http_status"] = http_status
        rec["latency_ms"] = call.elapsed_ms()
        if exc is not None:
            rec["error_type"] = getattr(exc, "code", None) or type(exc).__name__
            rec["error_message"] = exc.message if isinstance(exc, GearshiftError) else "internal error"
            if getattr(exc, "attempts", None):
                rec["attempts"] = list(exc.attempts)  # type: ignore[attr-defined]
        row = record_row(rec)  # == DecisionRecord(**rec).to_row(), built once without pydantic
        gw.metrics.observe_record(row)
        gw.emit(row)
        if gw.closed_loop is not None:  # shadow sampling, implicit signals, SLO monitor; never raises or waits
            gw.closed_loop.on_decision(row, messages=call.messages, conversation_header=call.conv_header,
                                       payload=call.payload, prompt=call.prompt, answer=call.answer)
        gw.keys.settle(row["api_key_id"], row["cost_usd"])  # per-key daily budget (gateway/auth.py)
    except Exception:  # recording must never break the response
        log.exception("could not record decision %s", call.request_id)


def error_response(gw: Gateway, call: Call, exc: BaseException) -> Response:
    status, body = openai_error_body(exc)
    if not isinstance(exc, GearshiftError):
        log.exception("unhandled error in request %s", call.request_id, exc_info=exc)
    finish(gw, call, status="error", exc=exc, http_status=status)
    retry_after = retry_after_header(exc)
    if retry_after is not None:
        call.headers["retry-after"] = retry_after
    return JSONResponse(body, status_code=status, headers=call.headers)


async def route_request(gw: Gateway, call: Call, req: ChatRequest, payload: dict[str, Any]) -> int:
    """Pick the tier index; fills the routing part of the record and the response headers."""
    rec = call.rec
    route = gw.resolver.resolve(req.model)
    rec["route"] = route.kind
    rec.update(describe_route(route))
    if route.kind == "concrete" and route.tier_index is not None and route.deployment is not None:
        name = route.deployment.display_name
        call.deployments = [d for d in gw.tiers[route.tier_index] if d.name == name]
        rec["tier"] = gw.tier_names[route.tier_index]
        rec["reason"] = "concrete model requested"
        call.headers["x-gearshift-router"] = "none"
        return route.tier_index
    if route.router is None or route.policy is None:
        raise GearshiftError(f"route {route.kind!r} has no router")
    policy, router_id = route.policy, f"{route.router.name}@{route.router_version}"
    if gw.rules is not None and route.kind == "auto":  # routing rules: [[routes]], [router.gate], kind = "llm"
        from gearshift.gateway.rules_wiring import apply_rules

        ruled = await apply_rules(gw, call, payload)
        if isinstance(ruled, int):  # a category route picked its deployments
            return ruled
        score, policy, router_id = ruled.score, ruled.policy, ruled.router_id
    else:
        score = await score_prompt(route.router, call.messages)
    from gearshift.gateway import exploration  # learning: [exploration] draw with honest propensities

    decision, probs, explored = exploration.decide_for(gw.settings, policy, route.kind, score, call.request_id, rec)
    prior: int | None = None
    idx, reason, escalated = decision.tier_index, decision.reason + f" [{score.reason}]", decision.escalated
    if decision.escalated:
        gw.metrics.escalations.labels(cause="ood" if "distribution" in decision.reason else "confidence").inc()
    lookup, _ = conversation_keys(call.conv_header, call.messages)
    if gw.conversations is not None and lookup is not None:
        rec["conversation_id"] = lookup
        prior = await gw.conversations.get(lookup)
        if prior is not None and not 0 <= prior < len(gw.tiers):  # a shared pin from an older tier config
            prior = None
        if prior is not None and prior > idx and not gw.settings.conversations.allow_downgrade:
            reason += f"; kept conversation tier {gw.tier_names[prior]}"
            idx = prior
        elif prior is not None and idx > prior:
            escalated = True
            reason += f"; conversation escalated from {gw.tier_names[prior]}"
            gw.metrics.escalations.labels(cause="conversation").inc()
    tokens = request_tokens(payload)
    idx, call.deployments, fit_note = fit_context(gw, payload, idx, tokens)
    if fit_note:
        reason += f"; {fit_note}"
        escalated = escalated or fit_note.startswith("moved up")
    rec.update(score=score.p_strong, confidence=score.confidence, ood=score.ood, reason=reason,
               escalated=escalated, tier=gw.tier_names[idx], propensity=decision.propensity)
    if probs is not None:  # learning: the served tier's probability over every draw that ends on it
        probs = exploration.remap(exploration.remap(probs, exploration.sticky_move(
            prior, gw.settings.conversations.allow_downgrade)), lambda j: fit_context(gw, payload, j, tokens)[0])
        rec.update(propensity=probs[idx], tier_probabilities=list(probs), explored=explored)
    if gw.settings.exploration.record_prompts:
        rec["prompt"] = call.prompt[: gw.settings.exploration.max_prompt_chars]
    call.headers["x-gearshift-router"] = router_id
    call.headers["x-gearshift-score"] = f"{score.p_strong:.4f}"
    return idx


def fit_context(gw: Gateway, payload: dict[str, Any], idx: int,
                tokens: int | None = None) -> tuple[int, list[Deployment], str | None]:
    """The nearest tier (up first, then down) with deployments whose context window fits the request.

    Uses the routing-rules estimate (characters / 4 + max_tokens; pass `tokens` when already known);
    nothing fitting anywhere is a 400.
    """
    if tokens is None:
        tokens = request_tokens(payload)
    cand, deps = nearest_fitting_tier(gw.tiers, idx, tokens)
    if cand == idx:
        return cand, list(deps), None
    way = "up" if cand > idx else "down"
    return cand, list(deps), f"moved {way} to tier {gw.tier_names[cand]} to fit ~{tokens} tokens"


def upstream_request(gw: Gateway, payload: dict[str, Any], tier_index: int) -> dict[str, Any]:
    """What goes upstream: the client's request, with the tier's max_tokens cap applied."""
    body = dict(payload)
    cap = gw.tier_cap(tier_index)
    if cap is not None:
        for key in ("max_tokens", "max_completion_tokens"):
            if isinstance(body.get(key), int):
                body[key] = min(body[key], cap)
        if "max_completion_tokens" not in body:
            body["max_tokens"] = min(int(body.get("max_tokens") or cap), cap)
    return body


def record_usage(gw: Gateway, call: Call, body: dict[str, Any], deployment_name: str, prompt: str) -> None:
    usage = body.get("usage")
    rec = call.rec
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        tin, tout = int(usage["prompt_tokens"]), int(usage.get("completion_tokens") or 0)
    else:
        body["usage"] = usage = estimated_usage(prompt, answer_text(body) or "")
        tin, tout = usage["prompt_tokens"], usage["completion_tokens"]
        rec["usage_estimated"] = True
    dep = gw.deployment_settings.get(deployment_name)
    choices = body.get("choices")  # tracing: gen_ai.response.finish_reasons
    if isinstance(choices, list) and choices and isinstance(choices[0], dict) and choices[0].get("finish_reason"):
        rec["finish_reason"] = str(choices[0]["finish_reason"])
    rec.update(tokens_in=tin, tokens_out=tout, deployment=deployment_name,
               upstream_model=dep.model if dep else None,
               cost_usd=cost_usd(tin, tout, dep.input_price_per_m, dep.output_price_per_m) if dep else None)


async def chat_completions(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    call = new_call(request)
    try:
        call.rec["api_key_id"] = await gw.keys.admit(request.headers.get("authorization"), "inference")
        payload = parse_json(await read_body(request, gw.settings.limits.max_body_bytes))
        req = validate_chat(payload)
        call.payload = payload
        call.rec.update(requested_model=req.model, stream=req.stream)
        call.messages = [m.model_dump(exclude_none=False) for m in req.messages]
        call.conv_header = request.headers.get("x-gearshift-conversation-id")
        text = call.prompt = prompt_text(call.messages)
        topic = None if gw.topics is None else await gw.topics.alabel(text)  # `[segments] topics` only
        call.rec["segment"] = segment_row(text, call.messages, client=call.rec["api_key_id"], topic=topic)
        idx = await route_request(gw, call, req, payload)
        idx = await cap_strong_share(gw, call, idx)  # per-key strong-tier share cap (gateway/budgets.py)
        call.tier_index = idx
        call.headers["x-gearshift-tier"] = gw.tier_names[idx]
        if req.stream:
            from gearshift.gateway.streaming import stream_completion

            return await stream_completion(gw, call, req, payload, idx, text)
        return await _complete(gw, call, payload, idx, text)
    except Exception as exc:
        return error_response(gw, call, exc)


async def _complete(gw: Gateway, call: Call, payload: dict[str, Any], idx: int, text: str) -> Response:
    rec = call.rec
    deployments = call.deployments
    body_out = upstream_request(gw, payload, idx)
    t0 = time.perf_counter()
    if gw.cascade is not None and call.rec.get("route") != "concrete" and call.rec.get("rule") != "category":
        outcome = await gw.cascade.run(body_out, start_tier=idx)
        body, dep = outcome.response, outcome.deployment
        steps = [CascadeStep(tier=gw.tier_names[s.tier], deployment=s.deployment.name if s.deployment else None,
                             shipped=(s is outcome.steps[-1]),
                             verdicts=[{"name": v.name, "passed": v.passed, "score": v.score, "reason": v.reason}
                                       for v in s.verdicts]).model_dump() for s in outcome.steps]
        attempts = [a.to_dict() for s in outcome.steps for a in (s.attempts or [])]
        rec["cascade"] = steps
        if outcome.tier_index != idx:
            rec["escalated"] = True
            rec["reason"] = f"{rec.get('reason', '')}; cascade escalated to {gw.tier_names[outcome.tier_index]}"
            gw.metrics.escalations.labels(cause="cascade").inc()
        idx = outcome.tier_index
        rec["tier"] = gw.tier_names[idx]
        call.headers["x-gearshift-tier"] = gw.tier_names[idx]
    else:
        res = await gw.executor.complete(deployments, body_out, deadline_s=gw.settings.limits.request_timeout_s)
        body, dep, attempts = res.result.body, res.deployment, [a.to_dict() for a in res.attempts]
    upstream_s = time.perf_counter() - t0
    gw.metrics.child(gw.metrics.upstream_latency, dep.name, "complete").observe(upstream_s)
    rec["upstream_latency_ms"] = round(upstream_s * 1000.0, 3)
    rec["attempts"] = attempts
    record_usage(gw, call, body, dep.name, text)
    call.answer = answer_text(body)
    await pin_conversation(gw, call, call.answer, idx)
    finish(gw, call)
    return json_response(body, call.headers)


async def pin_conversation(gw: Gateway, call: Call, answer: str | None, idx: int) -> None:
    """Store the tier a served answer came from under the key its conversation's next turn looks up.

    Awaited before the answer reaches the client, so a next turn sent to any gateway of the fleet finds it.
    """
    if gw.conversations is None:
        return
    key = next_key(call.conv_header, call.messages, answer)
    if key is not None:
        await gw.conversations.set(key, idx)


def json_response(body: dict[str, Any], headers: dict[str, str]) -> Response:
    """What `JSONResponse` sends (compact UTF-8 JSON), encoded by orjson: ~10x faster than the json module."""
    try:
        raw = orjson.dumps(body)
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer past 64 bits: the json module takes it
        return JSONResponse(body, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)

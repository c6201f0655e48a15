"""One request in flight (`Call`) and its one ending (`finish`): the record is built and handed on here, once.

Shared by the JSON handler (chat.py) and the SSE one (streaming.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gearshift.errors import GearshiftError, openai_error_body
from gearshift.gateway.auth import retry_after_header
from gearshift.gateway.service import Gateway
from gearshift.gateway.surface import OPENAI, Surface
from gearshift.policy.conversations import next_key, scoped, tool_call_keys
from gearshift.policy.decide import Decision
from gearshift.policy.route import Route, describe_route
from gearshift.providers.attempts import Attempt
from gearshift.records.builder import Ending, Outcome, RequestFacts, build_row

log = logging.getLogger(__name__)


@dataclass
class Call:
    """One request in flight: what it said, what the policy decided, what the upstream did."""

    request_id: str
    started: float
    facts: RequestFacts
    outcome: Outcome = field(default_factory=Outcome)
    route: Route | None = None
    decision: Decision | None = None
    headers: dict[str, str] = field(default_factory=dict)
    conv_header: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    prompt: str = ""  # prompt_text(messages), computed once per request
    payload: dict[str, Any] | None = None  # the client's request body, for shadow re-sends
    answer: str | None = None  # the answer text shipped, for implicit signals and shadow judging
    answer_tools: list[str] = field(default_factory=list)  # tool names the shipped JSON answer calls (signals)
    reserved_usd: float = 0.0  # the worst-case cost booked against the key's budget at admission
    surface: Surface = OPENAI  # the client's wire format: chat completions, or Anthropic's messages
    timeout_s: float = 60.0  # the whole-request deadline, from `started` (gateway/deadline.py)
    attempts: list[Attempt] = field(default_factory=list)  # upstream tries so far, kept if the work is cancelled
    recorded: bool = False  # `finish` ran: one record per request
    _next_turn: tuple[str | None] | None = field(default=None, repr=False)  # next_turn_key(), once computed

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000.0, 3)

    def next_turn_key(self) -> str | None:
        """`next_key` of the messages and `answer` (set it first), computed once: the conversation pin and the
        implicit signals both look for it, and hashing the whole conversation is not free."""
        if self._next_turn is None:
            self._next_turn = (next_key(self.conv_header, self.messages, self.answer),)
        return self._next_turn[0]

    def remaining_s(self) -> float:
        """Seconds left before the whole-request deadline."""
        return self.timeout_s - (time.perf_counter() - self.started)


def _uuid4_hex() -> str:
    """`uuid.uuid4().hex` (16 random bytes, version and variant bits set) without building a UUID object."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return b.hex()


def new_call(request: Request) -> Call:
    rid = "gs-" + _uuid4_hex()
    return Call(request_id=rid, started=time.perf_counter(), facts=RequestFacts(rid, time.time()),
                headers={"x-gearshift-request-id": rid})


def _decision_fields(call: Call) -> dict[str, Any] | None:
    if call.decision is not None:
        return call.decision.record_fields()
    if call.route is not None:  # resolved, then refused (e.g. nothing fits): the record still names the route
        return {"route": call.route.kind, **describe_route(call.route)}
    return None


def finish(gw: Gateway, call: Call, *, status: str = "ok", exc: BaseException | None = None,
           http_status: int = 200) -> None:
    """Build the record once, update metrics, hand it to the writer and the extensions. Never raises.

    A second call for the same request (work that finished as it was being cancelled) does nothing."""
    if call.recorded:
        return
    call.recorded = True
    cost: float | None = None
    try:
        ending = Ending(status, http_status, call.elapsed_ms())
        if not call.outcome.attempts and call.attempts:  # cancelled or failed before the handler copied them
            call.outcome.attempts = [a.to_dict() for a in call.attempts]
        if exc is not None:
            attempts = getattr(exc, "attempts", None)
            ending = Ending(status, http_status, ending.latency_ms, getattr(exc, "code", None) or type(exc).__name__,
                            exc.message if isinstance(exc, GearshiftError) else "internal error",
                            list(attempts) if attempts else None)
        cost = call.outcome.cost_usd
        row = build_row(call.facts, _decision_fields(call), call.outcome, ending)
        cost = row["cost_usd"]  # with the LLM-as-router's call, when one was made
        gw.metrics.observe_record(row)
        gw.emit(row)
        exts = gw.extensions
        seen = dict(gw.conceal(row)) if exts and gw.conceal is not None else row  # extensions see it as stored
        for ext in exts:  # shadow sampling, implicit signals, SLO monitor, tracing; never raise or wait
            ext.on_decision(seen, call)
    except Exception:  # recording must never break the response
        log.exception("could not record decision %s", call.request_id)
    try:  # per-key daily budget: the cost, less the reservation (gateway/auth.py); even when recording failed
        gw.keys.settle(call.facts.api_key_id, cost, call.reserved_usd)
    except Exception:
        log.exception("could not settle the budget of %s", call.request_id)


def error_response(gw: Gateway, call: Call, exc: BaseException) -> Response:
    status, body = openai_error_body(exc)
    if not isinstance(exc, GearshiftError):
        log.exception("unhandled error in request %s", call.request_id, exc_info=exc)
    finish(gw, call, status="error", exc=exc, http_status=status)
    retry_after = retry_after_header(exc)
    if retry_after is not None:
        call.headers["retry-after"] = retry_after
    return JSONResponse(call.surface.error_body(status, body), status_code=status, headers=call.headers)


async def pin_conversation(gw: Gateway, call: Call, idx: int, tool_call_ids: Sequence[str] = ()) -> None:
    """Store the tier the served answer (`call.answer`, set first) came from under the key its conversation's
    next turn looks up, and under each tool call it made (the turn returning their results goes back there:
    policy/decide.py).

    Awaited before the answer reaches the client, so a next turn sent to any gateway of the fleet finds it.
    """
    store = gw.policy.conversations
    if store is None:
        return
    key = scoped(call.next_turn_key(), call.facts.api_key_id)
    if key is not None:
        await store.set(key, idx)
    for tool_key in tool_call_keys(tool_call_ids):
        await store.set(scoped(tool_key, call.facts.api_key_id) or tool_key, idx)


def _tool_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    msg = first.get("message") if isinstance(first.get("message"), dict) else {}
    calls = msg.get("tool_calls") if isinstance(msg, dict) else None
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


def tool_call_ids(body: dict[str, Any]) -> list[str]:
    """The ids of the tool calls in a chat completion's first choice."""
    return [str(c["id"]) for c in _tool_calls(body) if c.get("id")]


def tool_call_names(body: dict[str, Any]) -> list[str]:
    """The function names of the tool calls in a chat completion's first choice."""
    fns = [c.get("function") for c in _tool_calls(body)]
    return [str(f["name"]) for f in fns if isinstance(f, dict) and f.get("name")]

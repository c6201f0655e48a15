"""HTTP endpoints of the closed loop: explicit feedback and the triage queue for the dashboard.

`POST /v1/feedback` attaches a user signal (thumbs, a rating, a hand-off to a human) to the decision
that produced the answer; an unknown request id is a 404. `GET /v1/triage` and
`POST /v1/triage/{id}/label` expose the disagreement queue. When the gateway has API keys, feedback
needs a key with the "feedback" scope and the triage queue one with "admin" (401 without a key, 403
with one lacking the scope); every error leaves in the OpenAI error shape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gearshift.closed_loop.signals import segment_labels
from gearshift.errors import GearshiftError, InvalidRequestError, ModelNotFoundError
from gearshift.http_body import parse_json, read_body
from gearshift.records.redaction import Concealment
from gearshift.store.labels import TRIAGE_LABELS, LabelStore, SignalEvent

if TYPE_CHECKING:
    from gearshift.extension import KeyCheck


class Loop(Protocol):
    """What the endpoints use of `closed_loop.loop.ClosedLoop`."""

    store: LabelStore
    signal_counts: dict[str, int]
    concealment: Concealment

    async def find_decision(self, request_id: str) -> dict[str, Any] | None: ...

    def note_signals(self, events: list[SignalEvent]) -> None: ...

_MAX_BODY = 64_000
_MAX_ID = 2**63 - 1  # a 64-bit row id; anything larger cannot name an item (and would overflow the driver)


class FeedbackRequest(BaseModel):
    """`value`: 1/0 for thumbs (optional), 0-1 for a rating (required), anything for a hand-off."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=200)
    signal: Literal["thumbs_up", "thumbs_down", "rating", "handoff"]
    value: float | None = None
    comment: str | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _value(self) -> FeedbackRequest:
        if self.signal == "rating" and (self.value is None or not 0.0 <= self.value <= 1.0):
            raise ValueError("a rating needs a value between 0 and 1")
        return self


class LabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Literal["strong_needed", "cheap_ok", "skip"]


class NotFoundError(ModelNotFoundError):
    code = "not_found"


def _validate(model: type[BaseModel], payload: dict[str, Any]) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidRequestError(f"invalid field '{loc}': {err['msg']}", param=loc) from None


async def post_feedback(request: Request, loop: Loop, key_id: str | None = None) -> Response:
    """Feedback on a decision; with `key_id` (a key without the admin scope) only on that key's own requests
    (another key's request is "not found": neither its existence nor its tier is revealed)."""
    fb: FeedbackRequest = _validate(FeedbackRequest, parse_json(await read_body(request, _MAX_BODY)))
    decision = await loop.find_decision(fb.request_id)
    if decision is not None and key_id is not None and decision.get("api_key_id") != key_id:
        decision = None
    if decision is None:
        raise NotFoundError(f"no decision with request id {fb.request_id!r}", param="request_id")
    value = fb.value if fb.value is not None else (0.0 if fb.signal == "thumbs_down" else 1.0)
    event = explicit_event(decision, fb.signal, value, loop.concealment(fb.comment), time.time())
    await asyncio.to_thread(loop.store.add_signals, [event])
    loop.note_signals([event])  # a thumbs-down counts against the live drift reading (drift_watch.py)
    loop.signal_counts[fb.signal] = loop.signal_counts.get(fb.signal, 0) + 1
    return JSONResponse({"object": "feedback", "request_id": fb.request_id, "signal": fb.signal, "value": value,
                         "tier": decision.get("tier")}, status_code=201)


async def list_triage(request: Request, loop: Loop) -> Response:
    status = request.query_params.get("status", "open")
    if status not in ("open", "labelled", "all"):
        raise InvalidRequestError("status must be open, labelled or all", param="status")
    raw_limit = request.query_params.get("limit", "100")
    if not raw_limit.isdigit() or not 0 < int(raw_limit) <= 1000:
        raise InvalidRequestError("limit must be an integer between 1 and 1000", param="limit")
    items = await asyncio.to_thread(loop.store.triage_items, status=status, limit=int(raw_limit))
    return JSONResponse({"object": "list", "data": items, "labels": list(TRIAGE_LABELS)})


async def label_triage(request: Request, loop: Loop) -> Response:
    raw_id = request.path_params["item_id"]
    if not str(raw_id).isdigit() or int(raw_id) > _MAX_ID:
        raise NotFoundError(f"no triage item {raw_id!r}")
    body: LabelRequest = _validate(LabelRequest, parse_json(await read_body(request, _MAX_BODY)))
    item = await asyncio.to_thread(loop.store.set_triage_label, int(raw_id), body.label, time.time())
    if item is None:
        raise NotFoundError(f"no triage item {raw_id}")
    return JSONResponse(item)


def explicit_event(decision: Mapping[str, Any], signal: str, value: float | None, comment: str | None,
                   now: float) -> SignalEvent:
    return SignalEvent(str(decision["request_id"]), now, signal, "explicit", value, comment, decision.get("tier"),
                       segment_labels(decision.get("segment")), decision.get("time"))


def _has_admin(keys: KeyCheck, authorization: str | None) -> bool:
    try:
        keys.check(authorization, "admin")
    except GearshiftError:
        return False
    return True


def routes(loop: Loop, keys: KeyCheck) -> list[Route]:
    """The endpoints of `loop`; every call first checks the caller's key for the endpoint's scope."""

    async def feedback(request: Request) -> Response:
        auth = request.headers.get("authorization")
        key_id = keys.check(auth, "feedback")
        return await post_feedback(request, loop, None if key_id is None or _has_admin(keys, auth) else key_id)

    async def triage(request: Request) -> Response:
        keys.check(request.headers.get("authorization"), "admin")
        return await list_triage(request, loop)

    async def label(request: Request) -> Response:
        keys.check(request.headers.get("authorization"), "admin")
        return await label_triage(request, loop)

    return [
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/v1/triage", triage, methods=["GET"]),
        Route("/v1/triage/{item_id}/label", label, methods=["POST"]),
    ]

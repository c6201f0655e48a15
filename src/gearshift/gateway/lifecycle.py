"""Admission control and shutdown: bounded in-flight work, back-pressure, and a draining gateway.

`AdmissionControl` is pure ASGI middleware in front of the chat routes. It answers 503 (OpenAI shape,
`Retry-After`) instead of queueing when more than `[limits] max_in_flight` chat requests are running,
while the decision log cannot take records (store down and spool full), or once shutdown has begun.
It counts in-flight requests until the response body ends, so a long stream holds its slot.

SIGTERM (`gearshift serve`): `drain_on_exit_signal` marks the gateway draining first (new chat requests on
open connections get a 503; a request cancelled from then on is recorded `cancelled_shutdown`), then uvicorn
stops accepting, lets in-flight responses finish up to `[limits] drain_timeout_s` and cancels the rest; the
lifespan shutdown waits for those to write their records (`Admission.wait_idle`), then flushes the
decision writer and its spool.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from gearshift.errors import OverloadedError, openai_error_body
from gearshift.gateway.settings import GatewaySettings
from gearshift.records.redaction import record_transform
from gearshift.store.base import DecisionStore
from gearshift.store.spool import JsonlSpool
from gearshift.store.writer import BackgroundWriter

if TYPE_CHECKING:
    from gearshift.gateway.service import Gateway

_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions", "/v1/messages", "/v1/responses"})


def spool_path(settings: GatewaySettings) -> Path:
    st = settings.store
    return st.spool_path if st.spool_path is not None else st.path.with_name(st.path.name + ".spool.jsonl")


def build_writer(settings: GatewaySettings, store: DecisionStore, secrets: list[str],
                 known_models: Iterable[str] = ()) -> BackgroundWriter:
    """The decision writer with its disk spool and the record transform (text mode, key scrubbing)."""
    st = settings.store
    spool = JsonlSpool(spool_path(settings), st.spool_max_bytes)
    return BackgroundWriter(store, max_queue=st.queue_size, batch_size=st.batch_size, spool=spool,
                            transform=record_transform(st.concealment(), secrets, known_models))


class Admission:
    """The shared admission state; `draining` is the gateway's (set on SIGTERM, or when the lifespan ends)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.max_in_flight = gateway.settings.limits.max_in_flight
        self.in_flight = 0
        self.metrics = gateway.metrics
        self.metrics.in_flight.set_function(lambda: float(self.in_flight))

    @property
    def draining(self) -> bool:
        return self.gateway.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.gateway.draining = value

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no chat request is in flight (cancelled ones write their records on the way out)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self.in_flight and loop.time() < end:
            await asyncio.sleep(0.02)
        return not self.in_flight

    def refusal(self) -> tuple[str, str] | None:
        """(reason, message) when a new chat request must be refused, else None."""
        writer = self.gateway.writer
        if self.draining:
            return "draining", "the gateway is shutting down; retry on another instance"
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            return "max_in_flight", f"the gateway is at its limit of {self.max_in_flight} concurrent requests"
        if writer is not None and writer.saturated:
            return "log_unavailable", "the decision log cannot take records right now (store and spool full)"
        return None


class AdmissionControl:
    """ASGI middleware applying `Admission` to the chat routes (see the module docstring).

    With `chat` set, an admitted `POST` to a chat path goes straight to that ASGI app instead of through
    Starlette's exception middleware and router: the chat handler answers every error itself, and the
    layers skipped cost about a tenth of the gateway's CPU per request.
    """

    def __init__(self, app: ASGIApp, admission: Admission, chat: ASGIApp | None = None) -> None:
        self.app = app
        self.admission = admission
        self.chat = chat

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in _CHAT_PATHS:
            await self.app(scope, receive, send)
            return
        adm = self.admission
        refusal = adm.refusal()
        if refusal is not None:
            reason, message = refusal
            adm.metrics.rejected.labels(reason=reason).inc()
            await _send_overloaded(send, message, scope["path"])
            return
        adm.in_flight += 1
        try:
            if self.chat is not None and scope["method"] == "POST":
                await self.chat(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            adm.in_flight -= 1


def drain_on_exit_signal(server: Any, gateway: Gateway) -> None:
    """Mark `gateway` draining as soon as the uvicorn `server` gets SIGTERM/SIGINT, before its own handling
    (which installs `server.handle_exit` as the handler when it starts)."""
    handle = server.handle_exit

    def handle_exit(sig: int, frame: Any) -> None:
        gateway.draining = True
        handle(sig, frame)

    server.handle_exit = handle_exit


async def _send_overloaded(send: Send, message: str, path: str) -> None:
    status, body = openai_error_body(OverloadedError(message))
    if path == "/v1/messages":  # the Anthropic SDK's surface answers in Anthropic's error shape
        from gearshift.gateway.messages_format import error_body

        body = error_body(status, body)
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                            (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": raw})

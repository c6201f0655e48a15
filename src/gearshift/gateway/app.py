"""The ASGI app: `create_app(settings)` for tests and `gearshift serve`.

All HTTP errors, including Starlette's own 404/405, leave through `gearshift.errors.openai_error_body`,
so clients only ever see the OpenAI error shape and never a stack trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from gearshift.errors import GearshiftError, InvalidRequestError, ModelNotFoundError, openai_error_body
from gearshift.gateway.build import build_gateway
from gearshift.gateway.chat import chat_completions
from gearshift.gateway.embeddings import embeddings
from gearshift.gateway.lifecycle import Admission, AdmissionControl
from gearshift.gateway.messages import MESSAGES, messages
from gearshift.gateway.origin import KeylessGuard
from gearshift.gateway.responses import responses
from gearshift.gateway.service import Gateway
from gearshift.gateway.settings import GatewaySettings
from gearshift.providers.base import ChatProvider, Warmable, warm_provider
from gearshift.routers.base import Router
from gearshift.store.base import DecisionStore
from gearshift.tracing.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)


def _gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def list_models(request: Request) -> Response:
    """The model names both chat surfaces route (`gearshift/auto`, router names, deployments), in the shape of the
    client asking: Anthropic's (the SDK sends `anthropic-version`) or OpenAI's. `owned_by` is a deployment's
    provider kind, "gearshift" for routed names."""
    gw = _gateway(request)
    anthropic = "anthropic-version" in request.headers
    gw.keys.check(MESSAGES.authorization(request.headers) if anthropic else request.headers.get("authorization"))
    created = int(gw.started_at)
    kinds = {name: d.provider for name, d in gw.deployment_settings.items()}
    ids = gw.resolver.model_ids()
    if anthropic:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
        models = [{"id": mid, "type": "model", "display_name": mid, "created_at": when} for mid in ids]
        return JSONResponse({"data": models, "has_more": False, "first_id": ids[0] if ids else None,
                             "last_id": ids[-1] if ids else None})
    data = [{"id": mid, "object": "model", "created": created, "owned_by": kinds.get(mid, "gearshift")}
            for mid in ids]
    return JSONResponse({"object": "list", "data": data})


async def healthz(request: Request) -> Response:
    """Liveness for anyone; with keys configured, the details (deployments, router, counts) need the admin scope."""
    gw = _gateway(request)
    writer = gw.writer
    auth = request.headers.get("authorization")
    if gw.keys.enabled and not (auth and _is_admin(gw, auth)):
        return JSONResponse({"status": "ok"})
    return JSONResponse({
        "status": "ok",
        "pid": os.getpid(),  # which process answered: one of several under `gearshift serve --workers N`
        "tiers": {name: [d.name for d in deps] for name, deps in zip(gw.tier_names, gw.tiers, strict=True)},
        # the router serving gearshift/auto: `algorithm` is its code's version (heuristic@2 on a fresh install),
        # `version` the registry version it was loaded from (None: built from the config, not registered)
        "router": {"name": gw.resolver.router.name, "algorithm": gw.resolver.router.describe(),
                   "version": gw.resolver.live.ref,
                   "source": "registry" if gw.resolver.live.ref is not None else "config"},
        "router_version": gw.resolver.live.ref,  # learning: the registered version serving (None: not one)
        "decisions": None if writer is None else {"written": writer.written, "queued": writer.queued,
                                                  "dropped": writer.dropped, "failed": writer.failed},
    })


async def reload_router(request: Request) -> Response:
    """`POST /v1/admin/router/reload` (admin scope): serve the registry's current `[router] version` now."""
    gw = _gateway(request)
    gw.keys.check(request.headers.get("authorization"), "admin")
    if gw.reloader is None:  # pragma: no cover - build_gateway always sets one
        raise InvalidRequestError("this gateway cannot reload its router")
    return JSONResponse(await gw.reloader.reload())


def _is_admin(gw: Gateway, authorization: str) -> bool:
    try:
        gw.keys.check(authorization, "admin")
    except GearshiftError:
        return False
    return True


async def metrics(request: Request) -> Response:
    """Costs, deployments and counts: with keys configured, a scraper sends an admin key (Bearer)."""
    _gateway(request).keys.check(request.headers.get("authorization"), "admin")
    return Response(_gateway(request).metrics.render(), media_type=CONTENT_TYPE)


async def openapi_json(request: Request) -> Response:
    from gearshift.gateway.openapi import openapi_document

    _gateway(request).keys.check(request.headers.get("authorization"))  # it names the deployments: any key
    return JSONResponse(openapi_document(_gateway(request)))


async def _direct_chat(scope: Scope, receive: Receive, send: Send) -> None:
    """The chat route without the router and exception layers (it turns every error into a response itself)."""
    path = scope["path"]
    handler = messages if path == "/v1/messages" else responses if path == "/v1/responses" else chat_completions
    response = await handler(Request(scope, receive, send))
    await response(scope, receive, send)


async def _error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        mapped: BaseException
        if exc.status_code == 404:
            mapped = ModelNotFoundError(f"no route {request.url.path}")
            mapped.code = "not_found"
        elif exc.status_code == 405:
            mapped = InvalidRequestError(f"method {request.method} not allowed on {request.url.path}")
            mapped.status_code = 405
        else:
            mapped = GearshiftError(str(exc.detail))
            mapped.status_code = exc.status_code
        exc = mapped
    elif not isinstance(exc, GearshiftError):
        log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    status, body = openai_error_body(exc)
    return JSONResponse(body, status_code=status)


def create_app(settings: GatewaySettings, *, providers: Mapping[str, ChatProvider] | None = None,
               store: DecisionStore | None = None, router: Router | None = None,
               reload_on_sighup: bool = False, freeze_gc: bool = False) -> Starlette:
    """The gateway app. `providers`/`store`/`router` replace what the settings would build (tests, embedding);
    `reload_on_sighup` (`gearshift serve`) reloads the router on SIGHUP (gateway/reload.py). `freeze_gc`
    (`gearshift serve`, which owns its process) moves everything alive after startup out of the collector's
    reach: a full collection walked the loaded router, lexicons and schemas and paused requests for ~55 ms;
    with them frozen it walks only what requests made since."""
    gw = build_gateway(settings, providers=providers, store=store, router=router)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from gearshift.data.language import warm_up

        warm_up()  # load the language-id model now, not on the first request
        warming = [asyncio.ensure_future(warm_provider(name, p)) for name, p in gw.providers.items()
                   if isinstance(p, Warmable)]  # the local model, in the background
        if gw.writer is not None:
            gw.writer.start()
        for ext in gw.extensions:
            ext.start()  # shadow workers and the SLO timer need the running loop
        if gw.reloader is not None:  # learning: router hot reload: `[router] reload_interval_s`, SIGHUP
            gw.reloader.start()
            if reload_on_sighup and not gw.reloader.install_sighup():
                log.warning("SIGHUP router reload unavailable here; use POST /v1/admin/router/reload")
        if freeze_gc:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            for task in warming:
                task.cancel()
            admission.draining = True  # refuse what still arrives on open connections (gateway/lifecycle.py)
            await admission.wait_idle(5.0)  # requests cancelled at the end of the grace write their records
            await gw.aclose()  # drains the decision queue before closing the store

    routes: list[BaseRoute] = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),  # the Anthropic SDK's surface (gateway/messages.py)
        Route("/v1/responses", responses, methods=["POST"]),  # the Responses API, stateless (gateway/responses.py)
        Route("/v1/embeddings", embeddings, methods=["POST"]),  # pass-through to [[embeddings]] (gateway/embeddings.py)
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/admin/router/reload", reload_router, methods=["POST"]),  # learning: router hot reload
    ]
    for ext in gw.extensions:
        routes += ext.routes()  # the closed loop: /v1/feedback, /v1/triage
    handlers: dict[Any, Any] = {GearshiftError: _error, HTTPException: _error, Exception: _error}
    routes.append(Route("/openapi.json", openapi_json, methods=["GET"]))  # gateway/openapi.py
    if settings.dashboard.enabled:
        from gearshift.gateway.dashboard.routes import routes as dashboard_routes

        routes += dashboard_routes()  # dashboard: /dashboard, /dashboard/api/summary, /dashboard/static
    admission = Admission(gw)
    middleware = [Middleware(KeylessGuard, enabled=not gw.keys.enabled,  # keyless: no DNS rebinding, no CSRF
                             allowed_hosts=settings.auth.allowed_hosts),
                  Middleware(AdmissionControl, admission=admission,  # max in-flight / log back-pressure -> 503
                             chat=_direct_chat)]
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan, middleware=middleware)
    app.state.admission = admission
    app.state.gateway = gw
    return app

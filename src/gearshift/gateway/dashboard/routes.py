"""The dashboard's HTTP routes: the page, its JSON summary, and the vendored static files.

Page and API need the `admin` scope when the gateway has API keys (401 without a key, 403 with a key that
lacks the scope); with no keys configured they are open like every other route, and the page says so.
The summary reads the stores in a worker thread so a large window never stalls the event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gearshift.gateway.dashboard.data import summary
from gearshift.gateway.dashboard.views import CSP, render_page

if TYPE_CHECKING:
    from gearshift.gateway.service import Gateway

STATIC_DIR = Path(__file__).parent / "static"
_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "cache-control": "no-store",
            "referrer-policy": "no-referrer", "x-frame-options": "DENY"}


async def _summary(request: Request) -> dict[str, Any]:
    gw: Gateway = request.app.state.gateway
    gw.keys.check(request.headers.get("authorization"), "admin")
    since = request.query_params.get("since")
    return await asyncio.to_thread(summary, gw, since)


async def page(request: Request) -> Response:
    return HTMLResponse(render_page(await _summary(request)), headers=_HEADERS)


async def api_summary(request: Request) -> Response:
    return JSONResponse(await _summary(request), headers={"cache-control": "no-store"})


def routes() -> list[Any]:
    """Mount these in the gateway app when `[dashboard] enabled` (the default). Routes and a Mount: typed Any
    so the app's `list[Route]` can take them."""
    return [
        Route("/dashboard", page, methods=["GET"]),
        Route("/dashboard/api/summary", api_summary, methods=["GET"]),
        Mount("/dashboard/static", app=StaticFiles(directory=STATIC_DIR), name="dashboard-static"),
    ]

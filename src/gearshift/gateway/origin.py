"""A keyless gateway only answers requests a web page cannot forge (DNS rebinding, cross-origin POSTs).

Without `[[auth.keys]]` nothing stops a browser page from posting to the gateway: a `text/plain` body is a
"simple" request (no CORS preflight), and a rebinding DNS name reaches 127.0.0.1 with the attacker's `Host`.
So on a keyless gateway every request must name a loopback host (or one of `[auth] allowed_hosts`), and
every POST must say `Content-Type: application/json` (which a cross-origin page cannot send without a
preflight the gateway never grants). With keys configured the key is the defence and nothing here applies.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gearshift.errors import InvalidRequestError

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})  # checked by the handler, so it is recorded


class UnsupportedMediaTypeError(InvalidRequestError):
    status_code = 415
    code = "unsupported_media_type"


def is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "application/json"


def require_json(content_type: str | None) -> None:
    """A keyless gateway's POST body must be declared JSON (a cross-origin page cannot declare it unasked)."""
    if not is_json(content_type):
        raise UnsupportedMediaTypeError("send the body as Content-Type: application/json")


def host_name(host_header: str) -> str:
    """`Host` without its port: "[::1]:8000" -> "::1", "example.com:80" -> "example.com"."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def is_loopback_bind(host: str) -> bool:
    return host_name(host) in LOOPBACK or host.startswith("127.")


class KeylessGuard:
    """Pure ASGI: refuses (403 / 415, OpenAI error shape) what a web page could have sent on a user's behalf."""

    def __init__(self, app: ASGIApp, *, enabled: bool, allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.enabled = enabled
        self.allowed = LOOPBACK | {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = host_name(headers.get("host", ""))
        if host not in self.allowed:
            await _refuse(403, "permission_error", "host_not_allowed",
                          f"host {host!r} is not allowed on a gateway without API keys; add it to "
                          "[auth] allowed_hosts or configure keys")(scope, receive, send)
            return
        if scope.get("method") == "POST" and scope.get("path") not in CHAT_PATHS and not is_json(
                headers.get("content-type")):
            await _refuse(415, "invalid_request_error", "unsupported_media_type",
                          "send the body as Content-Type: application/json")(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _refuse(status: int, kind: str, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}},
                        status_code=status)

"""One error hierarchy for the whole package.

Every error a user can cause or meet derives from :class:`GearshiftError`. The HTTP side maps these to
the OpenAI error shape in exactly one place (:func:`openai_error_body`), so status codes and wording
never drift between endpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """"did you mean 'x'? " for the closest of `known` to a misspelt `name` ("" when none is close): a typo in
    a router, dataset, provider or model name should cost a newcomer one glance, not a read of the list."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close and close[0] != name else ""


class GearshiftError(Exception):
    """Base of every error gearshift raises on purpose."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class DataError(GearshiftError):
    """A data file is missing or malformed; names the file and, where known, the line."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_data"

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = str(path) if path is not None else None
        self.line = line


class ConfigError(GearshiftError):
    """The configuration (file or environment) is invalid."""

    status_code = 500
    error_type = "server_error"
    code = "invalid_config"


class RouterError(GearshiftError):
    """A router cannot score: not fitted, unknown name, or a saved state that does not load."""

    status_code = 500
    error_type = "server_error"
    code = "router_error"


class NotFittedError(RouterError):
    """A trainable router was asked to score before `fit`."""


class RouterReloadError(RouterError):
    """A router reload (`POST /v1/admin/router/reload`, SIGHUP, polling) failed; the old router keeps serving."""

    code = "router_reload_failed"


class InvalidRequestError(GearshiftError):
    """The client sent something we cannot serve (bad JSON, bad field)."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationError(GearshiftError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(GearshiftError):
    status_code = 403
    error_type = "permission_error"
    code = "insufficient_scope"


class ModelNotFoundError(GearshiftError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLargeError(GearshiftError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "payload_too_large"


class RateLimitError(GearshiftError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(GearshiftError):
    """Every deployment tried for a request failed; `attempts` lists what happened to each."""

    status_code = 502
    error_type = "upstream_error"
    code = "all_deployments_failed"

    def __init__(self, message: str, *, attempts: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts or []


class UpstreamRateLimitedError(UpstreamError):
    """Every deployment tried answered 429: the client should back off for `retry_after_s` (the smallest
    `Retry-After` any of them sent), not see a server failure."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "upstream_rate_limited"

    def __init__(self, message: str, *, attempts: list[dict[str, Any]] | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message, attempts=attempts)
        self.retry_after_s = retry_after_s


class UpstreamTimeoutError(UpstreamError):
    """The request deadline passed, or every deployment tried timed out."""

    status_code = 504
    error_type = "timeout_error"
    code = "upstream_timeout"


class UpstreamBadRequestError(UpstreamError):
    """Every deployment tried refused the request itself (HTTP 400/413/422): the client's to fix, so a 400
    carrying the upstream's own message."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "upstream_bad_request"


class UpstreamResponseTooLargeError(UpstreamError):
    """An answer was cut at the deployment's `max_response_bytes`: never replaced silently by another's."""

    code = "upstream_response_too_large"


#: Why every deployment failed -> what the client gets. The one table (README "Status codes"); the failover
#: executor picks the row (`providers.attempts.failure_kind`), `openai_error_body` turns it into the response.
UPSTREAM_FAILURES: dict[str, type[UpstreamError]] = {
    "rate_limited": UpstreamRateLimitedError,  # 429 + Retry-After: the smallest any deployment sent
    "timeout": UpstreamTimeoutError,  # 504: the request deadline passed, or every try timed out
    "bad_request": UpstreamBadRequestError,  # 400 with the upstream's message: the request itself was refused
    "response_too_large": UpstreamResponseTooLargeError,  # 502: an answer cut at max_response_bytes
    "failed": UpstreamError,  # 502: anything else (5xx, refused connections, malformed answers, open circuits)
}


class RequestTimeoutError(GearshiftError):
    """The whole request (policy, retries, failover, cascade) passed its deadline."""

    status_code = 504
    error_type = "timeout_error"
    code = "request_deadline_exceeded"


class OverloadedError(GearshiftError):
    status_code = 503
    error_type = "server_error"
    code = "overloaded"


class StoreUnavailableError(GearshiftError):
    """The decision/label/version database is down or did not answer within its timeout."""

    status_code = 503
    error_type = "server_error"
    code = "store_unavailable"


class SharedStateUnavailableError(GearshiftError):
    """Shared state (Redis) is down or did not answer in time, and the check is set to fail closed."""

    status_code = 503
    error_type = "server_error"
    code = "shared_state_unavailable"


def openai_error_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The one mapping from an exception to (HTTP status, OpenAI error JSON).

    Unknown exceptions become a generic 500 with no stack trace or internal text.
    """
    if isinstance(exc, GearshiftError):
        err: dict[str, Any] = {
            "message": exc.message,
            "type": exc.error_type,
            "param": exc.param,
            "code": exc.code,
        }
        if isinstance(exc, UpstreamError) and exc.attempts:
            err["attempts"] = exc.attempts
        return exc.status_code, {"error": err}
    return 500, {
        "error": {
            "message": "internal server error",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }


class ProviderError(GearshiftError):
    """One upstream attempt failed. `retryable` tells the reliability wrappers what to do next."""

    status_code = 502
    error_type = "upstream_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retryable: bool = True,
        retry_after_s: float | None = None,
        after_first_token: bool = False,
    ) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.after_first_token = after_first_token


class UntranslatableError(ProviderError):
    """The request uses something a deployment's wire format cannot express (n > 1 to Anthropic, an image URL
    to Gemini): that deployment cannot serve it, retrying would not help, the next one (of another kind) may."""

    code = "untranslatable_request"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class ProviderTimeoutError(ProviderError):
    """One attempt ran out of time (connect, first byte, between chunks, or the request deadline)."""


class ProviderResponseTooLargeError(ProviderError):
    """One attempt's answer passed the deployment's `max_response_bytes`."""

    code = "upstream_response_too_large"

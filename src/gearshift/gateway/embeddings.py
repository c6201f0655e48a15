"""`POST /v1/embeddings`: a pass-through to a configured `[[embeddings]]` deployment, with no routing.

The request still goes through the key check, its rate limit and daily budget, the body limit and the
keyless guard, and leaves one decision record (the deployment, tokens and cost; no tier, since nothing
was routed). The body is passed through unchanged but for `model`, so any OpenAI embeddings option works.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import Response

from gearshift.errors import InvalidRequestError, ModelNotFoundError, ProviderError
from gearshift.gateway.call import error_response, finish, new_call
from gearshift.gateway.chat import json_response
from gearshift.gateway.origin import require_json
from gearshift.gateway.service import Gateway
from gearshift.http_body import parse_json, read_body
from gearshift.providers.attempts import make_attempt
from gearshift.providers.base import EmbeddingProvider
from gearshift.records.usage import usage_cost


async def embeddings(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    call = new_call(request)
    facts = call.facts
    try:
        facts.api_key_id = await gw.keys.admit(request.headers.get("authorization"), "inference")
        raw = await read_body(request, gw.settings.limits.max_body_bytes, "[limits] max_body_bytes")
        if not gw.keys.enabled:  # keyless: no body a cross-origin page could send (gateway/origin.py)
            require_json(request.headers.get("content-type"))
        payload = parse_json(raw)
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequestError("model is required", param="model")
        if not isinstance(payload.get("input"), (str, list)) or not payload["input"]:
            raise InvalidRequestError("input must be a non-empty string or list", param="input")
        facts.requested_model = model
        gw.keys.check_model(facts.api_key_id, model)
        dep = gw.embeddings.get(model)
        if dep is None:
            known = ", ".join(gw.embeddings) or "none configured ([[embeddings]])"
            raise ModelNotFoundError(f"no embeddings deployment {model!r}; available: {known}", param="model")
        provider = gw.providers.get(dep.provider)
        if not isinstance(provider, EmbeddingProvider):
            raise ProviderError(f"provider {dep.provider!r} cannot embed", retryable=False)
        out = call.outcome
        out.deployment, out.upstream_model = dep.name, dep.model
        t0 = time.perf_counter()
        limit = min(dep.timeout_s, gw.settings.limits.request_timeout_s)
        try:
            async with asyncio.timeout(limit):
                body = await provider.embed(dep, payload)
        except TimeoutError:
            raise ProviderError(f"upstream {dep.name!r} did not answer within {limit:.3g}s") from None
        except ProviderError as exc:
            out.attempts = [make_attempt(dep, "error", 0, t0, exc).to_dict()]
            raise
        out.attempts = [make_attempt(dep, "ok", 0, t0).to_dict()]
        out.upstream_latency_ms = round((time.perf_counter() - t0) * 1000.0, 3)
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        out.tokens_in, out.tokens_out = int(usage.get("prompt_tokens") or 0), 0
        settings = gw.deployment_settings.get(dep.name)
        out.cost_usd = usage_cost(usage, settings) if settings is not None else None
        finish(gw, call)
        return json_response(body, call.headers)
    except Exception as exc:
        return error_response(gw, call, exc)

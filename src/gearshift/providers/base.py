"""The provider seam.

A provider speaks one upstream's wire format. It does not retry, fail over or route: those are
wrappers (`gearshift.providers.reliability`) around this interface, like httpx transports. Requests and
responses are plain OpenAI-shaped dicts so a pass-through costs no re-encoding of unknown fields.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Deployment:
    """One concrete upstream model endpoint, as configured. `api_key` is resolved, never logged."""

    name: str
    provider: str  # a registered kind: "openai", "azure", "anthropic", "gemini", "local" (providers/registry.py)
    model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    input_price_per_m: float = 0.0
    output_price_per_m: float = 0.0
    context_window: int | None = None
    timeout_s: float = 60.0  # one attempt in all (a stream: until its first content chunk)
    connect_timeout_s: float | None = None  # TCP (+TLS) connect; None: timeout_s
    first_byte_timeout_s: float | None = None  # request sent -> response headers; None: timeout_s
    idle_timeout_s: float | None = None  # the longest silence between two reads of the body/stream; None: timeout_s
    continuation: str = "none"  # how it continues a cut answer (providers/continuation.py): none, prefill, vllm
    max_response_bytes: int | None = None  # None: the provider's default (16 MiB for HTTP upstreams)
    cached_input_price_per_m: float | None = None  # prompt tokens read from the provider's cache (None: input price)
    cache_write_price_per_m: float | None = None  # prompt tokens written to it (Anthropic; None: input price)
    api_version: str | None = None  # Azure `api-version`, Anthropic `anthropic-version`, Gemini API version


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A complete (non-streamed) upstream answer: the OpenAI response body and its HTTP status."""

    body: dict[str, Any]
    status: int = 200


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One SSE `data:` payload from upstream, parsed; `done` marks the `[DONE]` sentinel."""

    data: dict[str, Any] | None
    done: bool = False


@runtime_checkable
class ChatProvider(Protocol):
    """Sends one chat completion to one deployment. Raises `ProviderError` subclasses on failure."""

    async def complete(self, deployment: Deployment, request: dict[str, Any]) -> ChatResult: ...

    def stream(self, deployment: Deployment, request: dict[str, Any]) -> AsyncIterator[StreamChunk]:
        """Yield chunks; the last is `StreamChunk(None, done=True)`. A stream that ends without
        `[DONE]` raises `ProviderError`: a truncated answer is never a success."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Warmable(Protocol):
    """A provider with a slow first call (the local model loads for seconds): the gateway warms it at startup, in
    the background, so the first request does not wait for it and health checks answer meanwhile."""

    async def warmup(self) -> None: ...


async def warm_provider(name: str, provider: Warmable) -> None:
    """`provider.warmup()`, a failure logged: the first request meets the same error, in the OpenAI shape."""
    try:
        await provider.warmup()
    except Exception as exc:
        log.warning("provider %r did not load at startup (%s); its requests will fail until it does", name, exc)


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Sends one embeddings request (OpenAI shape, passed through) to one deployment; `/v1/embeddings` uses it."""

    async def embed(self, deployment: Deployment, request: dict[str, Any]) -> dict[str, Any]: ...

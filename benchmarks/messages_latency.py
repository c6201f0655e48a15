"""Added latency of the Anthropic surface: `/v1/messages` -> an Anthropic-format upstream, against the chat-completions
path -> an OpenAI-format upstream, in the same run through the same gateway app.

Each path's added latency is its p50 through the gateway minus the p50 of the same request sent straight to its
fake upstream (both fakes are the tests' real HTTP servers on 127.0.0.1), so the two translations (Messages in,
OpenAI inside, Messages to the upstream and back, twice) are what the difference shows. Rounds interleave the
four paths so drift hits all alike.

    .venv/bin/python benchmarks/messages_latency.py [N_PER_ROUND] [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gateway.harness import serve
from gearshift.gateway.settings import parse_settings
from support.fake_formats import FakeAnthropic
from support.fake_upstream import FakeUpstream

PROMPT = "What is the capital of France?"
ANTHROPIC_HEADERS = {"x-api-key": "bench-key-0123456789", "anthropic-version": "2023-06-01"}


def _timed(client: httpx.Client, url: str, body: dict[str, Any], n: int, headers: dict[str, str],
           out: list[float]) -> None:
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.post(url, json=body, headers=headers)
        out.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()


def translation_us(msgs: dict[str, Any], reps: int = 20_000) -> tuple[float, float]:
    """CPU per request of the translations the Messages path adds (Messages -> internal -> Anthropic upstream
    body; upstream answer -> internal -> Messages answer), and, as the baseline, of the JSON encode + decode of
    the same request and answer that every path does. Deterministic where the HTTP figures above are not."""
    import orjson

    from gearshift.gateway.messages_format import to_chat_request, to_message
    from gearshift.providers.anthropic_format import from_anthropic, to_anthropic

    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "end_turn",
              "content": [{"type": "text", "text": "Paris is the capital of France."}],
              "usage": {"input_tokens": 14, "output_tokens": 8}}
    t0 = time.perf_counter()
    for _ in range(reps):
        internal = to_chat_request(msgs)
        to_anthropic(internal, "claude-x", stream=False)
        to_message(from_anthropic(answer), "rid")
    translate = (time.perf_counter() - t0) / reps * 1e6
    raw_req, raw_answer = orjson.dumps(msgs), orjson.dumps(answer)
    t0 = time.perf_counter()
    for _ in range(reps):
        orjson.dumps(orjson.loads(raw_req))
        orjson.dumps(orjson.loads(raw_answer))
    return translate, (time.perf_counter() - t0) / reps * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    os.environ["BENCH_ANTHROPIC_KEY"] = ANTHROPIC_HEADERS["x-api-key"]
    chat = {"model": "gpt", "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}
    msgs = {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}
    with FakeUpstream() as openai_up, FakeAnthropic() as anthropic_up, tempfile.TemporaryDirectory() as tmp:
        settings = parse_settings({
            "tiers": [{"name": "cheap", "deployments": [{"name": "gpt", "provider": "openai", "model": "gpt-x",
                                                         "base_url": openai_up.base_url}]},
                      {"name": "strong", "deployments": [{"name": "claude", "provider": "anthropic",
                                                          "model": "claude-x", "base_url": anthropic_up.root_url,
                                                          "api_key_env": "BENCH_ANTHROPIC_KEY"}]}],
            "router": {"name": "heuristic", "thresholds": [0.5]}, "store": {"path": str(Path(tmp) / "d.sqlite")},
        }, "bench")
        server = serve(settings)
        paths = {
            "chat direct": (openai_up.base_url + "/chat/completions", {**chat, "model": "gpt-x"}, {}),
            "chat via gateway": (server.root + "/v1/chat/completions", chat, {}),
            "messages direct": (anthropic_up.root_url + "/v1/messages", {**msgs, "model": "claude-x"},
                                ANTHROPIC_HEADERS),
            "messages via gateway": (server.root + "/v1/messages", msgs, ANTHROPIC_HEADERS),
        }
        times: dict[str, list[float]] = {name: [] for name in paths}
        try:
            with httpx.Client(timeout=10) as c:
                for url, body, headers in paths.values():
                    _timed(c, url, body, 30, headers, [])  # warm-up
                for _ in range(rounds):
                    for name, (url, body, headers) in paths.items():
                        _timed(c, url, body, n, headers, times[name])
        finally:
            server.stop()
    p50 = {name: statistics.median(xs) for name, xs in times.items()}
    for name, xs in times.items():
        print(f"{name:22s} p50 {p50[name]:6.3f} ms   p95 {statistics.quantiles(xs, n=20)[18]:6.3f} ms   (n={len(xs)})")
    added_chat = p50["chat via gateway"] - p50["chat direct"]
    added_msgs = p50["messages via gateway"] - p50["messages direct"]
    print(f"added p50: chat completions -> OpenAI {added_chat:.3f} ms; /v1/messages -> Anthropic {added_msgs:.3f} ms; "
          f"difference {added_msgs - added_chat:+.3f} ms (target: within 0.2 ms)")
    translate, baseline = translation_us(msgs)
    print(f"translation CPU per /v1/messages request {translate:.1f} us (baseline: JSON decode + encode of the same "
          f"request and answer {baseline:.1f} us)")


if __name__ == "__main__":
    main()

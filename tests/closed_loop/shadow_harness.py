"""Closed-loop test harness: tier upstreams, a content-aware judge upstream, a scripted router, a webhook sink.

The judge upstream scores an answer 9 when it contains "strong" and 3 otherwise, in whatever order the
answers are shown, so a correct order-averaging judge sees a real gap; `biased=True` makes it prefer
whichever answer comes first instead.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from gateway.harness import GatewayServer, deployment
from gearshift.gateway.app import create_app
from gearshift.gateway.settings import GatewaySettings, hash_key, parse_settings
from gearshift.routers.base import PromptLike, Router, RoutingScore, prompt_text
from support.fake_upstream import Behaviour, FakeUpstream

_A = re.compile(r"### Answer A\n(.*?)\n\n### Answer B\n(.*?)\n\n### Scores", re.DOTALL)
_SINGLE = re.compile(r"### Answer\n(.*?)\n\n### Rating", re.DOTALL)


def _quality(answer: str) -> int:
    return 9 if "strong" in answer else 3


class JudgeUpstream(FakeUpstream):
    """Answers judge prompts from their content; any other request gets the default answer."""

    def __init__(self, *, biased: bool = False, garbage: bool = False) -> None:
        super().__init__(answer="unused")
        self.biased = biased
        self.garbage = garbage

    def _completion(self, req: dict[str, Any], b: Behaviour, text: str) -> dict[str, Any]:
        user = str((req.get("messages") or [{}])[-1].get("content", ""))
        if self.garbage:
            text = "I would rather not say."
        elif (m := _A.search(user)) is not None:
            a, bb = (9, 3) if self.biased else (_quality(m.group(1)), _quality(m.group(2)))
            text = f"A: {a}, B: {bb}\nAnswer {'A' if a > bb else 'B'} is correct, the other is not."
        elif (m := _SINGLE.search(user)) is not None:
            text = f"{_quality(m.group(1))}/10"
        return super()._completion(req, b, text)


class KeywordRouter(Router):
    """p_strong 0.9 for prompts containing HARD, else 0.1; confidence 0.1 for prompts containing UNSURE."""

    name = "keyword"
    version = "1"

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        out = []
        for p in prompts:
            text = prompt_text(p)
            out.append(RoutingScore(p_strong=0.9 if "HARD" in text else 0.1,
                                    confidence=0.1 if "UNSURE" in text else 0.9, reason="keyword"))
        return out


def settings(cheap: FakeUpstream, strong: FakeUpstream, db: Path, **sections: Any) -> GatewaySettings:
    data: dict[str, Any] = {
        "tiers": [{"name": "cheap", "deployments": [deployment("cheap-a", cheap)]},
                  {"name": "strong", "deployments": [deployment("strong", strong)]}],
        "router": {"name": "heuristic", "thresholds": [0.5], "min_confidence": 0.5},
        "store": {"path": str(db)},
        "reliability": {"max_retries": 0, "base_delay_s": 0.0},
        "limits": {"max_body_bytes": 50_000, "request_timeout_s": 5.0},
    }
    data.update(sections)
    return parse_settings(data, "test")


def judge_endpoint(judge: FakeUpstream) -> dict[str, Any]:
    return {"name": "judge", "provider": "openai", "model": "judge-model", "base_url": judge.base_url,
            "timeout_s": 5.0, "input_price_per_m": 1.0, "output_price_per_m": 1.0}


def wait_until(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


class WebhookReceiver:
    """A local HTTP server collecting the JSON bodies POSTed to it."""

    bodies: ClassVar[list[Any]]

    def __init__(self) -> None:
        received: list[Any] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                received.append(json.loads(self.rfile.read(n)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def alerts(self) -> list[dict[str, Any]]:
        return [a for body in list(self.received) for a in body.get("alerts", [])]

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# quality SLIs: a cheap tier whose answers fail on some prompts (the judge above then scores them 3 against 9)
FAILING = ("bitte", "please")
DE = ["Wie viele Einwohner hat die Stadt Berlin heute ungefähr, bitte?",
      "Erkläre mir bitte, warum der Himmel am Tag blau ist.",
      "Kannst du mir bitte sagen, wie hoch die Zugspitze ist?",
      "Bitte beschreibe kurz, wie eine Dampfmaschine funktioniert.",
      "Nenne mir bitte drei bekannte Werke von Goethe.",
      "Wie lange dauert eine Zugfahrt von Hamburg nach München, bitte?"]
EN = ["How many people live in the city of Berlin today?", "Why is the sky blue during the day?",
      "How tall is the Zugspitze mountain, please?", "Describe briefly how a steam engine works.",
      "Name three well known works by Goethe.", "How long is a train ride from Hamburg to Munich, please?"]


class CheapUpstream(FakeUpstream):
    """A good answer, except for prompts holding a word of `FAILING`."""

    def _completion(self, req: dict[str, Any], b: Behaviour, text: str) -> dict[str, Any]:
        prompt = str((req.get("messages") or [{}])[-1].get("content", "")).lower()
        text = "cheap guess" if any(w in prompt for w in FAILING) else "a strong enough answer"
        return super()._completion(req, b, text)


PLAIN = [p.replace(", please", "") for p in EN]  # English prompts whose cheap answers are all fine
KEYS = {"team-a": "sk-team-a-0001", "team-b": "sk-team-b-0002"}


@contextmanager
def sli_upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream, JudgeUpstream]]:
    cheap, strong, judge = CheapUpstream(), FakeUpstream(answer="the strong answer is 42"), JudgeUpstream()
    for u in (cheap, strong, judge):
        u.start()
    try:
        yield cheap, strong, judge
    finally:
        for u in (cheap, strong, judge):
            u.stop()


def sli_gateway(ups: tuple[FakeUpstream, FakeUpstream, JudgeUpstream], db: Path, hook: str, *,
             bands: dict[str, Any], sections: dict[str, Any] | None = None, **slo: Any) -> GatewayServer:
    """Keys team-a and team-b (admin too, for the dashboard), every request shadowed, the SLO monitor checking
    every 0.1 s with min_events = min_judged = 6 and `bands` as `segment_bands`."""
    cheap, strong, judge = ups
    extra: dict[str, Any] = {"auth": {"keys": [{"id": k, "sha256": hash_key(v), "scopes": ["inference", "admin"]}
                                               for k, v in KEYS.items()]}}
    cfg = settings(cheap, strong, db, **extra, **(sections or {}),
                   shadow={"enabled": True, "every_n": 1, "judge": {"endpoint": judge_endpoint(judge)}},
                   slo={"enabled": True, "window_s": 120.0, "check_interval_s": 0.1, "min_events": 6,
                        "min_judged": 6, "strong_share": [0.0, 1.0], "escalation_rate": [0.0, 0.5],
                        "quality_loss": [0.0, 0.7], "webhook_url": hook, "segment_bands": bands, **slo})
    return GatewayServer(create_app(cfg, router=KeywordRouter()))


def send_as(gw: GatewayServer, prompts: list[str], key: str = "team-a", *, judged: bool = False) -> None:
    """`judged`: return only once every one of these requests has been judged, so that a window's rates
    never pass through a mix the test did not mean (e.g. the failing half judged before the control half)."""
    monitor = gw.gateway.closed_loop.monitor
    before = monitor.judged
    with gw.client(headers={"Authorization": f"Bearer {KEYS[key]}"}) as c:
        for p in prompts:
            r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                     "messages": [{"role": "user", "content": p}]})
            assert r.status_code == 200, r.text
    if judged:
        assert wait_until(lambda: monitor.judged == before + len(prompts), 10.0), monitor.judged


def settled(gws: Sequence[GatewayServer], hook: WebhookReceiver, judged: int) -> None:
    """Each gateway's `judged` judgements in, then two more checks on each, and every alert they emitted
    delivered to `hook`: an alert that would fire has fired."""
    monitors = [gw.gateway.closed_loop.monitor for gw in gws]
    for m in monitors:
        assert wait_until(lambda m=m: m.judged == judged, 10.0), m.judged
    for _ in range(2):
        for m in monitors:
            checks = m.snapshot["time"]
            assert wait_until(lambda m=m, checks=checks: m.snapshot["time"] != checks, 5.0)
    assert wait_until(lambda: len(hook.alerts()) == sum(len(m.alerts) for m in monitors), 5.0)  # threaded delivery


def fired(hook: WebhookReceiver, kind: str) -> list[str]:
    return sorted(a["segment"] for a in hook.alerts() if a["kind"] == kind)

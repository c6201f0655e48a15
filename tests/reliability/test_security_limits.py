"""Security (issue 19): budgets reserved at admission cannot be overshot by a burst; output caps always apply."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from gearshift.gateway.settings import hash_key, parse_settings
from gearshift.routers.base import Router, RoutingScore
from reliability.conftest import PROMPT, assert_openai_error, dep, records, running, settings_for
from support.fake_upstream import Behaviour, FakeUpstream
from support.services import redis_prefix

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gearshift.routers.base import PromptLike

KEY = "gs-budget-key-0001"
AUTH = {"keys": [{"id": "tight", "sha256": hash_key(KEY), "scopes": ["inference"], "budget_usd_per_day": 0.01}]}


class AlwaysStrongThenCheap(Router):
    """The first prompt scored looks hard, every later one easy."""

    name = "strong_then_cheap"

    def __init__(self) -> None:
        self.calls = 0

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        out = []
        for _ in prompts:
            self.calls += 1
            out.append(RoutingScore(p_strong=0.99 if self.calls == 1 else 0.01, confidence=0.99, reason="scripted"))
        return out


@pytest.fixture(scope="module")
def slow_up() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="three word answer", default=Behaviour(latency_s=0.4)) as up:
        yield up


def _strong(url: str, **extra: Any) -> dict[str, Any]:
    # an expensive strong deployment: ~$0.003 per answer here, worst case ~$0.006 with max_tokens = 5
    return dep("strong", url, 5.0, input_price_per_m=10.0, output_price_per_m=1000.0, **extra)


@pytest.mark.parametrize("shared", ["memory", "redis"])
def test_concurrent_requests_cannot_overshoot_a_daily_budget(slow_up: FakeUpstream, tmp_path: Path,
                                                             shared: str) -> None:
    slow_up.reset()
    db = tmp_path / "d.sqlite"
    with ExitStack() as stack:
        sections: dict[str, Any] = {"auth": AUTH}
        if shared == "redis":
            url, prefix = stack.enter_context(redis_prefix())
            sections["redis"] = {"url": url, "prefix": prefix}
        settings = settings_for([dep("cheap", slow_up.base_url, 5.0)], slow_up.base_url, db, deadline_s=5.0,
                                **sections)
        raw = settings.model_dump(mode="json")
        raw["tiers"][1]["deployments"][0] = _strong(slow_up.base_url, max_tokens=5)
        gw = stack.enter_context(running(parse_settings(raw)))

        def post(_: int) -> httpx.Response:
            return httpx.post(gw.root + "/v1/chat/completions", json={"model": "strong", "messages": PROMPT},
                              headers={"authorization": f"Bearer {KEY}"}, timeout=10)

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(post, range(20)))
        recs = records(gw, db)
    served = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert served and len(served) + len(refused) == 20
    assert {assert_openai_error(r.json())["code"] for r in refused} == {"budget_exceeded"}
    spent = sum(r["cost_usd"] or 0.0 for r in recs if r["status"] == "ok")
    assert len([r for r in recs if r["status"] == "ok"]) == len(served)
    assert 0 < spent <= 0.01 + 1e-12  # before: all 20 served, $0.06 booked on a $0.01 key


def test_every_upstream_request_has_an_output_cap_and_n_is_bounded(slow_up: FakeUpstream, tmp_path: Path) -> None:
    slow_up.reset()
    settings = settings_for([dep("cheap", slow_up.base_url, 5.0)], slow_up.base_url, tmp_path / "d.sqlite",
                            deadline_s=5.0, limits={"max_tokens": 300, "max_n": 4})
    with running(settings) as gw, gw.client() as c:
        plain = c.post("/v1/chat/completions", json={"model": "cheap", "messages": PROMPT})
        asked = c.post("/v1/chat/completions", json={"model": "cheap", "messages": PROMPT, "max_tokens": 100_000})
        many = c.post("/v1/chat/completions", json={"model": "cheap", "messages": PROMPT, "n": 5})
    assert plain.status_code == asked.status_code == 200
    assert [r.json["max_tokens"] for r in slow_up.chat_requests] == [300, 300]
    assert many.status_code == 400 and assert_openai_error(many.json())["param"] == "n"


def test_the_strong_share_cap_holds_for_a_concrete_strong_model(slow_up: FakeUpstream, tmp_path: Path) -> None:
    slow_up.reset()
    auth = {"keys": [{"id": "capped", "sha256": hash_key(KEY), "max_strong_share": 0.1, "strong_share_window": 10},
                     {"id": "auto-only", "sha256": hash_key(KEY + "-b"), "models": ["gearshift/auto", "cheap"]}]}
    settings = settings_for([dep("cheap", slow_up.base_url, 5.0)], slow_up.base_url, tmp_path / "d.sqlite",
                            deadline_s=5.0, auth=auth)
    with running(settings) as gw, gw.client(headers={"authorization": f"Bearer {KEY}"}) as c:
        named = [c.post("/v1/chat/completions", json={"model": "strong", "messages": PROMPT}) for _ in range(10)]
        cheap = c.post("/v1/chat/completions", json={"model": "cheap", "messages": PROMPT})
        other = {"authorization": f"Bearer {KEY}-b"}
        limited = c.post("/v1/chat/completions", json={"model": "strong", "messages": PROMPT}, headers=other)
        allowed = c.post("/v1/chat/completions", json={"model": "cheap", "messages": PROMPT}, headers=other)
    assert [r.status_code for r in named].count(200) == 1  # 10 % of a 10-request window; before: 10 of 10
    refused = [assert_openai_error(r.json())["code"] for r in named if r.status_code != 200]
    assert refused == ["strong_share_exceeded"] * 9
    assert cheap.status_code == 200 and allowed.status_code == 200
    assert limited.status_code == 403 and assert_openai_error(limited.json())["code"] == "model_not_allowed"


def test_one_key_cannot_label_or_steer_another_keys_requests(tmp_path: Path) -> None:
    a, b, fb = "gs-key-a-0011", "gs-key-b-0011", "gs-key-fb-0011"
    auth = {"keys": [{"id": "a", "sha256": hash_key(a), "scopes": ["inference", "feedback"]},
                     {"id": "b", "sha256": hash_key(b), "scopes": ["inference", "feedback"]},
                     {"id": "fb", "sha256": hash_key(fb), "scopes": ["feedback"]}]}
    with FakeUpstream(answer="ok") as up:
        settings = settings_for([dep("cheap", up.base_url, 5.0)], up.base_url, tmp_path / "d.sqlite",
                                deadline_s=5.0, auth=auth)
        with running(settings, router=AlwaysStrongThenCheap()) as gw, gw.client() as c:
            def ask(key: str) -> httpx.Response:
                return c.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": PROMPT},
                              headers={"authorization": f"Bearer {key}", "x-gearshift-conversation-id": "conv-1"})

            first_a = ask(a)  # strong: pins conv-1 of key a to the strong tier
            first_b = ask(b)  # the router now says cheap: key a's pin must not apply to key b's "conv-1"
            rid = first_a.headers["x-gearshift-request-id"]
            gw.flush()

            def feedback(key: str) -> httpx.Response:
                return c.post("/v1/feedback", json={"request_id": rid, "signal": "thumbs_down"},
                              headers={"authorization": f"Bearer {key}"})

            by_other, by_feedback_key, by_owner = feedback(b), feedback(fb), feedback(a)
    assert first_a.headers["x-gearshift-tier"] == "strong"
    assert first_b.headers["x-gearshift-tier"] == "cheap"  # before: "strong", pinned by key a
    assert by_other.status_code == by_feedback_key.status_code == 404  # before: 201 with key a's tier
    assert "strong" not in by_other.text and by_owner.status_code == 201

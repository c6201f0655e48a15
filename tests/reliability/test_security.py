"""Security: scoped hashed keys, per-key rate limits, budgets and strong-tier caps, no provider key leaks."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from gearshift.cli import main
from gearshift.gateway.settings import hash_key, parse_settings
from gearshift.records.redaction import Concealment, record_transform
from gearshift.routers.base import PromptLike, Router, RoutingScore
from reliability.conftest import PROMPT, assert_openai_error, dep, records, running, settings_for
from reliability.test_store_faults import DiskFullStore
from support.fake_upstream import Behaviour, FakeUpstream, closed_port

INFER, FEED, ADMIN = "gs-infer-key-0001", "gs-feedback-key-0002", "gs-admin-key-0003"


class AlwaysStrong(Router):
    """Stands in for a router fooled by cost-amplification prompts: every prompt looks hard."""

    name = "always_strong"

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        return [RoutingScore(p_strong=0.99, confidence=0.99, reason="looks hard") for _ in prompts]


def _keys(**extra: Any) -> dict[str, Any]:
    return {"keys": [
        {"id": "infer", "sha256": hash_key(INFER), "scopes": ["inference"], **extra},
        {"id": "feed", "sha256": hash_key(FEED), "scopes": ["feedback"]},
        {"id": "ops", "sha256": hash_key(ADMIN), "scopes": ["inference", "feedback", "admin"]},
    ]}


def _post(c: httpx.Client, key: str | None, model: str = "gearshift/auto") -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return c.post("/v1/chat/completions", json={"model": model, "messages": PROMPT}, headers=headers)


def test_keys_are_scoped(ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    _, healthy = ups
    settings = settings_for([dep("cheap", healthy.base_url, 5.0)], healthy.base_url, tmp_path / "d.sqlite",
                            auth=_keys())
    with running(settings) as gw, gw.client() as c:
        assert _post(c, INFER).status_code == 200
        assert _post(c, ADMIN).status_code == 200
        denied = _post(c, FEED)
        missing, wrong = _post(c, None), _post(c, "gs-not-a-key")
        gw.flush()
        assert gw.gateway.keys.check(f"Bearer {ADMIN}", "admin") == "ops"
    assert denied.status_code == 403 and assert_openai_error(denied.json())["code"] == "insufficient_scope"
    assert missing.status_code == wrong.status_code == 401
    assert assert_openai_error(wrong.json())["type"] == "authentication_error"


def test_rate_limit_is_a_429_with_retry_after(ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    _, healthy = ups
    db = tmp_path / "d.sqlite"
    settings = settings_for([dep("cheap", healthy.base_url, 5.0)], healthy.base_url, db, auth=_keys(rpm=2))
    with running(settings) as gw, gw.client() as c:
        statuses = [_post(c, INFER).status_code for _ in range(2)]
        limited = _post(c, INFER)
        other_key = _post(c, ADMIN)  # limits are per key
        recs = records(gw, db)
    assert statuses == [200, 200] and other_key.status_code == 200
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 30
    err = assert_openai_error(limited.json())
    assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
    assert sorted(r["status"] for r in recs) == ["error", "ok", "ok", "ok"]
    assert len(healthy.chat_requests) == 3


def test_daily_budget_is_enforced_per_key(ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    _, healthy = ups
    settings = settings_for([dep("cheap", healthy.base_url, 5.0)], healthy.base_url, tmp_path / "d.sqlite",
                            auth=_keys(budget_usd_per_day=0.001))
    with running(settings) as gw, gw.client() as c:
        def ask(key: str, **extra: Any) -> httpx.Response:
            return c.post("/v1/chat/completions", json={"model": "cheap", "messages": PROMPT, **extra},
                          headers={"authorization": f"Bearer {key}"})

        small = ask(INFER, max_tokens=16)  # worst case ~$0.0001: fits
        large = ask(INFER)  # 4096 tokens at $2/M may cost $0.008: more than the key has
        other_key = ask(ADMIN)  # budgets are per key
    assert small.status_code == 200 and other_key.status_code == 200
    assert large.status_code == 429 and assert_openai_error(large.json())["code"] == "budget_exceeded"
    assert "max_tokens" in large.json()["error"]["message"]
    assert 1 <= int(large.headers["retry-after"]) <= 86_400


def test_strong_share_cap_routes_to_the_cheaper_tier_and_alerts(ups: tuple[FakeUpstream, FakeUpstream],
                                                                 tmp_path: Path) -> None:
    cheap_up, strong_up = ups
    db = tmp_path / "d.sqlite"
    settings = settings_for([dep("cheap", cheap_up.base_url, 5.0)], strong_up.base_url, db,
                            auth=_keys(max_strong_share=0.25, strong_share_window=8))
    with running(settings, router=AlwaysStrong()) as gw, gw.client() as c:
        tiers = [_post(c, INFER).headers["x-gearshift-tier"] for _ in range(8)]
        unlimited = [_post(c, ADMIN).headers["x-gearshift-tier"] for _ in range(3)]
        metrics = c.get("/metrics", headers={"authorization": f"Bearer {ADMIN}"}).text
        recs = records(gw, db)
    assert tiers.count("strong") == 2 and tiers[0] == "strong"  # 2 of 8 = the 25 % cap
    assert unlimited == ["strong"] * 3
    assert 'gearshift_key_alerts_total{kind="strong_share_cap"} 6.0' in metrics
    capped = [r for r in recs if "share cap" in r["reason"]]
    assert len(capped) == 6 and {r["tier"] for r in capped} == {"cheap"}


def test_keys_create_prints_the_key_once_and_a_loadable_snippet(ups: tuple[FakeUpstream, FakeUpstream],
                                                                 tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--id", "team-a", "--scopes", "inference,feedback",
                 "--budget-usd-per-day", "5", "--rpm", "60", "--models", "gearshift/auto"]) == 0
    out = capsys.readouterr().out
    raw = re.search(r"(gs-[A-Za-z0-9_-]{40,})", out)
    assert raw is not None
    snippet = out[out.index("[[auth.keys]]"):]
    assert raw[1] not in snippet and hash_key(raw[1]) in snippet
    import tomllib

    key = tomllib.loads(snippet)["auth"]["keys"][0]
    assert key["scopes"] == ["inference", "feedback"] and key["rpm"] == 60 and key["budget_usd_per_day"] == 5.0
    assert key["models"] == ["gearshift/auto"]
    _, healthy = ups
    settings = settings_for([dep("cheap", healthy.base_url, 5.0)], healthy.base_url, tmp_path / "d.sqlite",
                            auth={"keys": [key]})
    with running(settings) as gw, gw.client() as c:
        assert _post(c, raw[1]).status_code == 200
        refused = _post(c, raw[1], model="cheap")  # a deployment by name would sidestep routing and caps
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    assert main(["keys", "create", "--id", "x", "--scopes", "root"]) == 1


PROVIDER_KEY = "sk-test-LEAKCANARY-7f3a9c0e5b"


def test_provider_key_never_leaks(ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("GEARSHIFT_TEST_UPSTREAM_KEY", PROVIDER_KEY)
    faulty, _ = ups
    db, spool = tmp_path / "d.sqlite", tmp_path / "spool.jsonl"
    echo = b'{"error": {"message": "Incorrect API key provided: ' + PROVIDER_KEY.encode() + b'", "type": "x"}}'
    # each path once, non-streamed then streamed: an upstream error echoing the key, a 5xx/429, a success
    faulty.script(Behaviour.status_code(401, body=echo), Behaviour.status_code(500, body=echo), Behaviour(),
                  Behaviour.status_code(401, body=echo), Behaviour.status_code(429, body=echo), Behaviour())
    calls = [("faulty", False)] * 3 + [("faulty", True)] * 3 + [("strong", False), ("strong", True)]  # strong: refused
    key = {"api_key_env": "GEARSHIFT_TEST_UPSTREAM_KEY"}
    cheap = [dep("faulty", faulty.base_url, 2.0, **key)]
    data_settings = settings_for(cheap, f"http://127.0.0.1:{closed_port()}/v1", db, deadline_s=3.0,
                                 store={"spool_path": str(spool)})
    raw = data_settings.model_dump(mode="json")
    raw["tiers"][1]["deployments"][0].update(key)
    store = DiskFullStore(db)
    store.full = True  # the first records go through the spool
    bodies: list[str] = []
    with running(parse_settings(raw), store=store) as gw, gw.client() as c:
        for model, stream in calls:
            r = c.post("/v1/chat/completions", json={"model": model, "messages": PROMPT, "stream": stream})
            bodies.append(r.text)
        assert sum("HTTP 401" in b for b in bodies) == 2 and sum('"error"' in b for b in bodies) == 6
        bodies += [c.get("/metrics").text, c.get("/healthz").text, c.get("/v1/models").text]
        assert store.inner.count() == 0 and spool.stat().st_size > 0
        bodies.append(spool.read_text())  # what was spooled, before the replay empties the file
        store.full = False
        gw.flush()
        assert store.inner.count() == len(calls)
    written = [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]
    assert {p.name for p in tmp_path.iterdir()} >= {"d.sqlite", "spool.jsonl"}
    everything = b"\n".join(written) + "\n".join(bodies).encode() + caplog.text.encode()
    assert PROVIDER_KEY.encode() not in everything
    assert len(faulty.chat_requests) == 6
    assert all(r.headers["Authorization"] == f"Bearer {PROVIDER_KEY}" for r in faulty.chat_requests)


def test_record_text_modes_hash_or_redact_prompt_and_answer() -> None:
    row = {"request_id": "r", "prompt": "tell me a secret", "answer": "the answer", "tier": "cheap",
           "shadow": {"answer": "other answer"}, "error_message": "upstream said sk-abcdefgh1234"}
    hashed = record_transform(Concealment("hash", b"k" * 32))(row)
    assert hashed["prompt"].startswith("hmac-sha256:") and hashed["tier"] == "cheap"
    assert hashed["shadow"]["answer"].startswith("hmac-sha256:") and "secret" not in str(hashed)
    redacted = record_transform(Concealment("redact"), ["sk-abcdefgh1234"])(row)
    assert redacted["answer"] == "[redacted 10 chars]" and "sk-abcdefgh1234" not in str(redacted)
    full = record_transform(Concealment())(row)
    assert full["prompt"] == "tell me a secret" and full["error_message"] == "upstream said ***"

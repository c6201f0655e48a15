"""Shadow routing through the real gateway (uvicorn on 127.0.0.1) with one fake upstream per tier and a judge."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from closed_loop.shadow_harness import JudgeUpstream, KeywordRouter, judge_endpoint, settings, wait_until
from gateway.harness import GatewayServer
from gearshift.cli import main
from gearshift.data.records import read_jsonl
from gearshift.gateway.app import create_app
from gearshift.store.labels import SQLiteLabelStore
from support.fake_upstream import Behaviour, FakeUpstream


@pytest.fixture(scope="module")
def ups() -> Iterator[tuple[FakeUpstream, FakeUpstream, JudgeUpstream]]:
    cheap, strong = FakeUpstream(answer="cheap guess"), FakeUpstream(answer="the strong answer is 42")
    judge = JudgeUpstream()
    for u in (cheap, strong, judge):
        u.start()
    yield cheap, strong, judge
    for u in (cheap, strong, judge):
        u.stop()


@pytest.fixture
def upstreams(ups: tuple[FakeUpstream, FakeUpstream, JudgeUpstream]) -> tuple[FakeUpstream, ...]:
    for u in ups:
        u.reset()
    return ups


def _gateway(upstreams: tuple[FakeUpstream, FakeUpstream, JudgeUpstream], db: Path, **shadow: Any) -> GatewayServer:
    cheap, strong, judge = upstreams
    cfg = settings(cheap, strong, db, shadow={"enabled": True, "judge": {"endpoint": judge_endpoint(judge)}, **shadow})
    return GatewayServer(create_app(cfg, router=KeywordRouter()))  # started by `with`


def _ask(client: httpx.Client, text: str) -> httpx.Response:
    r = client.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                   "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200, r.text
    return r


def test_every_second_request_is_shadowed_judged_labelled_and_triaged(upstreams: Any, tmp_path: Path) -> None:
    cheap, strong, judge = upstreams
    db = tmp_path / "gw.sqlite"
    with _gateway(upstreams, db, every_n=2) as gw, gw.client() as c:
        ids = [_ask(c, f"question number {i}").headers["x-gearshift-request-id"] for i in range(10)]
        loop = gw.gateway.closed_loop
        assert wait_until(lambda: loop.shadow.counts.get("done", 0) == 5)
        gw.flush()
        assert len(cheap.chat_requests) == 10  # production: all cheap
        assert len(strong.chat_requests) == 5  # exactly half shadowed, to the tier the router did not choose
        assert len(judge.chat_requests) == 10  # pairwise, both answer orders
        metrics = c.get("/metrics").text
        triage = c.get("/v1/triage").json()["data"]
    store = SQLiteLabelStore(db)
    labels = {rid: store.get_label(rid) for rid in ids}
    shadowed = [rid for rid in ids if labels[rid] is not None]
    assert shadowed == ids[1::2]
    lab = labels[ids[1]]
    assert lab is not None
    assert lab["label"] == "strong_needed" and lab["min_tier"] == "strong"
    assert lab["scores"] == {"cheap": pytest.approx(2 / 9, abs=1e-6), "strong": pytest.approx(8 / 9, abs=1e-6)}
    assert lab["unparseable"] == 0
    assert 'gearshift_shadow_samples_total{outcome="done"} 5.0' in metrics
    # the disagreement queue holds both answers, the routing decision and the judge's reasoning
    assert sorted(it["request_id"] for it in triage) == sorted(shadowed)
    item = triage[0]
    assert item["answers"] == {"cheap": "cheap guess", "strong": "the strong answer is 42"}
    assert item["routing"]["tier"] == "cheap" and item["routing"]["router"] == "keyword"
    assert "correct" in " ".join(item["judge"]["reasoning"])
    store.close()


def test_user_never_waits_for_the_shadow(upstreams: Any, tmp_path: Path) -> None:
    _, strong, _ = upstreams
    strong.default = Behaviour(latency_s=1.5)
    with _gateway(upstreams, tmp_path / "gw.sqlite", every_n=1) as gw, gw.client() as c:
        t0 = time.perf_counter()
        for i in range(3):
            _ask(c, f"quick {i}")
        elapsed = time.perf_counter() - t0
        assert elapsed < 1.0, f"3 requests took {elapsed:.2f}s with a 1.5s shadow upstream"
        assert gw.gateway.closed_loop.shadow.counts.get("done", 0) == 0  # shadows still in flight
        assert wait_until(lambda: gw.gateway.closed_loop.shadow.counts.get("done", 0) == 3, 5.0)


def test_shadow_budget_is_respected_and_counted(upstreams: Any, tmp_path: Path) -> None:
    _, strong, judge = upstreams
    # one sample = 1 shadow call + 2 judge calls, so 6 calls per hour allow exactly two samples
    with _gateway(upstreams, tmp_path / "gw.sqlite", every_n=1, max_requests_per_hour=6) as gw, gw.client() as c:
        for i in range(5):
            _ask(c, f"budget {i}")
        loop = gw.gateway.closed_loop
        assert wait_until(lambda: loop.shadow.counts.get("done", 0) == 2)
        assert loop.shadow.counts.get("skipped_budget") == 3
        assert len(strong.chat_requests) == 2 and len(judge.chat_requests) == 4
        assert 'gearshift_shadow_samples_total{outcome="skipped_budget"} 3.0' in c.get("/metrics").text


def test_dollar_budget_stops_shadowing(upstreams: Any, tmp_path: Path) -> None:
    _, strong, _ = upstreams
    with _gateway(upstreams, tmp_path / "gw.sqlite", every_n=1, max_usd_per_hour=1e-9) as gw, gw.client() as c:
        _ask(c, "first")
        assert wait_until(lambda: gw.gateway.closed_loop.shadow.counts.get("done", 0) == 1)
        for i in range(3):
            _ask(c, f"after {i}")
        assert gw.gateway.closed_loop.shadow.counts.get("skipped_budget") == 3
        assert len(strong.chat_requests) == 1


def test_triage_label_over_http_and_cli_then_export_reads_as_training_data(upstreams: Any, tmp_path: Path) -> None:
    db = tmp_path / "gw.sqlite"
    with _gateway(upstreams, db, every_n=1) as gw, gw.client() as c:
        ids = [_ask(c, f"triage me {i}").headers["x-gearshift-request-id"] for i in range(3)]
        assert wait_until(lambda: len(c.get("/v1/triage").json()["data"]) == 3)
        # two shadow workers may finish out of order: match triage items to requests by request id
        by_request = {it["request_id"]: it["id"] for it in c.get("/v1/triage").json()["data"]}
        first, second, third = (by_request[rid] for rid in ids)
        r = c.post(f"/v1/triage/{first}/label", json={"label": "strong_needed"})
        assert r.status_code == 200 and r.json()["label"] == "strong_needed"
        bad = c.post(f"/v1/triage/{first}/label", json={"label": "maybe"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "label"
        assert c.post("/v1/triage/99999/label", json={"label": "skip"}).status_code == 404
        assert sorted(it["id"] for it in c.get("/v1/triage").json()["data"]) == sorted([second, third])
    assert main(["triage", "label", str(second), "--label", "cheap_ok", "--db", str(db)]) == 0
    assert main(["triage", "label", str(third), "--label", "skip", "--db", str(db)]) == 0
    out = tmp_path / "triage.jsonl"
    assert main(["triage", "export", "--db", str(db), "--out", str(out)]) == 0
    ds = read_jsonl(out)
    by_id = {r.id: r for r in ds.records}
    assert set(by_id) == set(ids[:2])  # the skipped item is not training data
    assert by_id[ids[0]].outcomes["cheap"].score == 0.0 and by_id[ids[0]].outcomes["strong"].score == 1.0
    assert by_id[ids[1]].outcomes["cheap"].score == 1.0
    assert by_id[ids[0]].prompt == "triage me 0"
    assert ds.model_names() == ["cheap", "strong"]


def test_position_biased_judge_cancels_out_and_unparseable_replies_are_counted(tmp_path: Path) -> None:
    with FakeUpstream(answer="cheap guess") as cheap, FakeUpstream(answer="a strong reply") as strong, \
            JudgeUpstream(biased=True) as biased, JudgeUpstream(garbage=True) as garbage:
        for judge, name in ((biased, "biased"), (garbage, "garbage")):
            db = tmp_path / f"{name}.sqlite"
            cfg = settings(cheap, strong, db, shadow={"enabled": True, "every_n": 1,
                                                      "judge": {"endpoint": judge_endpoint(judge)}})
            with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
                rid = _ask(c, "which is better").headers["x-gearshift-request-id"]
                assert wait_until(lambda gw=gw: gw.gateway.closed_loop.shadow.counts.get("done", 0) == 1)
                metrics = c.get("/metrics").text
            store = SQLiteLabelStore(db)
            lab = store.get_label(rid)
            store.close()
            assert lab is not None
            if name == "biased":  # always "first is better": both orders average to a tie
                assert lab["scores"]["cheap"] == pytest.approx(lab["scores"]["strong"])
                assert lab["label"] == "cheap_ok" and lab["gap"] == pytest.approx(0.0)
            else:
                assert lab["unparseable"] == 2 and lab["label"] is None
                assert 'gearshift_judge_replies_total{outcome="unparseable"} 2.0' in metrics


def test_judge_agreement_with_reviewers_in_the_cli_and_on_the_dashboard(upstreams: Any, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The test judge always prefers the strong answer: it agrees with reviewers on 2 of 3 items, and kappa
    (agreement beyond what always answering "strong_needed" gets by chance) is 0."""
    import json

    db = tmp_path / "gw.sqlite"
    with _gateway(upstreams, db, every_n=1) as gw, gw.client() as c:
        ids = [_ask(c, f"judge me {i}").headers["x-gearshift-request-id"] for i in range(4)]
        assert wait_until(lambda: len(c.get("/v1/triage").json()["data"]) == 4)
        by_request = {it["request_id"]: it["id"] for it in c.get("/v1/triage").json()["data"]}
        for rid, label in zip(ids, ["strong_needed", "strong_needed", "cheap_ok", "skip"], strict=True):
            assert c.post(f"/v1/triage/{by_request[rid]}/label", json={"label": label}).status_code == 200
        shown = c.get("/dashboard/api/summary").json()["judge_agreement"]
        page = c.get("/dashboard").text
    assert shown["overall"]["n"] == 3 and shown["overall"]["agreement"] == pytest.approx(2 / 3)
    assert shown["overall"]["kappa"] == pytest.approx(0.0) and shown["skipped"] == 1
    assert "Judge vs reviewers" in page and "66.7%" in page
    capsys.readouterr()
    assert main(["judge-agreement", "--db", str(db), "--segment", "language", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overall"]["confusion"] == {"cheap_ok": {"cheap_ok": 0, "strong_needed": 1},
                                              "strong_needed": {"cheap_ok": 0, "strong_needed": 2}}
    (lang,) = report["by_segment"]["language"].values()
    assert lang["n"] == 3
    assert main(["judge-agreement", "--db", str(db)]) == 0
    assert "kappa" in capsys.readouterr().out


def test_shadow_judge_cost_and_latency_reach_metrics_labels_and_dashboard_savings(upstreams: Any,
                                                                                   tmp_path: Path) -> None:
    """Priced overheads: what the shadow tiers and the judge cost is in each label, in /metrics, and is taken off
    the dashboard's savings (`savings` net of it, `savings_before_overheads` without)."""
    judge = upstreams[2]
    judge.script(Behaviour(latency_s=0.05, text=None), Behaviour(latency_s=0.05, text=None))
    db = tmp_path / "gw.sqlite"
    with _gateway(upstreams, db, every_n=2) as gw, gw.client() as c:
        for i in range(4):
            _ask(c, f"question number {i}")
        loop = gw.gateway.closed_loop
        assert wait_until(lambda: loop.shadow.counts.get("done", 0) == 2)
        gw.flush()
        metrics = c.get("/metrics").text
        summary = c.get("/dashboard/api/summary").json()
    labels = SQLiteLabelStore(db).labels()
    judge_usd = sum(lab["cost_usd"] for lab in labels)
    shadow_usd = sum(lab["shadow_cost_usd"] for lab in labels)
    # judge endpoint prices: $1/M in and out; the fake upstream counts words as tokens, prompts run to ~80 words
    prompt_words = sum(sum(len(str(m["content"]).split()) for m in r.json["messages"]) for r in judge.chat_requests)
    assert len(judge.chat_requests) == 4 and prompt_words / 1e6 < judge_usd < (prompt_words + 4 * 50) / 1e6
    assert shadow_usd > 0 and len(labels) == 2
    assert any(lab["judge_latency_ms"] >= 50.0 for lab in labels)
    assert _metric(metrics, "gearshift_shadow_judge_cost_usd_total") == pytest.approx(judge_usd)
    assert _metric(metrics, "gearshift_shadow_judge_latency_seconds_count") == 2.0
    cost = summary["cost"]
    assert cost["overheads"]["shadow_judge_usd"] == pytest.approx(judge_usd, abs=1e-8)
    assert cost["overheads"]["shadow_answers_usd"] == pytest.approx(shadow_usd, abs=1e-8)
    strong = cost["all_strong_usd"]
    assert cost["savings_before_overheads"] == pytest.approx(1 - cost["cost_usd"] / strong, abs=1e-5)
    assert cost["savings"] == pytest.approx(1 - (cost["cost_usd"] + judge_usd + shadow_usd) / strong, abs=1e-5)
    assert cost["savings"] < cost["savings_before_overheads"]


def _metric(text: str, name: str) -> float:
    import re

    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert m is not None, f"{name} not in /metrics"
    return float(m.group(1))

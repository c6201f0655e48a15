"""A PostgreSQL `[store] url` reaches every part: the closed loop's tables, `gearshift decisions`, and the
router version registry behind retrain / promote / rollback, the dashboard and `[router] version`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from closed_loop.shadow_harness import JudgeUpstream, KeywordRouter, judge_endpoint, settings, wait_until
from gateway.harness import GatewayServer
from gearshift.cli import main
from gearshift.config import default_data_dir
from gearshift.data.registry import load_dataset
from gearshift.gateway.app import create_app
from gearshift.gateway.build import build_gateway
from gearshift.gateway.dashboard.data import summary
from gearshift.gateway.settings import parse_settings
from gearshift.store.factory import open_decision_store, open_label_store
from gearshift.store.labels import SignalEvent
from gearshift.store.postgres import PgTarget
from gearshift.store.postgres_versions import PostgresVersionRegistry
from support.fake_upstream import FakeUpstream
from support.serve_process import two_tier_toml

pytestmark = [pytest.mark.services]


def _count(url: str, sql: str) -> int:
    target = PgTarget.parse(url)
    with psycopg.connect(target.conninfo, **target.options) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def test_closed_loop_writes_feedback_and_shadow_labels_to_postgresql(pg_url: str, tmp_path: Path) -> None:
    with FakeUpstream(answer="cheap guess") as cheap, FakeUpstream(answer="the strong answer") as strong, \
            JudgeUpstream() as judge:
        cfg = settings(cheap, strong, tmp_path / "unused.sqlite", store={"url": pg_url, "path": str(tmp_path / "x")},
                       shadow={"enabled": True, "every_n": 1, "judge": {"endpoint": judge_endpoint(judge)}})
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                      "messages": [{"role": "user", "content": "what is 6 x 7"}]})
            rid = r.headers["x-gearshift-request-id"]
            loop = gw.gateway.closed_loop
            assert wait_until(lambda: loop.shadow.counts.get("done", 0) == 1, 10)
            gw.flush()  # the decision reaches PostgreSQL, so feedback can find it after the memory is gone
            loop._recent.clear()
            fb = c.post("/v1/feedback", json={"request_id": rid, "signal": "thumbs_down", "comment": "wrong"})
            assert fb.status_code == 201 and fb.json()["tier"] == "cheap"
            triage = c.get("/v1/triage").json()["data"]
    assert not (tmp_path / "unused.sqlite").exists()
    labels = open_label_store(pg_url)
    try:
        lab = labels.get_label(rid)
        assert lab is not None and lab["label"] == "strong_needed" and lab["tier"] == "cheap"
        events = labels.signals(request_id=rid)
        assert [(e["signal"], e["source"], e["comment"]) for e in events] == [("thumbs_down", "explicit", "wrong")]
        assert [it["request_id"] for it in triage] == [rid]
        assert labels.triage_items(status="open")[0]["request_id"] == rid
    finally:
        labels.close()
    assert _count(pg_url, "SELECT COUNT(*) FROM shadow_labels") == 1
    assert _count(pg_url, "SELECT COUNT(*) FROM feedback_events") == 1


def _config(tmp_path: Path, pg_url: str) -> Path:
    cfg = tmp_path / "gw.toml"
    dead = "http://127.0.0.1:9/v1"
    cfg.write_text(two_tier_toml(dead, dead, model="m") + f"""
[store]
url = "{pg_url}"
path = "{tmp_path / 'not-used.sqlite'}"
""", encoding="utf-8")
    return cfg


def test_decisions_and_triage_commands_read_postgresql(pg_url: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    store = open_decision_store(pg_url)
    now = time.time()
    store.append_many([{"request_id": f"pg-{i}", "time": now - i, "tier": "cheap" if i % 2 else "strong",
                        "status": "ok", "route": "auto"} for i in range(5)])
    store.close()
    labels = open_label_store(pg_url)
    labels.add_triage("pg-1", now, 0.7, {"prompt": "p", "answers": {"cheap": "a", "strong": "b"}})
    labels.close()
    capsys.readouterr()
    cfg = _config(tmp_path, pg_url)
    assert main(["decisions", "--config", str(cfg), "--json", "--tier", "strong"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert sorted(r["request_id"] for r in rows) == ["pg-0", "pg-2", "pg-4"]
    assert main(["decisions", "--store-url", pg_url, "--json", "--limit", "2"]) == 0
    assert [json.loads(x)["request_id"] for x in capsys.readouterr().out.splitlines() if x.strip()] == ["pg-0", "pg-1"]
    assert main(["triage", "list", "--config", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["request_id"] == "pg-1"
    assert not (tmp_path / "not-used.sqlite").exists()


STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


def _fill(url: str, n: int = 240) -> None:
    """Logged traffic from a small slice of recorded MMLU outcomes: epsilon-explored tiers, thumbs feedback."""
    ds = load_dataset("mmlu", default_data_dir())
    rng = np.random.default_rng(3)
    ds = ds.subset(np.sort(rng.choice(len(ds), n, replace=False)))
    s_strong, s_weak = ds.scores(STRONG), ds.scores(WEAK)
    now = time.time()
    rows: list[dict[str, Any]] = []
    events = []
    for i in range(n):
        score = float(rng.random())
        explored = bool(rng.random() < 0.4)
        strong = bool(rng.random() < 0.5) if explored else score >= 0.5
        base = 1.0 if score >= 0.5 else 0.0
        p_strong = 0.6 * base + 0.2
        tier = "strong" if strong else "cheap"
        rid = f"l{i:04d}"
        rows.append({"request_id": rid, "time": now - 3600 + i, "route": "auto", "status": "ok", "score": score,
                     "thresholds": [0.5], "tier": tier, "propensity": p_strong if strong else 1 - p_strong,
                     "explored": explored, "tier_probabilities": [1 - p_strong, p_strong], "prompt": ds.prompts[i],
                     "cost_usd": 0.003 if strong else 0.0002, "segment": {"language": "en"}})
        reward = float((s_strong if strong else s_weak)[i])
        events.append(SignalEvent(rid, now - 3000 + i, "thumbs_up" if reward else "thumbs_down", "explicit",
                                  value=reward, tier=tier, decision_time=now - 3600 + i))
    store = open_decision_store(url)
    store.append_many(rows)
    store.close()
    labels = open_label_store(url)
    labels.add_signals(events)
    labels.close()


def test_retrain_promote_rollback_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    _fill(pg_url)
    src = ["--store-url", pg_url, "--since", "7d", "--reward", "feedback"]
    train = ["retrain", *src, "--router", "classifier", "--param", "embedder=hashing:dim=32", "--param", "folds=2",
             "--name", "pg"]
    assert main(train) == 1  # a PostgreSQL store has no file to keep versions beside: --versions-dir is needed
    vdir = tmp_path / "versions"
    assert main([*train, "--versions-dir", str(vdir)]) == 0
    assert main([*train, "--versions-dir", str(vdir)]) == 0
    assert main(["promote", "pg/1", "--force", "--skip-probes", *src]) == 0
    assert main(["promote", "pg/2", "--force", "--skip-probes", *src]) == 0
    reg = PostgresVersionRegistry(pg_url)
    try:
        assert reg.champion() is not None and reg.get("champion").ref == "pg/2"
        assert (vdir / "pg" / "v2" / "manifest.json").exists()
        assert main(["rollback", "--store-url", pg_url]) == 0
        assert reg.get("champion").ref == "pg/1"
        assert {v.ref: v.status for v in reg.all()} == {"pg/1": "champion", "pg/2": "retired"}
        assert [(p.new, p.previous, p.rolled_back) for p in reg.history()] == [("pg/1", None, False),
                                                                               ("pg/2", "pg/1", True)]
        assert reg.get("pg/1").metrics["trained"]["n"] > 0
    finally:
        reg.close()
    assert main(["rollback", "--store-url", pg_url]) == 1  # pg/1 was the first champion: nothing before it
    # every gateway on this database serves the champion, and the dashboard lists the versions
    cfg = parse_settings({
        "tiers": [{"name": "cheap", "deployments": [{"name": "c", "provider": "openai", "model": "m",
                                                     "base_url": "http://127.0.0.1:9/v1"}]},
                  {"name": "strong", "deployments": [{"name": "s", "provider": "openai", "model": "m",
                                                      "base_url": "http://127.0.0.1:9/v1"}]}],
        "router": {"name": "heuristic", "version": "champion"}, "store": {"url": pg_url},
        "signals": {"enabled": False}, "slo": {"enabled": False}}, "test")
    gw = build_gateway(cfg)
    try:
        assert gw.resolver.router.name == "classifier"
        versions = summary(gw, "1h")["versions"]
        assert {v["ref"]: v["status"] for v in versions} == {"pg/1": "champion", "pg/2": "retired"}
        # a promotion reaches the running gateway through the shared registry (what reload_interval_s polls)
        assert gw.reloader is not None and gw.resolver.live.ref == "pg/1"
        assert asyncio.run(gw.reloader.reload(if_changed=True))["changed"] is False
        assert main(["promote", "pg/2", "--force", "--skip-probes", *src]) == 0
        assert asyncio.run(gw.reloader.reload(if_changed=True))["new"] == "pg/2"
        assert gw.resolver.live.ref == "pg/2"
        asyncio.run(gw.reloader.aclose())
    finally:
        if gw.store is not None:
            gw.store.close()

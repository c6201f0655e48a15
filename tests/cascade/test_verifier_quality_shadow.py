"""Verifier quality on shadow-labelled traffic: a real gateway, fake tier upstreams, a content-scoring judge.

The cheap upstream truncates (finish_reason "length") answers to prompts containing TRUNC and refuses
prompts containing REFUSE; the judge scores answers containing "strong" 9, others 3, so exactly those
cheap answers are labelled "strong_needed". Prompts containing HARD go to the strong tier in production,
so their cheap answer comes from the shadow call instead. The JSON prompt asks for a JSON object and
gets one, so the JSON verifier has a verdict on exactly one item (the request's response_format is kept).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from closed_loop.shadow_harness import JudgeUpstream, KeywordRouter, judge_endpoint, settings, wait_until
from gateway.harness import GatewayServer, deployment
from gearshift.cascade.quality import LabelledAnswer
from gearshift.cascade.verifier_quality import (
    evaluate,
    label_answer,
    traffic_verifier_quality,
    verifiers_for,
    wilson,
)
from gearshift.cascade.verifiers import RefusalVerifier, TruncationVerifier
from gearshift.cli import main
from gearshift.gateway.app import create_app
from gearshift.store.labels import SQLiteLabelStore
from support.fake_upstream import Behaviour, FakeUpstream

REFUSAL = "I'm sorry, but I can't help with that."
PROMPTS = [*(f"plain question {i}" for i in range(4)), "TRUNC question 0", "TRUNC question 1",
           "REFUSE question 0", "REFUSE question 1", "HARD plain question", "HARD TRUNC question", "JSON question"]


class CheapUpstream(FakeUpstream):
    """A good cheap answer (the judge's 9), except truncated or refused on the keyword."""

    def _completion(self, req: dict[str, Any], b: Behaviour, text: str) -> dict[str, Any]:
        prompt = str((req.get("messages") or [{}])[-1].get("content", ""))
        if "TRUNC" in prompt:
            return super()._completion(req, replace(b, finish_reason="length"), "the answer starts but then")
        if "REFUSE" in prompt:
            return super()._completion(req, b, REFUSAL)
        if "JSON" in prompt:
            return super()._completion(req, b, '{"answer": "strong enough"}')
        return super()._completion(req, b, "a strong enough cheap answer")


def _run_gateway(db: Path, **store: Any) -> list[str]:
    """Send PROMPTS through a gateway shadowing every request; the request ids once every label is stored."""
    with CheapUpstream() as cheap, FakeUpstream(answer="the strong answer is 42") as strong, \
            JudgeUpstream() as judge:
        cfg = settings(cheap, strong, db, store={"path": str(db), **store},
                       shadow={"enabled": True, "every_n": 1, "judge": {"endpoint": judge_endpoint(judge)}})
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            ids = []
            for text in PROMPTS:
                body: dict[str, Any] = {"model": "gearshift/auto", "messages": [{"role": "user", "content": text}]}
                if "JSON" in text:
                    body["response_format"] = {"type": "json_object"}
                r = c.post("/v1/chat/completions", json=body)
                assert r.status_code == 200, r.text
                ids.append(r.headers["x-gearshift-request-id"])
            shadow = gw.gateway.closed_loop.shadow
            assert wait_until(lambda: shadow.counts.get("done", 0) == len(PROMPTS), 10.0)
            gw.flush()
    return ids


@pytest.fixture(scope="module")
def traffic_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("vq") / "gw.sqlite"
    _run_gateway(db)
    return db


def test_shadow_labels_keep_the_cheap_answer_from_production_and_from_the_shadow_call(traffic_db: Path) -> None:
    store = SQLiteLabelStore(traffic_db)
    labels = store.labels()
    store.close()
    assert len(labels) == len(PROMPTS)
    kept = [lab["cheap_answer"] for lab in labels]
    assert all(k["tier"] == "cheap" and k["text_mode"] == "full" for k in kept)
    assert sorted(k["source"] for k in kept) == ["production"] * 9 + ["shadow"] * 2
    by_source = {(k["source"], k["finish_reason"]) for k in kept if k["content"] == "the answer starts but then"}
    assert by_source == {("production", "length"), ("shadow", "length")}
    assert sum(lab["label"] == "strong_needed" for lab in labels) == 5


def test_truncation_and_refusal_verifiers_are_exact_on_the_labelled_traffic(traffic_db: Path) -> None:
    store = SQLiteLabelStore(traffic_db)
    try:
        verifiers, combine, _ = verifiers_for({"verifiers": ["truncation", "refusal"]})
        report = traffic_verifier_quality(store, verifiers, since=0.0, combine=combine)
    finally:
        store.close()
    assert report.unavailable is None and report.n == 11 and report.correct == 6
    trunc, refusal, both = report.row("truncation"), report.row("refusal"), report.row("combined")
    # truncation rejects the 3 truncated answers (2 production, 1 shadow) and accepts the 2 refusals
    t = trunc.quality
    assert (t.true_accept, t.false_accept, t.false_reject, t.true_reject) == (6, 2, 0, 3)
    assert trunc.recall.value == 1.0 and trunc.precision.value == pytest.approx(6 / 8)
    r = refusal.quality
    assert (r.true_accept, r.false_accept, r.false_reject, r.true_reject) == (6, 3, 0, 2)
    assert both.members == ("truncation", "refusal")
    assert both.precision.value == 1.0 and both.recall.value == 1.0 and both.false_accept_rate.value == 0.0
    assert both.precision.n == 6 and both.false_accept_rate.n == 5
    assert both.precision.low == pytest.approx(wilson(6, 6).low) and both.precision.low < 1.0


def test_cli_on_traffic_uses_the_configs_cascade_verifiers(traffic_db: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    up = FakeUpstream()  # never started: the config only needs deployments to parse
    cfg = tmp_path / "gw.toml"
    deps = [(name, deployment(name, up)) for name in ("cheap-a", "strong")]
    tiers = "".join(f'[[tiers]]\nname = "{n.split("-")[0]}"\n[[tiers.deployments]]\n'
                    + "".join(f"{k} = {json.dumps(v)}\n" for k, v in d.items()) for n, d in deps)
    cfg.write_text(f'[store]\npath = {json.dumps(str(traffic_db))}\n[cascade]\nenabled = true\n'
                   f'verifiers = ["truncation", "refusal", "judge"]\n{tiers}', encoding="utf-8")
    out = tmp_path / "traffic.json"
    assert main(["verifiers", "--config", str(cfg), "--since", "1h", "--json-out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "truncation" in printed and "refusal" in printed and "judge" in printed  # the note on the judge
    rows = {r["verifier"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"truncation", "refusal", "combined"}
    assert rows["combined"]["false_accept"] == 0 and rows["combined"]["true_reject"] == 5
    assert rows["combined"]["precision"]["value"] == 1.0 and rows["combined"]["recall"]["value"] == 1.0
    # --db with every model-less verifier: shape and empty accept everything, so precision is the base rate
    assert main(["verifiers", "--db", str(traffic_db), "--json-out", str(out)]) == 0
    rows = {r["verifier"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["shape"]["precision"]["value"] == pytest.approx(6 / 11)
    assert rows["shape"]["false_accept_rate"]["value"] == 1.0
    assert rows["final_answer"]["accept_rate"]["k"] == 0  # no "####" in chat answers: a math-only check
    assert rows["json"]["no_verdict"] == 10 and rows["json"]["accept_rate"]["k"] == 11  # one verdict: a pass
    # combined: the cascade's default set (no math checks), which catches exactly the bad answers
    assert rows["combined"]["members"] == ["shape", "empty", "truncation", "refusal", "json", "logprob"]
    assert rows["combined"]["true_reject"] == 5 and rows["combined"]["false_reject"] == 0


def test_hashed_text_makes_traffic_quality_unavailable_and_says_why(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEARSHIFT_HASH_KEY", "a key for the hashed store test")
    db = tmp_path / "hashed.sqlite"
    _run_gateway(db, text="hash")
    store = SQLiteLabelStore(db)
    try:
        assert all(lab["cheap_answer"]["content"].startswith("hmac-sha256:") for lab in store.labels())
        report = traffic_verifier_quality(store, verifiers_for(None)[0])
    finally:
        store.close()
    assert report.rows == [] and report.skipped == {"concealed": len(PROMPTS)}
    assert report.unavailable is not None and "[store] text" in report.unavailable
    assert main(["verifiers", "--db", str(db)]) == 1
    assert "[store] text" in capsys.readouterr().err


def test_labels_without_a_kept_answer_fall_back_to_triage_items_and_undecided_ones_are_skipped(
        tmp_path: Path) -> None:
    store = SQLiteLabelStore(tmp_path / "old.sqlite")
    try:
        store.put_label({"request_id": "r1", "time": 1.0, "tier": "cheap", "label": "strong_needed",
                         "scores": {"cheap": 0.1, "strong": 0.9}})
        store.put_label({"request_id": "r2", "time": 2.0, "tier": "cheap", "label": None, "scores": {}})
        store.put_label({"request_id": "r3", "time": 3.0, "tier": "cheap", "label": "cheap_ok",
                         "scores": {"cheap": 0.9, "strong": 0.9}})
        store.add_triage("r1", 1.0, 0.8, {"answers": {"cheap": REFUSAL, "strong": "sure"},
                                          "tier_order": ["cheap", "strong"], "messages": []})
        report = traffic_verifier_quality(store, [RefusalVerifier(), TruncationVerifier()])
    finally:
        store.close()
    assert report.n == 1 and report.skipped == {"undecided": 1, "no_cheap_answer": 1}
    assert report.row("refusal").quality.true_reject == 1
    assert any("triage" in note for note in report.notes)
    item, source = label_answer({"label": "cheap_ok", "cheap_answer": {"content": "fine", "finish_reason": "stop"}})
    assert source == "label" and item is not None and item.correct


def test_wilson_interval_matches_the_textbook_values() -> None:
    iv = wilson(5, 10)
    assert (iv.value, round(iv.low, 4), round(iv.high, 4)) == (0.5, 0.2366, 0.7634)
    assert wilson(0, 10).low == 0.0 and round(wilson(0, 10).high, 4) == 0.2775
    assert wilson(0, 0).to_json()["value"] is None


def test_evaluate_counts_no_verdicts_as_accepts() -> None:
    ask_json = {"messages": [], "response_format": {"type": "json_object"}}
    answer = {"choices": [{"message": {"role": "assistant", "content": "not json"}, "finish_reason": "stop"}]}
    items = [LabelledAnswer(ask_json, answer, False), LabelledAnswer({"messages": []}, answer, True)]
    report = evaluate(verifiers_for({"verifiers": ["json"]})[0], items, source="test")
    (row,) = report.rows
    assert row.no_verdict == 1 and (row.quality.true_accept, row.quality.true_reject) == (1, 1)

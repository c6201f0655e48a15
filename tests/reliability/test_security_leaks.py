"""Security (issue 19): upstream error text is scrubbed before it is cut; the stored text mode reaches every table."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.harness import GatewayServer
from gearshift.gateway.app import create_app
from gearshift.gateway.settings import parse_settings
from gearshift.tracing import TracingSettings, build_tracer
from reliability.conftest import PROMPT, dep, records, settings_for
from support.fake_upstream import Behaviour, FakeUpstream

UPSTREAM_KEY = "sk-proj-" + "Q7w" * 16  # 56 characters, as in the report


def test_a_key_echoed_near_the_cut_reaches_no_client_record_or_span(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEARSHIFT_TEST_UPSTREAM_KEY", UPSTREAM_KEY)
    other = "Bearer abcdefghijklmnopqrstuvwxyz012345"  # a proxy's token, not the deployment's key
    near_cut = "x" * 481 + UPSTREAM_KEY  # the 500-character cut falls inside the key
    bodies = [b'{"error": {"message": "' + near_cut.encode() + b'"}}',
              b'{"error": {"message": "rejected header Authorization: ' + other.encode() + b'"}}',
              b"<html>" + b"y" * 190 + UPSTREAM_KEY.encode() + b"</html>"]  # not JSON: a 200-character cut
    db = tmp_path / "d.sqlite"
    with FakeUpstream() as up:
        up.script(*[Behaviour.status_code(401, body=b) for b in bodies])
        settings = settings_for([dep("cheap", up.base_url, 5.0)], up.base_url, db, deadline_s=5.0)
        raw = settings.model_dump(mode="json")
        raw["tiers"][0]["deployments"][0]["api_key_env"] = "GEARSHIFT_TEST_UPSTREAM_KEY"
        exporter = InMemorySpanExporter()
        app = create_app(parse_settings(raw))
        gw = app.state.gateway
        gw.tracer = build_tracer(TracingSettings(enabled=True, exporter="none"), [d for t in gw.tiers for d in t],
                                 span_processor=SimpleSpanProcessor(exporter))
        server = GatewayServer(app).start()
        try:
            answers = [httpx.post(server.root + "/v1/chat/completions", json={"model": "cheap", "messages": PROMPT},
                                  timeout=10) for _ in bodies]
            recs = records(server, db)
        finally:
            server.stop()
    assert [a.status_code for a in answers] == [502, 502, 502]
    spans = [str(dict(s.attributes or {})) + str(s.status.description) for s in exporter.get_finished_spans()]
    assert len(spans) == 3 and len(recs) == 3
    everything = "\n".join([a.text for a in answers] + [str(r) for r in recs] + spans)
    assert "***" in everything
    for secret in (UPSTREAM_KEY, other[7:]):
        assert secret[:16] not in everything and secret[-16:] not in everything


@pytest.mark.parametrize("mode", ["redact", "hash"])
def test_store_text_mode_covers_triage_judge_reasoning_and_feedback_comments(
        tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEARSHIFT_HASH_KEY", "a key for the leak test, 32 bytes")
    from closed_loop.shadow_harness import JudgeUpstream, KeywordRouter, judge_endpoint, settings, wait_until
    from gearshift.store.labels import SQLiteLabelStore

    prompt, comment = "my card number is 4111-SECRET-PROMPT", "the answer leaked SECRET-COMMENT"
    db = tmp_path / "gw.sqlite"
    with FakeUpstream(answer="cheap guess") as cheap, FakeUpstream(answer="strong ANSWER-TEXT") as strong, \
            JudgeUpstream() as judge:
        cfg = settings(cheap, strong, db, store={"path": str(db), "text": mode},
                       shadow={"enabled": True, "every_n": 1, "judge": {"endpoint": judge_endpoint(judge)}})
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                      "messages": [{"role": "user", "content": prompt}]})
            rid = r.headers["x-gearshift-request-id"]
            loop = gw.gateway.closed_loop
            assert wait_until(lambda: loop.shadow.counts.get("done", 0) == 1)
            gw.flush()
            fb = c.post("/v1/feedback", json={"request_id": rid, "signal": "thumbs_down", "comment": comment})
            triage = c.get("/v1/triage").json()["data"]
    assert r.status_code == 200 and fb.status_code == 201 and len(triage) == 1
    store = SQLiteLabelStore(db)
    try:
        label, signals = store.get_label(rid), store.signals(rid)
    finally:
        store.close()
    assert label is not None and label["label"] is not None and signals[0]["comment"] is not None
    at_rest = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    served = str(triage) + str(label) + str(signals)
    for text in ("SECRET-PROMPT", "SECRET-COMMENT", "ANSWER-TEXT", "is correct"):
        assert text.encode() not in at_rest and text not in served, text


def test_with_keys_metrics_health_details_and_openapi_need_a_key_and_errors_hide_addresses(tmp_path: Path) -> None:
    from gearshift.gateway.settings import hash_key
    from reliability.conftest import running
    from support.fake_upstream import closed_port

    admin, infer = "gs-admin-key-13", "gs-infer-key-13"
    auth = {"keys": [{"id": "ops", "sha256": hash_key(admin), "scopes": ["inference", "admin"]},
                     {"id": "app", "sha256": hash_key(infer), "scopes": ["inference"]}]}
    port = closed_port()
    settings = settings_for([dep("cheap", f"http://127.0.0.1:{port}/v1", 2.0)], f"http://127.0.0.1:{port}/v1",
                            tmp_path / "d.sqlite", deadline_s=3.0, auth=auth)
    with running(settings) as gw, gw.client() as c:
        anon = {p: c.get(p) for p in ("/metrics", "/healthz", "/openapi.json")}
        as_app = c.get("/metrics", headers={"authorization": f"Bearer {infer}"})
        as_ops = {p: c.get(p, headers={"authorization": f"Bearer {admin}"}) for p in ("/metrics", "/healthz")}
        failed = c.post("/v1/chat/completions", json={"model": "cheap", "messages": PROMPT},
                        headers={"authorization": f"Bearer {infer}"})
    assert anon["/metrics"].status_code == 401 and anon["/openapi.json"].status_code == 401
    assert anon["/healthz"].status_code == 200 and anon["/healthz"].json() == {"status": "ok"}  # liveness only
    assert as_app.status_code == 403
    assert as_ops["/metrics"].status_code == 200 and "gearshift_requests" in as_ops["/metrics"].text
    assert "tiers" in as_ops["/healthz"].json()
    assert failed.status_code == 502 and str(port) not in failed.text and "127.0.0.1" not in failed.text


def test_a_keyless_gateway_refuses_foreign_hosts_and_non_json_posts(tmp_path: Path) -> None:
    from reliability.conftest import running

    with FakeUpstream() as up:
        settings = settings_for([dep("cheap", up.base_url, 5.0)], up.base_url, tmp_path / "d.sqlite",
                                auth={"allowed_hosts": ["gw.internal"]})
        body = '{"model": "cheap", "messages": [{"role": "user", "content": "hi"}]}'
        with running(settings) as gw, gw.client() as c:
            rebound = c.get("/dashboard", headers={"host": "attacker.example"})
            rebound_chat = c.post("/v1/chat/completions", content=body,
                                  headers={"host": "attacker.example:80", "content-type": "application/json"})
            simple = c.post("/v1/chat/completions", content=body, headers={"content-type": "text/plain"})
            listed = c.post("/v1/chat/completions", content=body,
                            headers={"host": "gw.internal:8000", "content-type": "application/json"})
            local = c.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        assert len(up.chat_requests) == 2
    assert rebound.status_code == rebound_chat.status_code == 403  # before: 200 (DNS rebinding)
    assert rebound_chat.json()["error"]["code"] == "host_not_allowed"
    assert simple.status_code == 415  # before: 200 (a cross-origin page can send text/plain without preflight)
    assert listed.status_code == local.status_code == 200

"""Every error leaves in the OpenAI error shape, with the right status, and is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx

from gateway.conftest import Upstreams
from gateway.harness import GatewayServer, make_settings, serve
from gearshift.gateway.settings import hash_key
from gearshift.store.base import DecisionQuery


def _error(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert "Traceback" not in r.text
    body = r.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    err: dict[str, object] = body["error"]
    return err


def test_malformed_json_is_400(gateway: GatewayServer) -> None:
    with gateway.client() as c:
        r = c.post("/v1/chat/completions", content=b'{"model": "gearshift/auto", "messages": [',
                   headers={"content-type": "application/json"})
    err = _error(r, 400)
    assert err["type"] == "invalid_request_error" and "JSON" in str(err["message"])


def test_schema_violation_names_the_field(gateway: GatewayServer) -> None:
    with gateway.client() as c:
        no_messages = c.post("/v1/chat/completions", json={"model": "gearshift/auto"})
        bad_role = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": [{"content": "x"}]})
        bad_tokens = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "max_tokens": -3,
                                                          "messages": [{"role": "user", "content": "x"}]})
    assert _error(no_messages, 400)["param"] == "messages"
    err = _error(bad_role, 400)
    assert err["param"] == "messages.0.role" and "messages.0.role" in str(err["message"])
    assert _error(bad_tokens, 400)["param"] == "max_tokens"


def test_unknown_model_is_404_model_not_found(gateway: GatewayServer, upstreams: Upstreams) -> None:
    with gateway.client() as c:
        r = c.post("/v1/chat/completions", json={"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]})
        unknown_router = c.post("/v1/chat/completions",
                                json={"model": "router-nosuch-0.5", "messages": [{"role": "user", "content": "x"}]})
    assert _error(r, 404)["code"] == "model_not_found"
    assert _error(unknown_router, 404)["code"] == "model_not_found"
    assert all(up.chat_requests == [] for up in upstreams.all())


def test_body_over_the_limit_is_413_by_header_and_by_actual_bytes(gateway: GatewayServer) -> None:
    big = b'{"model": "gearshift/auto", "messages": [{"role": "user", "content": "' + b"x" * 30_000 + b'"}]}'

    def chunked() -> Iterator[bytes]:  # no Content-Length: only counting the bytes read can catch it
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    with gateway.client() as c:
        json_type = {"content-type": "application/json"}
        declared = c.post("/v1/chat/completions", content=big, headers=json_type)
        streamed = c.post("/v1/chat/completions", content=chunked(), headers=json_type)
    assert _error(declared, 413)["code"] == "payload_too_large"
    assert _error(streamed, 413)["code"] == "payload_too_large"


def test_auth_required_when_keys_are_configured(upstreams: Upstreams, tmp_path: Path) -> None:
    settings = make_settings([upstreams.cheap_a], upstreams.strong, tmp_path / "d.sqlite",
                             auth={"keys": [{"id": "team-a", "sha256": hash_key("s3cret")}]})
    server = serve(settings)
    body = {"model": "gearshift/auto", "messages": [{"role": "user", "content": "hello"}]}
    try:
        with server.client() as c:
            missing = c.post("/v1/chat/completions", json=body)
            wrong = c.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer nope"})
            models = c.get("/v1/models")
            ok = c.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer s3cret"})
        assert _error(missing, 401)["type"] == "authentication_error"
        _error(wrong, 401)
        _error(models, 401)
        assert ok.status_code == 200
        server.flush()
        store = server.gateway.store
        assert store is not None
        rows = store.query(DecisionQuery(limit=None))
        assert sorted((r["status"], r["api_key_id"]) for r in rows) == [
            ("error", None), ("error", None), ("ok", "team-a")]
        assert "s3cret" not in str(rows)
    finally:
        server.stop()


def test_unknown_path_and_method_use_the_error_shape(gateway: GatewayServer) -> None:
    with gateway.client() as c:
        assert _error(c.get("/v1/nothing-here"), 404)["code"] == "not_found"
        _error(c.get("/v1/chat/completions"), 405)


def test_every_response_has_one_decision_record(gateway: GatewayServer) -> None:
    ok = {"model": "gearshift/auto", "messages": [{"role": "user", "content": "hello"}]}
    with gateway.client() as c:
        responses = [
            c.post("/v1/chat/completions", json=ok),
            c.post("/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}),
            c.post("/v1/chat/completions", content=b"{}", headers={"content-type": "text/plain"}),  # keyless: 415
            c.post("/v1/chat/completions", json={"model": "nope", "messages": ok["messages"]}),
            c.post("/v1/chat/completions", json={**ok, "stream": True}),
        ]
    gateway.flush()
    store = gateway.gateway.store
    assert store is not None
    rows = store.query(DecisionQuery(limit=None))
    assert store.count() == len(responses) == len(rows)
    by_id = {r["request_id"]: r for r in rows}
    for resp in responses:
        rec = by_id[resp.headers["x-gearshift-request-id"]]
        assert rec["http_status"] == resp.status_code
        assert rec["status"] == ("ok" if resp.status_code == 200 else "error")
    assert store.count(DecisionQuery(status="error", limit=None)) == 3

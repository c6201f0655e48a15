"""No 5xx from input: lone surrogates and deep nesting are a 400 before any upstream call; a lone surrogate in
an upstream's answer (already paid for) is replaced, never a crash. A property test drives arbitrary JSON and
Unicode through the real gateway: zero 5xx, and no upstream call for a request that gets a 4xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.harness import GatewayServer
from reliability.conftest import assert_openai_error, dep, records, running, settings_for
from support.fake_upstream import Behaviour, FakeUpstream


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="a plain answer") as server:
        yield server


@pytest.fixture(scope="module")
def gw_db(up: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayServer, Path]]:
    db = tmp_path_factory.mktemp("malformed") / "d.sqlite"
    with running(settings_for([dep("cheap", up.base_url, 5.0)], up.base_url, db, deadline_s=5.0)) as gw:
        yield gw, db


def _post(gw: GatewayServer, raw: bytes) -> httpx.Response:
    return httpx.post(gw.root + "/v1/chat/completions", content=raw, timeout=10,
                      headers={"content-type": "application/json"})


def _body(messages: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"model": "gearshift/auto", "messages": messages, **extra}).encode()  # \ud800 stays escaped


@pytest.mark.parametrize(("raw", "param"), [
    (_body([{"role": "user", "content": "hello \ud800 there friend"}]), "messages.0.content"),  # language detection
    (_body([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a\udc00"},
            {"role": "user", "content": "more"}]), "messages.1.content"),  # conversation pin digest
    (_body([{"role": "user", "content": "hi"}], metadata={"k\udfff": 1}), "metadata"),
])
def test_lone_surrogate_is_a_400_before_any_upstream_call(gw_db: tuple[GatewayServer, Path], up: FakeUpstream,
                                                         raw: bytes, param: str) -> None:
    gw, db = gw_db
    before = len(up.requests)
    r = _post(gw, raw)
    assert r.status_code == 400, r.text
    err = assert_openai_error(r.json())
    assert err["param"] == param and "surrogate" in err["message"]
    assert len(up.requests) == before
    assert records(gw, db)[0]["http_status"] == 400


def test_deep_nesting_is_a_400_not_a_recursion_error(gw_db: tuple[GatewayServer, Path], up: FakeUpstream) -> None:
    gw, _ = gw_db
    before = len(up.requests)
    head = b'{"model":"cheap","messages":[{"role":"user","content":"hi"}],"x":'
    too_deep, within_orjson = (head + b"[" * n + b"]" * n + b"}" for n in (5000, 200))
    for raw in (too_deep, within_orjson):
        r = _post(gw, raw)
        assert r.status_code == 400, r.text
        assert "nested" in assert_openai_error(r.json())["message"]
    assert len(up.requests) == before
    shallow = head + b"[" * 20 + b"]" * 20 + b"}"
    assert _post(gw, shallow).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_lone_surrogate_in_a_paid_answer_is_replaced_not_a_500(gw_db: tuple[GatewayServer, Path], up: FakeUpstream,
                                                               stream: bool) -> None:
    gw, db = gw_db
    up.script(Behaviour(text="half \ud83d of an emoji"))
    first = [{"role": "user", "content": "tell me"}]
    r = httpx.post(gw.root + "/v1/chat/completions", json={"model": "cheap", "messages": first, "stream": stream},
                   timeout=10)
    assert r.status_code == 200, r.text
    if stream:
        assert r.text.rstrip().endswith("data: [DONE]")
        text = "".join((json.loads(line[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                       for line in r.text.splitlines() if line.startswith("data: {"))
    else:
        text = r.json()["choices"][0]["message"]["content"]
    assert text.split() == ["half", "\ufffd", "of", "an", "emoji"]
    rec = records(gw, db)[0]
    assert rec["status"] == "ok" and rec["http_status"] == 200
    # the pinned conversation continues: the next turn, sending the answer back, is routed and answered
    follow = [*first, {"role": "assistant", "content": text}, {"role": "user", "content": "go on"}]
    assert httpx.post(gw.root + "/v1/chat/completions", json={"model": "cheap", "messages": follow},
                      timeout=10).status_code == 200


unicode_text = st.text(st.characters(codec=None, categories=None), max_size=30) | st.sampled_from(
    ["\ud800", "x\udfffy", "\U0001f600", "\x00", "\u202e", "é" * 3, ""])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | unicode_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(unicode_text, inner, max_size=3), max_leaves=12)
message = st.fixed_dictionaries({}, optional={"role": st.sampled_from(["user", "assistant", "system"]) | json_values,
                                              "content": unicode_text | json_values, "name": json_values})
request_body = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["gearshift/auto", "cheap", "strong", ""]) | json_values,
    "messages": st.lists(message, max_size=3) | json_values,
    "stream": st.booleans() | json_values, "max_tokens": st.integers() | json_values, "n": st.integers(0, 3),
    "stream_options": json_values, "tools": json_values, "metadata": json_values}) | json_values
chat_like = st.fixed_dictionaries(  # most examples pass validation, so the text reaches segments, pins, records
    {"model": st.sampled_from(["gearshift/auto", "cheap", "strong"]),
     "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]),
                                                 "content": unicode_text}), min_size=1, max_size=3)},
    optional={"stream": st.booleans(), "user": unicode_text, "metadata": json_values, "tools": json_values})
nesting = st.integers(1, 3000).map(lambda d: '{"model":"cheap","messages":[{"role":"user","content":"hi"}],"x":'
                                  + "[" * d + "]" * d + "}")


@given(body=(chat_like | request_body).map(lambda v: json.dumps(v)) | nesting)
@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_any_json_through_the_gateway_never_5xx_and_a_4xx_costs_no_upstream_call(
        gw_db: tuple[GatewayServer, Path], up: FakeUpstream, body: str) -> None:
    gw, _ = gw_db
    before = len(up.requests)
    r = _post(gw, body.encode())
    assert r.status_code < 500, (r.status_code, r.text, body)
    if r.status_code >= 400:
        assert_openai_error(r.json())
        assert len(up.requests) == before, body

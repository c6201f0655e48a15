"""Upstream faults through the real gateway: a clean OpenAI error within the deadline, or a fallback answer.

Each scenario runs twice: with the faulty deployment alone (the client must get an OpenAI-shaped error with
the honest status of the status table, `errors.UPSTREAM_FAILURES`, before the whole-request deadline, even
from a server trickling one byte a second), and with a healthy
deployment behind it (a fault before the first token must be invisible: a complete answer). A stream cut
after the first token cannot be rescued; it must never look like a success to the client, the decision
record or /metrics.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gearshift.providers.openai_compat import OpenAICompatProvider
from reliability.conftest import assert_openai_error, chat, dep, records, request_counts, running, settings_for
from support.fake_upstream import Behaviour, FakeUpstream, closed_port

SOLO_DEADLINE_S = 1.0
FALLBACK_DEADLINE_S = 2.5
SLACK_S = 0.6
MAX_RESPONSE_BYTES = 100_000

REFUSED = Behaviour(kind="refused")  # not served: the deployment points at a closed port

BEFORE_FIRST_TOKEN: dict[str, tuple[Behaviour, bool]] = {
    "refused": (REFUSED, False),
    "timeout_before_headers": (Behaviour(latency_s=30.0), False),
    "headers_then_stalled_body": (Behaviour.stall_body(), False),
    "malformed_json": (Behaviour.malformed_json(), False),
    "429_retry_after": (Behaviour.status_code(429, retry_after="1"), False),
    "429_no_retry_after": (Behaviour.status_code(429), False),
    "500": (Behaviour.status_code(500), False),
    "502": (Behaviour.status_code(502), False),
    "503": (Behaviour.status_code(503), False),
    "200_error_body": (Behaviour.error_body_200(), False),
    "oversized": (Behaviour.oversized(4 * MAX_RESPONSE_BYTES), False),
    "trickle_1_byte_per_s": (Behaviour.trickle(bytes_per_tick=1, tick_s=1.0), False),
    "400_bad_request": (Behaviour.status_code(400), False),
    "stream_refused": (REFUSED, True),
    "stream_timeout_before_headers": (Behaviour(latency_s=30.0), True),
    "stream_headers_then_stalled_body": (Behaviour.stall_body(), True),
    "stream_stalls_before_first_token": (Behaviour.stall_stream(after_chunks=1), True),
    "stream_closed_before_first_token": (Behaviour.cut_stream(after_chunks=1), True),
    "stream_malformed_sse": (Behaviour.malformed_sse(), True),
    "stream_429": (Behaviour.status_code(429, retry_after="1"), True),
    "stream_503": (Behaviour.status_code(503), True),
    "stream_200_error_body": (Behaviour.error_body_200(), True),
    "stream_400_bad_request": (Behaviour.status_code(400), True),
}

#: what the client gets when the faulty deployment is alone: (HTTP status, error code, Retry-After header)
FAILED = (502, "all_deployments_failed", None)
TIMEOUT = (504, "upstream_timeout", None)
EXPECTED: dict[str, tuple[int, str, str | None]] = {
    "refused": FAILED, "timeout_before_headers": TIMEOUT, "headers_then_stalled_body": TIMEOUT,
    "malformed_json": FAILED, "429_retry_after": (429, "upstream_rate_limited", "1"),
    "429_no_retry_after": (429, "upstream_rate_limited", None), "500": FAILED, "502": FAILED, "503": FAILED,
    "200_error_body": FAILED, "oversized": (502, "upstream_response_too_large", None),
    "trickle_1_byte_per_s": TIMEOUT, "400_bad_request": (400, "upstream_bad_request", None),
    "stream_refused": FAILED, "stream_timeout_before_headers": TIMEOUT, "stream_headers_then_stalled_body": TIMEOUT,
    "stream_stalls_before_first_token": TIMEOUT, "stream_closed_before_first_token": FAILED,
    "stream_malformed_sse": FAILED, "stream_429": (429, "upstream_rate_limited", "1"), "stream_503": FAILED,
    "stream_200_error_body": FAILED, "stream_400_bad_request": (400, "upstream_bad_request", None),
}
#: a cut answer is an error of its own, never replaced by the next deployment's answer
NO_FAILOVER = {"oversized"}

AFTER_FIRST_TOKEN: dict[str, Behaviour] = {
    "stream_stalls_midway": Behaviour.stall_stream(after_chunks=3),
    "stream_closed_midway_without_done": Behaviour.cut_stream(after_chunks=3),
    "stream_connection_dropped_midway": Behaviour.cut_stream(after_chunks=3, abort=True),
}


def _faulty_url(up: FakeUpstream, b: Behaviour) -> str:
    if b.kind == "refused":
        return f"http://127.0.0.1:{closed_port()}/v1"
    up.default = b
    return up.base_url


def _providers() -> dict[str, OpenAICompatProvider]:
    return {"openai": OpenAICompatProvider(max_response_bytes=MAX_RESPONSE_BYTES)}


@pytest.mark.parametrize("name", list(BEFORE_FIRST_TOKEN))
def test_fault_without_fallback_is_a_clean_error_within_the_deadline(
        name: str, ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    behaviour, stream = BEFORE_FIRST_TOKEN[name]
    faulty, healthy = ups
    db = tmp_path / "d.sqlite"
    # The deployment's own timeout is long: only the whole-request deadline can end a trickle in time.
    settings = settings_for([dep("faulty", _faulty_url(faulty, behaviour), 10.0)], healthy.base_url, db,
                            deadline_s=SOLO_DEADLINE_S)
    with running(settings, providers=_providers()) as gw:
        out = chat(gw, "faulty", stream=stream)
        counts = request_counts(gw)
        recs = records(gw, db)
    assert out.elapsed_s < SOLO_DEADLINE_S + SLACK_S, out.elapsed_s
    status, code, retry_after = EXPECTED[name]
    assert out.status == status, out.raw
    err = assert_openai_error(out.body)
    assert err["code"] == code and "Traceback" not in out.raw
    assert out.headers.get("retry-after") == retry_after
    if status == 400:  # the upstream's own words reach the client
        assert "upstream 'faulty' returned HTTP 400: fake upstream status 400" in err["message"], err
    assert recs[0]["error_type"] == code
    assert [r["status"] for r in recs] == ["error"] and recs[0]["http_status"] == out.status
    assert recs[0]["attempts"] and recs[0]["attempts"][-1]["outcome"] == "error"
    assert counts == {"error": 1.0}


@pytest.mark.parametrize("name", [n for n in BEFORE_FIRST_TOKEN if n not in NO_FAILOVER])
def test_fault_before_first_token_with_fallback_gives_a_complete_answer(
        name: str, ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    behaviour, stream = BEFORE_FIRST_TOKEN[name]
    faulty, healthy = ups
    db = tmp_path / "d.sqlite"
    cheap = [dep("faulty", _faulty_url(faulty, behaviour), 0.5), dep("healthy", healthy.base_url, 5.0)]
    settings = settings_for(cheap, healthy.base_url, db, deadline_s=FALLBACK_DEADLINE_S)
    with running(settings, providers=_providers()) as gw:
        out = chat(gw, "gearshift/auto", stream=stream)
        counts = request_counts(gw)
        recs = records(gw, db)
    assert out.status == 200, out.raw
    assert out.elapsed_s < FALLBACK_DEADLINE_S + SLACK_S
    if stream:
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in out.events[:-1] if c["choices"])
        assert out.events[-1] == "[DONE]"
    else:
        text = out.body["choices"][0]["message"]["content"]
    assert text == "healthy fallback answer"
    assert [r["status"] for r in recs] == ["ok"] and recs[0]["deployment"] == "healthy"
    outcomes = [(a["deployment"], a["outcome"]) for a in recs[0]["attempts"]]
    assert outcomes == [("faulty", "error"), ("healthy", "ok")]
    assert counts == {"ok": 1.0}


@pytest.mark.parametrize("stream", [False, True])
def test_answer_cut_at_max_response_bytes_is_never_replaced_by_the_fallback(
        stream: bool, ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    faulty, healthy = ups
    faulty.default = Behaviour(text="word " * 400)  # about 2 kB of answer, over this deployment's own limit
    db = tmp_path / "d.sqlite"
    cheap = [dep("faulty", faulty.base_url, 5.0, max_response_bytes=1000), dep("healthy", healthy.base_url, 5.0)]
    with running(settings_for(cheap, healthy.base_url, db, deadline_s=FALLBACK_DEADLINE_S)) as gw:
        out = chat(gw, "gearshift/auto", stream=stream)
        recs = records(gw, db)
    assert healthy.chat_requests == []
    assert [(a["deployment"], a["outcome"]) for a in recs[0]["attempts"]] == [("faulty", "error")]
    assert "max_response_bytes limit (1000 bytes)" in recs[0]["attempts"][0]["error_message"]
    if stream and out.status == 200:  # the cap was passed after the first words were sent: a cut stream
        assert "[DONE]" not in out.events
        assert assert_openai_error(out.events[-1])["code"] == "upstream_response_too_large"
        assert recs[0]["status"] == "truncated"
    else:
        assert (out.status, assert_openai_error(out.body)["code"]) == (502, "upstream_response_too_large")
        assert recs[0]["status"] == "error"
    assert recs[0]["error_type"] == "upstream_response_too_large"


@pytest.mark.parametrize("fallback", [False, True], ids=["solo", "with_fallback"])
@pytest.mark.parametrize("name", list(AFTER_FIRST_TOKEN))
def test_stream_cut_after_first_token_is_never_a_success(
        name: str, fallback: bool, ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    faulty, healthy = ups
    faulty.default = AFTER_FIRST_TOKEN[name]
    db = tmp_path / "d.sqlite"
    cheap = [dep("faulty", faulty.base_url, 10.0)] + ([dep("healthy", healthy.base_url, 5.0)] if fallback else [])
    settings = settings_for(cheap, healthy.base_url, db, deadline_s=SOLO_DEADLINE_S)
    with running(settings) as gw:
        out = chat(gw, "gearshift/auto", stream=True)
        counts = request_counts(gw)
        recs = records(gw, db)
    assert out.elapsed_s < SOLO_DEADLINE_S + SLACK_S
    assert out.status == 200  # headers were sent with the first token
    assert "[DONE]" not in out.events, "a cut stream must not end like a complete one"
    assert any(c.get("choices") and c["choices"][0]["delta"].get("content") for c in out.events[:-1])
    assert_openai_error(out.events[-1])
    assert [r["status"] for r in recs] == ["truncated"]
    assert recs[0]["deployment"] == "faulty" and recs[0]["attempts"][-1]["after_first_token"] is True
    assert counts == {"truncated": 1.0}
    assert healthy.chat_requests == []  # switching mid-answer would duplicate or contradict text


def test_retry_after_is_honoured_on_the_same_deployment(ups: tuple[FakeUpstream, FakeUpstream],
                                                        tmp_path: Path) -> None:
    faulty, healthy = ups
    faulty.script(Behaviour.status_code(429, retry_after="0.4"))
    db = tmp_path / "d.sqlite"
    settings = settings_for([dep("faulty", faulty.base_url, 2.0)], healthy.base_url, db, deadline_s=2.0,
                            reliability={"max_retries": 1})
    with running(settings) as gw:
        out = chat(gw, "faulty")
        recs = records(gw, db)
    assert out.status == 200 and out.elapsed_s >= 0.4
    gap = faulty.chat_requests[1].received_at - faulty.chat_requests[0].received_at
    assert gap >= 0.38
    assert [a["outcome"] for a in recs[0]["attempts"]] == ["error", "ok"]


@pytest.mark.parametrize("stream", [False, True])
def test_every_deployment_rate_limited_is_a_429_with_the_smallest_retry_after(
        stream: bool, ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    a, b = ups
    a.default, b.default = Behaviour.status_code(429, retry_after="7"), Behaviour.status_code(429, retry_after="2")
    db = tmp_path / "d.sqlite"
    settings = settings_for([dep("a", a.base_url, 5.0), dep("b", b.base_url, 5.0)], b.base_url, db,
                            deadline_s=FALLBACK_DEADLINE_S)
    with running(settings) as gw:
        out = chat(gw, "gearshift/auto", stream=stream)
        mixed_up = (b.script(Behaviour.status_code(503)), chat(gw, "gearshift/auto", stream=stream))[1]
        recs = records(gw, db)
    assert (out.status, out.headers.get("retry-after")) == (429, "2")
    assert assert_openai_error(out.body)["type"] == "rate_limit_error"
    assert [a["retry_after_s"] for a in recs[-1]["attempts"]] == [7.0, 2.0]
    # one deployment rate-limited, the other down: the service failed, the client should not just wait
    assert (mixed_up.status, mixed_up.headers.get("retry-after")) == (502, None)

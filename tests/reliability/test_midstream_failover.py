"""Mid-stream failover (`[reliability] midstream_failover`): a stream cut after text continues on the next
deployment that can continue a prefix, re-asked with the partial answer; the client sees one whole answer,
the record lists both attempts. Off, or towards a deployment that cannot continue, the stream is cut."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reliability.conftest import assert_openai_error, chat, dep, records, running, settings_for
from support.fake_upstream import Behaviour, FakeUpstream

ANSWER = "one two three four five six seven"
CUTS = {"cut": Behaviour.cut_stream(after_chunks=3), "dropped": Behaviour.cut_stream(after_chunks=3, abort=True),
        "stalled": Behaviour.stall_stream(after_chunks=3)}


def _text(events: list[Any]) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events
                   if isinstance(e, dict) and e.get("choices"))


def _setup(ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path, cut: str, *, enabled: bool,
           continuation: str) -> tuple[Any, Path]:
    faulty, healthy = ups
    faulty.answer = healthy.answer = ANSWER  # replicas of one model: the continuation is the same answer's rest
    faulty.default = CUTS[cut]
    db = tmp_path / "d.sqlite"
    cheap = [dep("faulty", faulty.base_url, 5.0, idle_timeout_s=0.3),
             dep("healthy", healthy.base_url, 5.0, continuation=continuation)]
    return settings_for(cheap, healthy.base_url, db, deadline_s=5.0,
                        reliability={"midstream_failover": enabled}), db


@pytest.mark.parametrize("cut", list(CUTS))
def test_a_cut_stream_continues_on_the_next_deployment_as_one_answer(
        cut: str, ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    settings, db = _setup(ups, tmp_path, cut, enabled=True, continuation="vllm")
    with running(settings) as gw:
        out = chat(gw, "gearshift/auto", stream=True)
        recs = records(gw, db)
    assert out.status == 200 and out.events[-1] == "[DONE]"
    assert _text(out.events) == ANSWER
    assert len({e["id"] for e in out.events if isinstance(e, dict)}) == 1
    sent = ups[1].chat_requests[-1].json
    assert sent["messages"][-1] == {"role": "assistant", "content": "one two"}
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
    rec = recs[0]
    assert rec["status"] == "ok" and rec["deployment"] == "healthy"
    steps = [(a["deployment"], a["outcome"], a["after_first_token"]) for a in rec["attempts"]]
    assert steps == [("faulty", "error", True), ("healthy", "ok", False)]


@pytest.mark.parametrize(("enabled", "continuation"), [(False, "vllm"), (True, "none")], ids=["off", "cannot"])
def test_without_a_deployment_that_can_continue_the_stream_is_cut(
        enabled: bool, continuation: str, ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    settings, db = _setup(ups, tmp_path, "cut", enabled=enabled, continuation=continuation)
    with running(settings) as gw:
        out = chat(gw, "gearshift/auto", stream=True)
        recs = records(gw, db)
    assert "[DONE]" not in out.events and _text(out.events) == "one two"
    assert_openai_error(out.events[-1])
    assert recs[0]["status"] == "truncated"
    assert ups[1].chat_requests == []

"""Explicit feedback over HTTP and implicit signals (regeneration, correction, abandonment) through the gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from closed_loop.shadow_harness import KeywordRouter, settings, wait_until
from gateway.harness import GatewayServer
from gearshift.cli import main
from gearshift.closed_loop.signals import ImplicitSignals, is_correction, signal_rates
from gearshift.gateway.app import create_app
from gearshift.store.labels import SQLiteLabelStore
from support.fake_upstream import FakeUpstream


def _chat(messages: list[dict[str, str]]) -> dict[str, object]:
    return {"model": "gearshift/auto", "messages": messages}


def test_feedback_regeneration_and_correction_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "gw.sqlite"
    with FakeUpstream(answer="Paris is in Germany.") as cheap, FakeUpstream(answer="strong") as strong:
        cfg = settings(cheap, strong, db)
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            first = [{"role": "user", "content": "Where is Paris?"}]
            c.post("/v1/chat/completions", json=_chat(first))
            # the same first-turn prompt again, no conversation: another user (or a benchmark), not a regeneration
            r1 = c.post("/v1/chat/completions", json=_chat(first))
            rid1 = r1.headers["x-gearshift-request-id"]
            follow = [*first, {"role": "assistant", "content": "Paris is in Germany."},
                      {"role": "user", "content": "No, that's wrong. Paris is in France, right?"}]
            r2 = c.post("/v1/chat/completions", json=_chat(follow))
            r3 = c.post("/v1/chat/completions", json=_chat(follow))  # same prior turns: the user hit "regenerate"
            rid2, rid3 = r2.headers["x-gearshift-request-id"], r3.headers["x-gearshift-request-id"]
            hard = c.post("/v1/chat/completions", json=_chat([{"role": "user", "content": "HARD proof"}]))
            rid_hard = hard.headers["x-gearshift-request-id"]

            ok = c.post("/v1/feedback", json={"request_id": rid3, "signal": "thumbs_down", "comment": "meh"})
            assert ok.status_code == 201 and ok.json()["tier"] == "cheap"
            assert c.post("/v1/feedback", json={"request_id": rid_hard, "signal": "handoff"}).status_code == 201
            unknown = c.post("/v1/feedback", json={"request_id": "gs-nope", "signal": "thumbs_up"})
            assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "request_id"
            bad = c.post("/v1/feedback", json={"request_id": rid3, "signal": "rating", "value": 7})
            assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
            assert c.post("/v1/feedback", json={"request_id": rid3, "signal": "smile"}).status_code == 400
            loop = gw.gateway.closed_loop
            assert wait_until(lambda: sum(loop.signal_counts.values()) == 4)
            gw.flush()
    store = SQLiteLabelStore(db)
    wait_until(lambda: len(store.signals()) == 4)
    got = {(e["signal"], e["request_id"], e["source"]) for e in store.signals()}
    assert got == {("correction", rid1, "implicit"), ("regeneration", rid2, "implicit"),
                   ("thumbs_down", rid3, "explicit"), ("handoff", rid_hard, "explicit")}
    rates = {(r.signal, r.group): r for r in signal_rates(store, 0.0, 2e9)}
    store.close()
    assert rates[("regeneration", "tier=cheap")].decisions == 4 and rates[("regeneration", "tier=cheap")].hits == 1
    assert rates[("handoff", "tier=strong")].rate == 1.0
    assert rates[("correction", "*")].rate == pytest.approx(1 / 5)
    capsys.readouterr()
    assert main(["signals", "--db", str(db), "--since", "1h", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert {"signal": "handoff", "group": "tier=strong", "decisions": 1, "hits": 1, "rate": 1.0} in lines


@pytest.mark.parametrize("text", [
    "No, I meant the other one", "That's wrong, try again", "Non, je voulais dire Lyon", "c'est faux",
    "Nein, ich meinte Berlin", "Eso está mal", "não, eu quis dizer", "Нет, я имел в виду другое", "不对，我的意思是",
    "違います",
])
def test_corrections_are_recognised_in_several_languages(text: str) -> None:
    assert is_correction(text)


@pytest.mark.parametrize("text", ["Now write the tests", "What is wrong with this code?", "I know what you meant"])
def test_ordinary_follow_ups_are_not_corrections(text: str) -> None:
    assert not is_correction(text)


def test_abandonment_is_attributed_to_the_request_itself() -> None:
    sig = ImplicitSignals()
    rec = {"request_id": "gs-1", "time": 1.0, "tier": "strong", "status": "client_disconnected",
           "segment": {"language": "en", "length_bucket": "short", "has_code": False}}
    events = sig.observe(rec, [{"role": "user", "content": "hi"}], None, "partial")
    assert [(e.signal, e.request_id, e.tier) for e in events] == [("abandonment", "gs-1", "strong")]


def test_regeneration_only_within_the_window_and_same_key() -> None:
    sig = ImplicitSignals(regeneration_window_s=60.0)
    msgs = [{"role": "user", "content": "tell me a joke"}]

    def rec(rid: str, t: float, key: str | None = None) -> dict[str, object]:
        return {"request_id": rid, "time": t, "tier": "cheap", "status": "ok", "api_key_id": key}

    conv = "chat-42"  # the client's conversation header: the identity a regeneration needs
    assert sig.observe(rec("a", 0.0), msgs, conv, "joke") == []
    assert sig.observe(rec("b", 30.0, "other-key"), msgs, conv, "joke") == []  # another client's identical prompt
    assert [e.request_id for e in sig.observe(rec("c", 200.0), msgs, conv, "joke")] == []  # too late
    assert [e.request_id for e in sig.observe(rec("d", 210.0), msgs, conv, "joke")] == ["c"]
    assert sig.observe(rec("e", 220.0), msgs, "chat-43", "joke") == []  # same text, another conversation


def test_a_repeated_first_turn_without_a_conversation_is_not_a_regeneration() -> None:
    """A benchmark (or two users) sending one prompt many times under one key: no signal per request."""
    sig = ImplicitSignals()
    first = [{"role": "user", "content": "What is the capital of France?"}]
    rec = {"tier": "cheap", "status": "ok", "api_key_id": "k1"}
    assert all(sig.observe({**rec, "request_id": f"r{i}", "time": float(i)}, first, None, "Paris") == []
               for i in range(20))
    # the same prior turns and the same last message again: the user asked for another answer
    turn2 = [*first, {"role": "assistant", "content": "Paris"}, {"role": "user", "content": "And of Spain?"}]
    assert sig.observe({**rec, "request_id": "t1", "time": 30.0}, turn2, None, "Madrid") == []
    events = sig.observe({**rec, "request_id": "t2", "time": 31.0}, turn2, None, "Madrid.")
    assert [(e.signal, e.request_id) for e in events] == [("regeneration", "t1")]


def test_the_edit_memory_keeps_only_the_start_of_a_long_message() -> None:
    """50,000 remembered turns must not hold a pasted document word by word: only the first characters count."""
    from gearshift.closed_loop.signals import EDIT_CHARS, words

    document = " ".join(f"word{i}" for i in range(20_000))
    kept = words(document)
    assert kept and len(kept) <= EDIT_CHARS // 2
    assert words("Please fix " + document) != words("Please fix this bug")


def test_signals_and_triage_on_a_store_without_any_say_where_they_come_from(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    SQLiteLabelStore(tmp_path / "gw.sqlite").close()
    assert main(["signals", "--db", str(tmp_path / "gw.sqlite"), "--since", "1h"]) == 0
    out = capsys.readouterr()
    assert out.out == ""  # no empty table
    assert "no downstream signals on decisions since 1h ago" in out.err and "POST /v1/feedback" in out.err
    assert main(["triage", "list", "--db", str(tmp_path / "gw.sqlite")]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "no triage items (open): a decision joins the queue when [shadow] routing" in out.err

"""One contract for every store backend: SQLite and PostgreSQL must behave the same to the gateway and the CLI.

Each test runs twice (the `store_url` fixture is parametrised); PostgreSQL runs on the local server in a
fresh schema per test.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from gearshift.errors import ConfigError
from gearshift.store.base import DecisionQuery, DecisionStore
from gearshift.store.factory import open_decision_store, open_label_store
from gearshift.store.labels import SignalEvent
from gearshift.store.writer import BackgroundWriter


def _rec(i: int, tier: str = "cheap", status: str = "ok", **extra: Any) -> dict[str, Any]:
    return {"request_id": f"req-{i:05d}", "time": 1_700_000_000.0 + i, "tier": tier, "status": status,
            "segment": {"language": "en", "length_bucket": "short", "has_code": False, "turn": 1}, **extra}


@pytest.fixture
def store(store_url: str) -> Any:
    s = open_decision_store(store_url)
    yield s
    s.close()


def test_store_satisfies_the_protocol(store: DecisionStore) -> None:
    assert isinstance(store, DecisionStore)


def test_filters_order_limit_and_count(store: DecisionStore) -> None:
    assert store.append_many([_rec(0), _rec(1, "strong"), _rec(2, "strong", "error"), _rec(3)]) == 4
    assert [r["request_id"] for r in store.query(DecisionQuery(tier="strong"))] == ["req-00002", "req-00001"]
    assert [r["request_id"] for r in store.query(DecisionQuery(since=1_700_000_002.0))] == ["req-00003", "req-00002"]
    assert [r["request_id"] for r in store.query(DecisionQuery(limit=2))] == ["req-00003", "req-00002"]
    assert store.count() == 4
    assert store.count(DecisionQuery(tier="cheap", status="ok")) == 2
    assert store.count(DecisionQuery(status="error")) == 1
    assert store.append_many([]) == 0


def test_records_round_trip_exactly(store: DecisionStore) -> None:
    rec = _rec(7, attempts=[{"deployment": "a", "ok": False, "status": 503}, {"deployment": "b", "ok": True}],
               reason="score 0.71 ≥ 0.5 → strong; 日本語", score=0.7125, cost_usd=None, cascade=[], stream=True)
    store.append_many([rec])
    (got,) = store.query(DecisionQuery())
    assert got == json.loads(json.dumps(rec))


def test_values_json_cannot_carry_still_store_and_read_back(store: DecisionStore) -> None:
    """The record's JSON is encoded by orjson (store/schema.py `record_json`): a NaN reads back as null (as its
    column does), an integer past 64 bits and non-string keys take the json module's path, NUL and non-ASCII
    text survive, and nothing is refused."""
    nan_rec = _rec(1, score=float("nan"), reason="naïve \x00 ✓", attempts=[{"deployment": "a", "status": 503}])
    big = _rec(2, attempts=[{"tokens": 2**70}], cascade=[{1: "int key"}])
    assert store.append_many([nan_rec, big]) == 2
    got = {r["request_id"]: r for r in store.query(DecisionQuery())}
    assert got["req-00001"]["score"] is None
    assert got["req-00001"]["reason"] in ("naïve \x00 ✓", "naïve \ufffd ✓")  # PostgreSQL's JSONB refuses NUL
    assert got["req-00001"]["attempts"] == [{"deployment": "a", "status": 503}]
    assert got["req-00002"]["attempts"] == [{"tokens": 2**70}]
    assert got["req-00002"]["cascade"] == [{"1": "int key"}]


def test_same_request_id_is_stored_once_and_the_last_write_wins(store: DecisionStore) -> None:
    """Spool replay and retries re-send records: the log must still hold each request once."""
    store.append_many([_rec(1, status="error")])
    store.append_many([_rec(1, status="ok"), _rec(2)])
    assert store.count() == 2
    assert store.query(DecisionQuery(status="ok", tier="cheap"))[-1]["request_id"] == "req-00001"
    assert store.count(DecisionQuery(status="error")) == 0


def test_background_writer_batches_into_the_store_from_its_thread(store: DecisionStore) -> None:
    writer = BackgroundWriter(store, batch_size=64).start()
    senders = [threading.Thread(target=lambda k=k: [writer.submit(_rec(k * 1000 + i)) for i in range(150)])
               for k in range(3)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    assert writer.flush(10)
    writer.close()
    assert store.count() == 450 and writer.written == 450 and writer.failed == 0


def test_a_reopened_store_sees_earlier_writes(store_url: str) -> None:
    first = open_decision_store(store_url)
    first.append_many([_rec(i) for i in range(10)])
    first.close()
    second = open_decision_store(store_url)
    assert second.count() == 10
    second.close()


def test_label_store_contract(store_url: str, store: DecisionStore) -> None:
    labels = open_label_store(store_url)
    try:
        store.append_many([_rec(1), _rec(2, "strong")])
        assert labels.decision("req-00001") is not None and labels.decision("missing") is None

        labels.put_label({"request_id": "req-00001", "time": 5.0, "tier": "cheap", "label": "cheap_ok", "gap": 0.1})
        labels.put_label({"request_id": "req-00001", "time": 6.0, "tier": "cheap", "label": "strong_needed",
                          "gap": 0.4})
        assert labels.get_label("req-00001") == {"request_id": "req-00001", "time": 6.0, "tier": "cheap",
                                                 "label": "strong_needed", "gap": 0.4}
        assert labels.get_label("req-00002") is None

        first = labels.add_triage("req-00001", 10.0, 0.4, {"prompt": "why?"})
        labels.add_triage("req-00001", 11.0, 0.9, {"prompt": "dup"})  # already queued: ignored
        second = labels.add_triage("req-00002", 12.0, 0.2, {"prompt": "how?"})
        assert first > 0 and second > first
        assert [i["request_id"] for i in labels.triage_items()] == ["req-00001", "req-00002"]
        assert labels.triage_items()[0]["prompt"] == "why?"
        done = labels.set_triage_label(first, "strong_needed", 20.0)
        assert done is not None and done["label"] == "strong_needed" and done["labelled_at"] == 20.0
        assert [i["id"] for i in labels.triage_items(status="open")] == [second]
        assert [i["id"] for i in labels.triage_items(status="labelled")] == [first]
        assert labels.set_triage_label(999_999, "skip", 1.0) is None
        with pytest.raises(ConfigError):
            labels.set_triage_label(first, "maybe", 1.0)

        seg = {"language": "en", "length_bucket": "short", "has_code": "no"}
        n = labels.add_signals([
            SignalEvent("req-00001", 1_700_000_100.0, "thumbs_down", "explicit", value=-1.0, tier="cheap",
                        segment=seg, decision_time=1_700_000_001.0),
            SignalEvent("req-00001", 1_700_000_101.0, "regenerate", "implicit", tier="cheap", segment=seg,
                        decision_time=1_700_000_001.0),
        ])
        assert n == 2
        got = labels.signals(request_id="req-00001")
        assert [s["signal"] for s in got] == ["thumbs_down", "regenerate"] and got[0]["segment"] == seg
        groups = labels.signal_groups(1_700_000_000.0, 1_700_000_010.0)
        assert sorted(g[0] for g in groups) == ["regenerate", "thumbs_down"]
        decisions = dict((tier, (segment, k)) for tier, segment, k in labels.decision_groups(1.0, 2e9))
        assert decisions["cheap"] == (json.dumps(seg), 1)  # same segment JSON as the signals: rates can join
        assert groups[0][2] == json.dumps(seg)
    finally:
        labels.close()

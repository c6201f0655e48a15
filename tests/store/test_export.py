"""`gearshift export` on both backends: Parquet partitioned by date that pyarrow reads back, labels joined."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from gearshift.cli import main
from gearshift.store.factory import open_decision_store, open_label_store
from gearshift.store.labels import SignalEvent

DAY = 86_400.0


def _rec(i: int, t: float, tier: str) -> dict[str, Any]:
    return {"request_id": f"exp-{i}", "time": t, "tier": tier, "status": "ok", "score": 0.1 * i,
            "thresholds": [0.5], "segment": {"language": "en", "length_bucket": "short", "has_code": i % 2 == 0,
                                             "turn": 1},
            "attempts": [{"deployment": "d", "outcome": "ok"}], "tokens_in": 10 + i, "cost_usd": 0.001 * i}


def test_export_writes_date_partitions_with_labels_and_feedback(store_url: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import time

    now = time.time()
    today, two_days_ago = now - 60, now - 2 * DAY
    store = open_decision_store(store_url)
    store.append_many([_rec(1, today, "cheap"), _rec(2, today, "strong"), _rec(3, two_days_ago, "cheap"),
                       _rec(4, now - 40 * DAY, "cheap")])  # older than --since 30d: not exported
    store.close()
    labels = open_label_store(store_url)
    labels.put_label({"request_id": "exp-1", "time": now, "tier": "cheap", "label": "strong_needed", "gap": 0.6})
    labels.add_signals([SignalEvent("exp-1", now, "thumbs_down", "explicit", value=-1.0),
                        SignalEvent("exp-1", now, "regenerate", "implicit")])
    labels.close()

    out = tmp_path / "export"
    capsys.readouterr()
    assert main(["export", "--since", "30d", "--out", str(out), "--store-url", store_url]) == 0
    assert capsys.readouterr().err.startswith("wrote 3 decision(s)")  # piped: no progress bar, not even a blank line

    dirs = sorted(p.name for p in out.iterdir())
    assert dirs == sorted({f"date={time.strftime('%Y-%m-%d', time.gmtime(t))}" for t in (today, two_days_ago)})
    table = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    rows = {r["request_id"]: r for r in table.to_pylist()}
    assert set(rows) == {"exp-1", "exp-2", "exp-3"}
    one = rows["exp-1"]
    assert one["shadow_label"] == "strong_needed" and one["shadow_gap"] == pytest.approx(0.6)
    assert one["feedback_count"] == 2
    assert [f["signal"] for f in json.loads(one["feedback_json"])] == ["thumbs_down", "regenerate"]
    assert rows["exp-2"]["shadow_label"] is None and rows["exp-2"]["feedback_count"] == 0
    assert rows["exp-2"]["segment_has_code"] is True and rows["exp-2"]["tokens_in"] == 12
    assert rows["exp-3"]["thresholds"] == [0.5] and json.loads(rows["exp-3"]["attempts_json"])[0]["outcome"] == "ok"
    assert json.loads(rows["exp-3"]["record_json"])["segment"]["language"] == "en"

    # a second export into the same directory is refused rather than mixing runs
    assert main(["export", "--out", str(out), "--store-url", store_url]) == 1


#: The typed columns `gearshift export` wrote before the field list drove them: none may go missing.
COLUMNS_BEFORE_THE_FIELD_LIST = {
    "request_id", "api_key_id", "conversation_id", "requested_model", "route", "router", "router_version", "tier",
    "reason", "deployment", "upstream_model", "status", "error_type", "finish_reason", "prompt", "time", "score",
    "propensity", "confidence", "ood", "cost_usd", "latency_ms", "upstream_latency_ms", "tokens_in", "tokens_out",
    "http_status", "stream", "escalated", "usage_estimated", "explored", "segment_language", "segment_length_bucket",
    "segment_has_code", "segment_turn", "thresholds", "tier_probabilities", "attempts_json", "cascade_json",
    "shadow_label", "shadow_gap", "feedback_count", "feedback_json", "record_json", "date"}


def test_every_field_the_list_exports_is_a_typed_column_with_its_value(tmp_path: Path) -> None:
    import time

    from gearshift.records.fields import EXPORTED, FIELDS
    from gearshift.store.export import arrow_schema
    from support.records import full_record

    names = arrow_schema().names
    assert names[:len(EXPORTED)] == [f.export_name for f in EXPORTED]
    assert set(names) >= COLUMNS_BEFORE_THE_FIELD_LIST
    url = f"sqlite:///{tmp_path / 'gw.sqlite'}"
    rec = full_record(t=time.time() - 60)
    store = open_decision_store(url)
    store.append_many([rec])
    store.close()
    assert main(["export", "--out", str(tmp_path / "out"), "--store-url", url]) == 0
    (row,) = ds.dataset(tmp_path / "out", format="parquet", partitioning="hive").to_table().to_pylist()
    for f in EXPORTED:
        got = json.loads(row[f.export_name]) if f.kind == "json" else row[f.export_name]
        assert got == pytest.approx(f.get(rec)) if f.kind in ("float", "floats") else got == f.get(rec), f.name
    assert not {f.export_name for f in FIELDS if not f.export} & set(row)  # those travel in record_json only
    assert json.loads(row["record_json"]) == rec

"""`gearshift export` carries the newer decision fields (exploration, prompt, finish reason) that pyarrow reads."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from closed_loop.shadow_harness import KeywordRouter, settings
from gateway.harness import GatewayServer
from gearshift.cli import main
from gearshift.gateway.app import create_app
from support.fake_upstream import FakeUpstream


def _read(out: Path) -> dict[str, dict[str, object]]:
    table = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    assert {"explored", "tier_probabilities", "prompt", "finish_reason", "propensity"} <= set(table.schema.names)
    return {str(r["request_id"]): r for r in table.to_pylist()}


KEY = "an export key shared with the gateway"


def _digest(text: str) -> str:
    return "hmac-sha256:" + hmac.new(KEY.encode(), text.encode(), hashlib.sha256).hexdigest()


def test_export_includes_exploration_prompt_and_finish_reason(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEARSHIFT_HASH_KEY", KEY)
    db = tmp_path / "gw.sqlite"
    with FakeUpstream(answer="cheap") as cheap, FakeUpstream(answer="strong") as strong:
        cfg = settings(cheap, strong, db, exploration={"epsilon": 0.4, "seed": 1})
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            ids = {c.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": [
                {"role": "user", "content": f"HARD question {i}"}]}).headers["x-gearshift-request-id"]: i
                for i in range(8)}
            gw.flush()
    out = tmp_path / "full"
    assert main(["export", "--store-url", f"sqlite:///{db}", "--out", str(out)]) == 0
    rows = _read(out)
    assert set(rows) == set(ids)
    for rid, i in ids.items():
        r = rows[rid]
        probs = r["tier_probabilities"]
        assert isinstance(probs, list) and probs == pytest.approx([0.2, 0.8])  # HARD -> strong, epsilon 0.4
        assert r["propensity"] == pytest.approx(probs[["cheap", "strong"].index(str(r["tier"]))])
        assert isinstance(r["explored"], bool) and (r["tier"] == "strong" or r["explored"])  # only a draw goes cheap
        assert r["prompt"] == f"HARD question {i}" and r["finish_reason"] == "stop"
    assert any(r["explored"] for r in rows.values())
    # a hashed export conceals the prompt in its column and in the whole record, digests stay joinable
    hashed = tmp_path / "hashed"
    assert main(["export", "--store-url", f"sqlite:///{db}", "--out", str(hashed), "--text", "hash"]) == 0
    for rid, r in _read(hashed).items():
        digest = _digest(f"HARD question {ids[rid]}")
        assert r["prompt"] == digest and json.loads(str(r["record_json"]))["prompt"] == digest
        assert "HARD question" not in str(r["record_json"])
    # a gateway that already hashed its records: hashing again on export must not change the digests
    again = tmp_path / "again"
    db2 = tmp_path / "hashed.sqlite"
    with FakeUpstream(answer="cheap") as cheap, FakeUpstream(answer="strong") as strong:
        cfg = settings(cheap, strong, db2, store={"path": str(db2), "text": "hash"})
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                 "messages": [{"role": "user", "content": "secret words"}]})
            gw.flush()
    assert main(["export", "--store-url", f"sqlite:///{db2}", "--out", str(again), "--text", "hash"]) == 0
    (row,) = _read(again).values()
    assert row["prompt"] == _digest("secret words")
    assert row["prompt"] != "hmac-sha256:" + hashlib.sha256(b"secret words").hexdigest()  # keyed, not a plain hash

"""`gearshift drift --since 1d [--json]`: the live drift check replayed from a gateway's store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gearshift.cli import main
from gearshift.records.record import record_row
from gearshift.routers.reference import build_reference, save_reference
from gearshift.store.factory import open_decision_store, open_label_store
from gearshift.store.labels import SignalEvent

PRICE = {"cheap": 0.001, "strong": 0.02}


def _rows(scores: np.ndarray, t0: float, prefix: str) -> list[dict[str, Any]]:
    out = []
    for i, s in enumerate(scores):
        tier = "strong" if s >= 0.5 else "cheap"
        out.append(record_row({"request_id": f"{prefix}{i}", "time": t0 + i, "tier": tier, "route": "auto",
                               "status": "ok", "score": float(s), "thresholds": [0.5], "cost_usd": PRICE[tier],
                               "router": "level", "router_version": "1",
                               "segment": {"language": "en", "length_bucket": "short", "has_code": False}}))
    return out


def _store(path: Path, rows: list[dict[str, Any]]) -> None:
    store = open_decision_store(f"sqlite:///{path}")
    try:
        store.append_many(rows)
    finally:
        store.close()


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    assert main(argv) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_drift_against_a_saved_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    ref = save_reference(tmp_path / "ref.json", build_reference(rng.beta(2, 4, 2000), [0.5], ("cheap", "strong"),
                                                                 prompts=["What is the capital of France?"] * 2000))
    now = time.time()
    quiet, loud = tmp_path / "quiet.sqlite", tmp_path / "loud.sqlite"
    _store(quiet, _rows(rng.beta(2, 4, 400), now - 3000, "q"))
    _store(loud, _rows(rng.beta(6, 2, 400), now - 3000, "l") + _rows(rng.beta(6, 2, 50), now - 5 * 86400, "old"))
    stable = _json(capsys, ["drift", "--db", str(quiet), "--since", "1d", "--reference", str(ref), "--json"])
    assert stable["enough"] and stable["reading"] is None and stable["n"] == 400 and stable["moved"] == []
    drifted = _json(capsys, ["drift", "--db", str(loud), "--since", "1d", "--reference", str(ref), "--json"])
    assert drifted["reading"] == "drift" and drifted["n"] == 400  # the 5-day-old decisions are outside --since
    assert drifted["p_strong"]["psi"] > 0.2 and drifted["strong_share"] > 0.6
    assert drifted["cost_per_request"] > drifted["cost_at_reference_shares"]
    assert drifted["reference"] == str(ref)
    # the table says the same
    assert main(["drift", "--db", str(loud), "--since", "1d", "--reference", str(ref)]) == 0
    text = capsys.readouterr().out
    assert "reading: drift" in text and "p_strong" in text and "tier shares" in text


def test_drift_against_the_period_before_reads_collapse_with_bad_signals(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    now = time.time()
    db = tmp_path / "gw.sqlite"
    today = _rows(rng.beta(1, 12, 400), now - 20000, "t")
    _store(db, _rows(rng.beta(2, 4, 400), now - 86400 - 20000, "y") + today)  # yesterday: the baseline
    labels = open_label_store(f"sqlite:///{db}")
    try:
        labels.add_signals([SignalEvent(r["request_id"], r["time"] + 1, "thumbs_down", "explicit", tier=r["tier"])
                            for r in today[::4] if r["tier"] == "cheap"])
    finally:
        labels.close()
    report = _json(capsys, ["drift", "--db", str(db), "--since", "1d", "--json"])
    assert report["reading"] == "collapse" and "tier_shares" in report["moved"]
    assert report["reference"].startswith("the 400 routed decisions of the period before")
    assert report["quality_loss_rate"] > 0.2 and report["strong_share"] < report["reference_strong_share"]


def test_drift_without_any_reference_says_what_to_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "gw.sqlite"
    _store(db, _rows(np.full(30, 0.3), time.time() - 100, "x"))
    assert main(["drift", "--db", str(db), "--since", "1d"]) == 1
    assert "pass --reference, --router or --config" in capsys.readouterr().err.replace("\n", " ")


def test_drift_of_a_registered_version_reads_its_reference_and_only_its_decisions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gearshift.store.versions import SQLiteVersionRegistry

    rng = np.random.default_rng(2)
    saved = tmp_path / "routers" / "v1"
    saved.mkdir(parents=True)
    save_reference(saved, build_reference(rng.beta(2, 4, 2000), [0.5], ("cheap", "strong"),
                                          prompts=["What is the capital of France?"] * 2000, source="v1 calibration"))
    db = tmp_path / "gw.sqlite"
    reg = SQLiteVersionRegistry(db)
    try:
        reg.register("lvl", "level", saved, thresholds=[0.5])
        reg.promote("lvl/1")
    finally:
        reg.close()
    now = time.time()
    mine = _rows(rng.beta(2, 4, 300), now - 5000, "m")
    other = _rows(rng.beta(8, 1, 300), now - 4000, "o")  # another router's decisions: strong-heavy, not compared
    for r in mine:
        r["router_version"] = "lvl/1"
    _store(db, mine + other)
    report = _json(capsys, ["drift", "--db", str(db), "--router", "champion", "--json"])
    assert report["version"] == "lvl/1" and report["reference"] == "version lvl/1"
    assert report["n"] == 300 and report["reading"] is None
    missing = tmp_path / "bare"
    missing.mkdir()
    assert main(["drift", "--db", str(db), "--reference", str(missing)]) == 1
    assert "no score reference there" in capsys.readouterr().err

"""`gearshift calibrate --per-segment` writes thresholds the gateway loads and applies per segment."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gearshift.cli import main
from gearshift.gateway.settings import parse_settings
from gearshift.policy.draw import decide_for
from gearshift.records.record import record_row
from gearshift.routers.base import RoutingScore
from gearshift.routers.policy import TierPolicy
from gearshift.store.sqlite import SQLiteDecisionStore


def _populate(db: Path) -> tuple[np.ndarray, np.ndarray]:
    """English traffic scores high, French low, German is too rare for its own threshold."""
    rng = np.random.default_rng(0)
    en, fr, de = rng.uniform(0.2, 1.0, 400), rng.uniform(0.0, 0.5, 300), rng.uniform(0.0, 1.0, 10)
    now, rows = time.time(), []
    for lang, scores in (("en", en), ("fr", fr), ("de", de)):
        for i, s in enumerate(scores):
            rows.append(record_row({
                "request_id": f"{lang}-{i}", "time": now - 10 - i, "route": "auto", "router": "heuristic",
                "score": float(s), "thresholds": [0.5], "tier": "strong" if s >= 0.5 else "cheap",
                "cost_usd": 0.01 if s >= 0.5 else 0.001,
                "segment": {"language": lang, "length_bucket": "short", "has_code": False, "turn": 1}}))
    store = SQLiteDecisionStore(db)
    store.append_many(rows)
    store.close()
    return en, fr


def test_per_segment_calibration_writes_loadable_thresholds_meeting_the_share_in_each_segment(
        tmp_path: Path) -> None:
    db, out = tmp_path / "d.sqlite", tmp_path / "router.toml"
    en, fr = _populate(db)
    assert main(["calibrate", "--db", str(db), "--tiers", "cheap,strong", "--since", "1d",
                 "--target-strong-share", "0.2", "--per-segment", "language", "--write", str(out)]) == 0
    router = tomllib.loads(out.read_text())["router"]
    seg = router["segment_thresholds"]
    assert set(seg) == {"language=en", "language=fr"}  # "de" has fewer than MIN_SEGMENT decisions
    assert (en >= seg["language=en"][0]).mean() == pytest.approx(0.2, abs=0.01)
    assert (fr >= seg["language=fr"][0]).mean() == pytest.approx(0.2, abs=0.01)
    assert seg["language=fr"][0] < router["thresholds"][0] < seg["language=en"][0]
    # the snippet is a valid [router] section of a gateway config, and the gateway applies it per request
    settings = parse_settings({"tiers": [{"name": "cheap", "deployments": [{"model": "a", "provider": "local"}]},
                                         {"name": "strong", "deployments": [{"model": "b", "provider": "local"}]}],
                               "router": router})
    policy = TierPolicy(thresholds=tuple(router["thresholds"]))
    score = RoutingScore(p_strong=float(np.mean([seg["language=fr"][0], router["thresholds"][0]])), confidence=1.0,
                         reason="")
    tiers = {}
    for lang in ("fr", "de"):
        rec: dict[str, Any] = {"segment": {"language": lang}, "thresholds": list(policy.thresholds)}
        tiers[lang] = decide_for(settings, policy, "auto", score, "r", rec)[0].tier
        assert rec["thresholds"] == (seg["language=fr"] if lang == "fr" else router["thresholds"])
    assert tiers == {"fr": "strong", "de": "cheap"}
    # an explicit router-<name>-<threshold> model keeps the threshold it names
    rec = {"segment": {"language": "fr"}}
    assert decide_for(settings, policy, "router", score, "r", rec)[0].tier == "cheap" and "thresholds" not in rec


def test_per_segment_keys_match_boolean_and_numeric_fields(tmp_path: Path) -> None:
    settings = parse_settings({"tiers": [{"name": "c", "deployments": [{"model": "a", "provider": "local"}]},
                                         {"name": "s", "deployments": [{"model": "b", "provider": "local"}]}],
                               "router": {"thresholds": [0.9], "segment_thresholds": {
                                   "has_code=true": [0.1], "turn=3": [0.2], "language=fr": [0.0]}}})
    policy, score = TierPolicy(tiers=("c", "s"), thresholds=(0.9,)), RoutingScore(p_strong=0.5, confidence=1.0,
                                                                                   reason="")

    def tier(segment: dict[str, Any]) -> str:
        return decide_for(settings, policy, "auto", score, "r", {"segment": segment})[0].tier

    assert tier({"has_code": True, "turn": 1}) == "s" and tier({"has_code": False, "turn": 3}) == "s"
    assert tier({"has_code": False, "turn": 2, "language": "en"}) == "c"
    # a gate's decision (routing rules) keeps the gate's own policy
    gate_policy = TierPolicy(tiers=("c", "s"), thresholds=(1.0,))
    rec: dict[str, Any] = {"segment": {"has_code": True}, "rule": "gate"}
    assert decide_for(settings, gate_policy, "auto", score, "r", rec)[0].tier == "c" and "thresholds" not in rec

"""`gearshift retrain | ope | promote | rollback | versions | calibrate` on a gateway store.

The store is filled directly with simulated logged traffic drawn from recorded MMLU outcomes (the
end-to-end path through the gateway is tests/gateway/test_exploration.py). The logging policy is
deliberately poor (short prompts go strong), with epsilon exploration; each decision keeps only the
served tier's recorded outcome, as thumbs feedback, and a share of decisions also gets a shadow label
scoring both tiers (full information, like the shadow judge).
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from gearshift.cli import main
from gearshift.cli.common import parse_params
from gearshift.config import default_data_dir
from gearshift.data.registry import load_dataset
from gearshift.learning.retrain import simulate_logged_traffic
from gearshift.policy.exploration import ExplorationPolicy
from gearshift.routers.policy import TierPolicy
from gearshift.store.base import DecisionQuery
from gearshift.store.labels import SignalEvent, SQLiteLabelStore
from gearshift.store.sqlite import SQLiteDecisionStore
from gearshift.store.versions import SQLiteVersionRegistry

STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
TIER_COST = {"cheap": 0.0002, "strong": 0.003}


def build(db: Path, n: int = 1500, epsilon: float = 0.3, label_share: float = 0.3, seed: int = 0) -> dict[str, float]:
    ds = load_dataset("mmlu", default_data_dir())
    rng = np.random.default_rng(seed)
    ds = ds.subset(np.sort(rng.choice(len(ds), n, replace=False)))
    length = np.array([len(p) for p in ds.prompts], dtype=np.float64)
    scores = 1.0 - (np.argsort(np.argsort(length)) + 0.5) / n  # shortest -> ~1: the poor logging rule
    log = simulate_logged_traffic(ds, STRONG, WEAK, scores, epsilon=epsilon, seed=seed)
    pi = ExplorationPolicy(TierPolicy(thresholds=(0.5,)), epsilon=epsilon).probabilities_batch(scores)
    s_strong, s_weak = ds.scores(STRONG), ds.scores(WEAK)
    now = time.time()
    rows, signals = [], []
    labels = SQLiteLabelStore(db)
    for i in range(n):
        tier = "strong" if log.actions[i] == 1 else "cheap"
        rid = f"r{i:05d}"
        t = now - 3600 + i
        rows.append({"request_id": rid, "time": t, "route": "auto", "status": "ok", "router": "heuristic",
                     "score": float(scores[i]), "thresholds": [0.5], "tier": tier,
                     "propensity": float(log.propensities[i]), "explored": bool(log.explored[i]),
                     "tier_probabilities": [float(x) for x in pi[i]] if epsilon > 0 else None,
                     "prompt": ds.prompts[i], "cost_usd": TIER_COST[tier],
                     "segment": {"language": "en" if i % 3 else "fr", "length_bucket": "short"}})
        signals.append(SignalEvent(request_id=rid, time=t + 1, signal="thumbs_up" if log.rewards[i] else "thumbs_down",
                                   source="explicit", value=float(log.rewards[i]), tier=tier, decision_time=t))
        if rng.random() < label_share:
            labels.put_label({"request_id": rid, "time": t + 2, "tier": tier,
                              "scores": {"cheap": float(s_weak[i]), "strong": float(s_strong[i])}})
    store = SQLiteDecisionStore(db)
    store.append_many(rows)
    store.close()
    labels.add_signals(signals)
    labels.close()
    return {"n": n, "logged_strong_share": float(np.mean(scores >= 0.5))}


HASHING = ["--param", "embedder=hashing:dim=32", "--param", "folds=2", "--param", "C=0.1"]


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    db = tmp_path_factory.mktemp("learn") / "gw.sqlite"
    return db, build(db)


@pytest.fixture(scope="module")
def trained(logged: tuple[Path, dict[str, float]]) -> Path:
    db, _ = logged
    assert main(["retrain", "--db", str(db), "--since", "7d", "--router", "classifier", *HASHING,
                 "--reward", "feedback", "--name", "ch"]) == 0
    return db


def _versions(db: Path) -> dict[str, dict[str, object]]:
    reg = SQLiteVersionRegistry(db)
    try:
        return {v.ref: v.to_json() for v in reg.all()}
    finally:
        reg.close()


def _ope(db: Path, candidate: str, out: Path, *extra: str) -> tuple[int, dict[str, object]]:
    code = main(["ope", "--db", str(db), "--candidate", candidate, "--reward", "feedback", "--n-boot", "200",
                 "--json-out", str(out), *extra])
    return code, json.loads(out.read_text()) if code == 0 else {}


def test_retrain_saves_and_registers_a_challenger(trained: Path, logged: tuple[Path, dict[str, float]]) -> None:
    v = _versions(trained)["ch/1"]
    assert v["status"] == "challenger" and v["router"] == "classifier"
    assert (Path(str(v["path"])) / "manifest.json").exists() and (Path(str(v["path"])) / "state.npz").exists()
    trained_on = v["metrics"]["trained"]  # type: ignore[index]
    assert trained_on["n"] == logged[1]["n"] and 0.2 * trained_on["n"] < trained_on["explored"] < 0.4 * trained_on["n"]
    # the threshold keeps the live policy's strong share on the logged prompts
    assert abs(trained_on["strong_share"] - logged[1]["logged_strong_share"]) <= 1.0 / logged[1]["n"] + 1e-9
    assert len(v["thresholds"]) == 1  # type: ignore[arg-type]


def test_ope_estimates_with_intervals_and_records_them(trained: Path, tmp_path: Path) -> None:
    code, res = _ope(trained, "ch/1", tmp_path / "ope.json")
    assert code == 0
    for name in ("ips", "snips", "dr"):
        q = res["estimates"][name]["quality"]  # type: ignore[index]
        c = res["estimates"][name]["cost"]  # type: ignore[index]
        assert q[1] <= q[0] <= q[2] and q[2] - q[1] < 0.2 and 0.0 < q[0] < 1.0
        assert c[1] <= c[0] <= c[2]
    assert _versions(trained)["ch/1"]["metrics"]["ope"]["n"] == res["n"]  # type: ignore[index]
    # the live policy evaluated on its own log: IPS is close to what it actually logged minus exploration
    code, live = _ope(trained, "live", tmp_path / "live.json")
    assert code == 0 and abs(live["estimates"]["snips"]["quality"][0] - live["logged_quality"]) < 0.05  # type: ignore


def test_ope_refuses_a_candidate_without_support(tmp_path: Path) -> None:
    db = tmp_path / "noexplore.sqlite"
    build(db, n=300, epsilon=0.0, seed=1)
    code, _ = _ope(db, "heuristic", tmp_path / "x.json", "--thresholds", "0.0")  # all strong: never logged so
    assert code == 3
    code, res = _ope(db, "live", tmp_path / "y.json")  # the logging policy itself is fully supported
    assert code == 0 and res["ess"] == res["n"]


def test_promote_needs_the_margin_and_rollback_restores(trained: Path, tmp_path: Path) -> None:
    _, new = _ope(trained, "ch/1", tmp_path / "a.json")
    _, old = _ope(trained, "live", tmp_path / "b.json")
    gain = new["estimates"]["dr"]["quality"][0] - old["estimates"]["dr"]["quality"][0]  # type: ignore[index]
    # the off-policy gate is under test here; the probe gate has its own test (tests/learning/test_train.py)
    args = ["--db", str(trained), "--since", "7d", "--reward", "feedback", "--skip-probes"]
    assert main(["promote", "ch/1", "--margin", f"{gain + 0.01:.6f}", *args]) == 3
    version = _versions(trained)["ch/1"]
    assert version["status"] == "challenger"
    gates = {g["name"]: g for g in version["metrics"]["gates"]}  # type: ignore[index]
    quality = gates["quality"]["figures"]
    # the gate reads the paired gain's lower bound: a margin between it and the point gain still refuses
    assert quality["gain"] == pytest.approx(gain, abs=1e-9) and quality["lo"] < gain < quality["hi"]
    assert gates["quality"]["passed"] is False and {"cost", "calibration", "probes"} <= set(gates)
    assert main(["promote", "ch/1", "--margin", f"{(quality['lo'] + gain) / 2:.6f}", *args]) == 3
    assert main(["promote", "ch/1", "--margin", f"{quality['lo'] - 0.005:.6f}", *args]) == 0
    assert _versions(trained)["ch/1"]["status"] == "champion"
    assert main(["retrain", "--db", str(trained), *HASHING, "--reward", "both", "--name", "ch"]) == 0
    assert main(["promote", "ch/2", "--force", *args]) == 0
    assert {k: v["status"] for k, v in _versions(trained).items()} == {"ch/1": "retired", "ch/2": "champion"}
    assert main(["rollback", "--db", str(trained)]) == 0
    assert {k: v["status"] for k, v in _versions(trained).items()} == {"ch/1": "champion", "ch/2": "retired"}
    assert main(["rollback", "--db", str(trained)]) == 1  # ch/1 was the first champion: nothing before it
    assert main(["versions", "--db", str(trained)]) == 0
    assert main(["promote", "nope/7", *args]) == 1


def test_retrained_router_beats_the_poor_logging_policy(trained: Path, tmp_path: Path) -> None:
    """The log's policy sends short prompts strong; the IPW-retrained router routes on content instead."""
    _, new = _ope(trained, "ch/1", tmp_path / "a.json")
    _, old = _ope(trained, "live", tmp_path / "b.json")
    assert new["estimates"]["dr"]["quality"][0] > old["estimates"]["dr"]["quality"][0]  # type: ignore[index]


def _written(path: Path) -> list[float]:
    return list(tomllib.loads(path.read_text())["router"]["thresholds"])


def test_calibrate_hits_the_share_and_cost_targets(logged: tuple[Path, dict[str, float]], tmp_path: Path) -> None:
    db, info = logged
    out = tmp_path / "share.toml"
    assert main(["calibrate", "--db", str(db), "--target-strong-share", "0.2", "--per-segment", "language",
                 "--write", str(out)]) == 0
    (t,) = _written(out)
    store = SQLiteDecisionStore(db)
    scores = np.array([r["score"] for r in store.query(DecisionQuery(limit=None))])
    store.close()
    assert abs(float(np.mean(scores >= t)) - 0.2) <= 1.0 / info["n"] + 1e-9
    assert '"language=fr" = [' in out.read_text() and '"language=en" = [' in out.read_text()  # segment_thresholds
    budget = 0.2 * TIER_COST["strong"] + 0.8 * TIER_COST["cheap"]
    out = tmp_path / "cost.toml"
    assert main(["calibrate", "--db", str(db), "--target-cost-per-1k", f"{budget * 1000}", "--write", str(out)]) == 0
    (t,) = _written(out)
    share = float(np.mean(scores >= t))
    assert share * TIER_COST["strong"] + (1 - share) * TIER_COST["cheap"] <= budget + 1e-12
    assert share > 0.19


def test_risk_controlled_calibration_from_labels_and_offline_data(logged: tuple[Path, dict[str, float]],
                                                                  tmp_path: Path) -> None:
    db, _ = logged
    out = tmp_path / "risk.toml"
    assert main(["calibrate", "--db", str(db), "--max-quality-loss", "0.1", "--confidence", "0.9",
                 "--write", str(out)]) == 0
    (t,) = _written(out)
    assert 0.0 <= t <= 1.0 + 1e-9
    out2 = tmp_path / "offline.toml"
    assert main(["calibrate", "--data", "gsm8k", "--n", "300", "--router", "heuristic", "--max-quality-loss",
                 "0.05", "--write", str(out2), "--db", str(tmp_path / "none.sqlite")]) == 0
    assert len(_written(out2)) == 1
    assert main(["calibrate", "--db", str(tmp_path / "missing.sqlite"), "--target-strong-share", "0.2"]) == 1


def test_retrain_takes_router_parameters_as_eval_does(logged: tuple[Path, dict[str, float]]) -> None:
    db, _ = logged
    spec = "classifier:" + ",".join(HASHING[i + 1] for i in range(0, len(HASHING), 2))
    assert main(["retrain", "--db", str(db), "--router", spec, "--reward", "feedback", "--name", "spec"]) == 0
    trained_on = _versions(db)["spec/1"]["metrics"]["trained"]  # type: ignore[index]
    assert trained_on["router"] == "classifier"
    assert trained_on["params"] == parse_params(list(HASHING[1::2]))

"""Off-policy evaluation recovers a known value through a live gateway with a cascade and exploration (#14).

Every prompt has a known truth: the cheap upstream answers it correctly, refuses (the `refusal` verifier catches
that and the cascade escalates to the strong tier, which is always right), or answers fluently but wrong (nothing
catches that). The router sends HARD prompts strong, where the cheap model is mostly wrong, and exploration
sends a random share of each group the other way. A simulated user gives a thumbs up or down on every shipped
answer. The value of a routing policy *run with this cascade* is then known exactly per prompt, and
`gearshift ope` (the command, on the stored records and feedback) must recover it within its interval, while the
two shortcuts it replaces, reading the shipped tier as the action and ignoring propensities, are biased.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from closed_loop.shadow_harness import JudgeUpstream, KeywordRouter, judge_endpoint, settings, wait_until
from gateway.harness import GatewayServer
from gearshift.cli import main
from gearshift.gateway.app import create_app
from gearshift.routers.random import RandomRouter
from gearshift.store.base import DecisionQuery
from gearshift.store.labels import SQLiteLabelStore
from support.fake_upstream import Behaviour, FakeUpstream

OK, WRONG, REFUSE = "ok", "wrong", "refuse"
RIGHT_TEXT = "The answer is 42, RIGHT (strong reasoning)."  # the judge upstream rates "strong" 9
WRONG_TEXT = "The answer is 41, confidently."
REFUSAL_TEXT = "I'm sorry, but I can't help with that."
N = 600


def _cheap_kind(i: int) -> str:
    """Easy prompts: the cheap model is right on 19 of 20; HARD ones: right on 2, refuses on 6, wrong on 12."""
    slot = (i // 2) % 20
    if i % 2 == 0:
        return OK if slot < 19 else WRONG
    return OK if slot < 2 else REFUSE if slot < 8 else WRONG


def _prompt(i: int) -> str:
    return f"{'HARD ' if i % 2 else ''}question {i} [{_cheap_kind(i)}]"


class CheapUpstream(FakeUpstream):
    """Answers each prompt as its tag says: right, fluently wrong, or a refusal."""

    def _completion(self, req: dict[str, Any], b: Behaviour, text: str) -> dict[str, Any]:
        user = str((req.get("messages") or [{}])[-1].get("content", ""))
        kind = user.rsplit("[", 1)[-1].rstrip("]")
        text = {OK: RIGHT_TEXT, WRONG: WRONG_TEXT, REFUSE: REFUSAL_TEXT}[kind]
        return super()._completion(req, b, text)


def _true_value(route_cheap: np.ndarray) -> float:
    """Mean shipped-answer correctness when prompt i starts on the cheap tier where `route_cheap[i]`: strong is
    always right, a cheap refusal is rescued by the strong tier, only a fluent wrong cheap answer ships wrong."""
    kinds = np.array([_cheap_kind(i) for i in range(N)])
    return float(np.mean(np.where(route_cheap, kinds != WRONG, True)))


def _cost(i: int, first: str) -> float:
    """What prompt i costs when it starts on tier `first`: the fake upstreams count words as tokens and every
    deployment costs $1 / $2 per million input / output tokens; a refused cheap answer pays for the strong one too."""
    words = len(_prompt(i).split())
    strong = (words + 2.0 * len((RIGHT_TEXT + " (strong)").split(" "))) / 1e6
    if first == "strong":
        return strong
    kind = _cheap_kind(i)
    text = {OK: RIGHT_TEXT, WRONG: WRONG_TEXT, REFUSE: REFUSAL_TEXT}[kind]
    return (words + 2.0 * len(text.split(" "))) / 1e6 + (strong if kind == REFUSE else 0.0)


@contextlib.contextmanager
def _fixed_request_ids() -> Iterator[None]:
    """Exploration draws are seeded per request id: fixed ids make the run (and its bootstrap) repeatable, so a test
    checks one fixed draw of the traffic instead of failing on the 5% of draws a 95% interval misses."""
    counter = itertools.count()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("gearshift.gateway.call._uuid4_hex", lambda: uuid.UUID(int=next(counter)).hex)
        yield


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]], dict[str, float]]:
    db = tmp_path_factory.mktemp("ope-cascade") / "gw.sqlite"
    feedback: dict[str, float] = {}
    with _fixed_request_ids(), CheapUpstream(answer="unused") as cheap, \
            FakeUpstream(answer=RIGHT_TEXT + " (strong)") as strong:
        cfg = settings(cheap, strong, db, cascade={"enabled": True, "verifiers": ["empty", "refusal"]},
                       exploration={"epsilon": 0.5, "seed": 11}, store={"path": str(db), "text": "full"})
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            for i in range(N):
                r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                         "messages": [{"role": "user", "content": _prompt(i)}]})
                assert r.status_code == 200, r.text
                rid = r.headers["x-gearshift-request-id"]
                good = "RIGHT" in r.json()["choices"][0]["message"]["content"]  # the user knows the truth
                feedback[rid] = float(good)
                fb = c.post("/v1/feedback", json={"request_id": rid, "signal": "thumbs_up" if good else "thumbs_down"})
                assert fb.status_code == 201, fb.text
            gw.flush()
            store = gw.gateway.store
            assert store is not None
            rows = sorted(store.query(DecisionQuery(limit=None)), key=lambda r: float(r["time"]))
    labels = SQLiteLabelStore(db)
    try:
        assert wait_until(lambda: len(labels.signals()) == N)
    finally:
        labels.close()
    return db, rows, feedback


def _ope(db: Path, candidate: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    capsys.readouterr()
    code = main(["ope", "--db", str(db), "--tiers", "cheap,strong", "--since", "1h", "--reward", "feedback",
                 "--candidate", candidate, "--n-boot", "2000", "--json", *extra])
    assert code == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_the_traffic_exercises_cascade_and_exploration(logged: tuple[Path, list[dict[str, Any]], dict[str, float]],
                                                       ) -> None:
    _, rows, feedback = logged
    assert len(rows) == N
    first = [r["cascade"][0]["tier"] for r in rows]
    explored = [bool(r["explored"]) for r in rows]
    escalated = [r["tier"] == "strong" and f == "cheap" for r, f in zip(rows, first, strict=True)]
    assert 0.3 < np.mean(explored) < 0.7 and sum(escalated) >= 8  # both mechanisms are in play
    # every escalation was a refusal the verifier caught, and the strong tier's answer was right
    assert all(feedback[r["request_id"]] == 1.0 for r, e in zip(rows, escalated, strict=True) if e)


def test_ope_recovers_the_true_value_of_always_cheap(logged: tuple[Path, list[dict[str, Any]], dict[str, float]],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    db, rows, feedback = logged
    truth = _true_value(np.ones(N, dtype=bool))  # 0.675: the cascade rescues the refusals, not the wrong answers
    # `random` scores in [0, 1): a threshold of 1 sends every prompt to the cheap tier first
    got = _ope(db, "random", capsys, "--thresholds", "1.0")
    for name in ("ips", "snips", "dr"):
        value, lo, hi = got["estimates"][name]["quality"]
        assert lo <= truth <= hi, (name, truth, value, lo, hi)
        assert hi - lo < 0.25  # an interval that says something
    # cost: every rung's answer is in the record, so "always cheap" pays for the strong rescues too
    index = {_prompt(i): i for i in range(N)}
    logged_cost = [float(r["cost_usd"]) for r in rows]
    assert logged_cost == pytest.approx([_cost(index[r["prompt"]], r["cascade"][0]["tier"]) for r in rows])
    true_cost = float(np.mean([_cost(i, "cheap") for i in range(N)]))
    for name in ("ips", "snips", "dr"):
        value, lo, hi = got["estimates"][name]["cost"]
        assert lo <= true_cost <= hi, (name, true_cost, value, lo, hi)
    reward = np.array([feedback[r["request_id"]] for r in rows])
    first_cheap = np.array([r["cascade"][0]["tier"] == "cheap" for r in rows])
    shipped_cheap = np.array([r["tier"] == "cheap" for r in rows])
    lo, hi = got["estimates"]["snips"]["quality"][1:]
    # the shortcuts: the mean over rows that started cheap (no propensities: mostly easy prompts), and over rows
    # the cheap tier shipped (no propensities and no cascade: the caught refusals moved to "strong")
    for naive in (float(reward[first_cheap].mean()), float(reward[shipped_cheap].mean())):
        assert abs(naive - truth) > 0.08 and not lo <= naive <= hi, (naive, truth, lo, hi)


def test_ope_recovers_the_true_value_of_the_live_router_and_another(
        logged: tuple[Path, list[dict[str, Any]], dict[str, float]], capsys: pytest.CaptureFixture[str]) -> None:
    db, _, _ = logged
    hard = np.array([i % 2 == 1 for i in range(N)])
    live = _ope(db, "live", capsys)
    assert live["estimates"]["dr"]["quality"][1] <= _true_value(~hard) <= live["estimates"]["dr"]["quality"][2]
    # a router the log never ran: random scores with a 0.5 threshold; its truth from the same known answers
    scores = RandomRouter().p_strong([_prompt(i) for i in range(N)])
    truth = _true_value(np.asarray(scores) < 0.5)
    other = _ope(db, "random", capsys, "--thresholds", "0.5")
    for name in ("snips", "dr"):
        assert other["estimates"][name]["quality"][1] <= truth <= other["estimates"][name]["quality"][2], name


def test_judge_rewards_from_a_shadow_sample_are_not_biased_by_cascade_rejections(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With judge rewards the action's reward is the first rung's answer as the shadow judge scores it, on a random
    sample of requests. A verifier rejection labels *every* rejected request, an acceptance none: counting those
    labels as rewards would over-represent rejected answers and drag the estimate of the cheap tier down."""
    db = tmp_path / "gw.sqlite"
    with _fixed_request_ids(), CheapUpstream(answer="unused") as cheap, \
            FakeUpstream(answer=RIGHT_TEXT + " (strong)") as strong, JudgeUpstream() as judge:
        cfg = settings(cheap, strong, db, cascade={"enabled": True, "verifiers": ["empty", "refusal"]},
                       exploration={"epsilon": 0.5, "seed": 11}, store={"path": str(db), "text": "full"},
                       shadow={"enabled": True, "rate": 0.4, "seed": 5, "judge": {"endpoint": judge_endpoint(judge)}})
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            for i in range(N):
                r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                         "messages": [{"role": "user", "content": _prompt(i)}]})
                assert r.status_code == 200, r.text
            loop = gw.gateway.closed_loop
            assert loop is not None and loop.shadow is not None
            assert wait_until(lambda: loop.shadow.counts.get("done", 0) >= 0.3 * N and loop.shadow.queue is not None
                              and loop.shadow.queue.empty(), timeout_s=60)
            gw.flush()
    labels = SQLiteLabelStore(db)
    try:
        scores = [lab["scores"] for lab in labels.labels(since=None)]
    finally:
        labels.close()
    right, other = max(s["cheap"] for s in scores), min(s["cheap"] for s in scores)
    kinds = np.array([_cheap_kind(i) for i in range(N)])
    truth = float(np.mean(np.where(kinds == OK, right, other)))  # always cheap: the cheap answer's own score
    got = _ope(db, "random", capsys, "--thresholds", "1.0", "--reward", "judge")
    for name in ("snips", "dr"):
        value, lo, hi = got["estimates"][name]["quality"]
        assert lo <= truth <= hi, (name, truth, value, lo, hi)

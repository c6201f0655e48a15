"""Shadow `every_n` counts the whole fleet's decisions when gateways share a Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from closed_loop.shadow_harness import JudgeUpstream, KeywordRouter, judge_endpoint, settings, wait_until
from gateway.harness import GatewayServer
from gearshift.gateway.app import create_app
from gearshift.store.labels import SQLiteLabelStore
from support.fake_upstream import FakeUpstream

pytestmark = [pytest.mark.services]


def test_every_nth_decision_of_the_fleet_is_shadowed(redis_target: tuple[str, str], tmp_path: Path) -> None:
    redis_url, prefix = redis_target
    with FakeUpstream(answer="cheap guess") as cheap, FakeUpstream(answer="the strong answer") as strong, \
            JudgeUpstream() as judge:
        def gateway(name: str) -> GatewayServer:
            cfg = settings(cheap, strong, tmp_path / f"{name}.sqlite", redis={"url": redis_url, "prefix": prefix},
                           shadow={"enabled": True, "every_n": 3, "judge": {"endpoint": judge_endpoint(judge)}})
            return GatewayServer(create_app(cfg, router=KeywordRouter()))

        with gateway("a") as a, gateway("b") as b, a.client() as ca, b.client() as cb:
            order = [(a, ca), (a, ca), (b, cb), (a, ca), (b, cb), (a, ca)]  # a serves 4, b serves 2
            ids = []
            for gw, client in order:
                r = client.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": [
                    {"role": "user", "content": f"question {len(ids)}"}]})
                assert r.status_code == 200
                ids.append(r.headers["x-gearshift-request-id"])
                runner = gw.gateway.closed_loop.shadow
                assert wait_until(lambda runner=runner: not runner._sampling)  # the fleet count is taken
            for gw in (a, b):
                runner = gw.gateway.closed_loop.shadow
                assert wait_until(lambda runner=runner: runner.counts.get("done", 0) == runner.counts.get("queued", 0))
            queued = {n: g.gateway.closed_loop.shadow.counts.get("queued", 0) for n, g in (("a", a), ("b", b))}
    # per process, "every 3rd" would shadow a's 3rd request (the 4th overall) only; across the fleet it is
    # the 3rd (served by b) and the 6th (served by a)
    assert queued == {"a": 1, "b": 1}
    shadowed = []
    for name in ("a", "b"):
        store = SQLiteLabelStore(tmp_path / f"{name}.sqlite")
        shadowed += [rid for rid in ids if store.get_label(rid) is not None]
        store.close()
    assert sorted(shadowed) == sorted([ids[2], ids[5]])

"""Two real `gearshift serve` processes sharing one PostgreSQL decision log and one Redis.

Behaviour a fleet operator relies on: a circuit opened by one gateway is open for the other, a key's
daily budget and rate limit are spent once across both, and every request lands exactly once in the
shared decision log.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gearshift.gateway.settings import hash_key
from support.fake_upstream import Behaviour, FakeUpstream
from support.serve_process import start_serve, stop_serve, wait_healthy
from support.services import pg_schema, redis_prefix

pytestmark = [pytest.mark.services, pytest.mark.slow]

KEYS = {"main": "sk-main-0001", "budget": "sk-budget-0002", "rate": "sk-rate-0003"}
_BREAKER_THRESHOLD = 5  # providers.breaker.BreakerConfig default: consecutive failures that open a circuit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(store_url: str, redis_url: str, prefix: str, flaky: str, steady: str, tmp: Path) -> str:
    keys = "\n".join(
        f'[[auth.keys]]\nid = "{kid}"\nsha256 = "{hash_key(raw)}"\n' + extra
        for kid, raw, extra in (("main", KEYS["main"], ""), ("budget", KEYS["budget"], "budget_usd_per_day = 2.0\n"),
                                ("rate", KEYS["rate"], "rpm = 2\n")))
    # every request is routed to "cheap" (threshold 1.0); its first deployment always fails, the second answers
    # at $0.2 per output token, so one answer (5 tokens) costs $1; its worst case (max_tokens = 8) is $1.6, so
    # after one answer the $2 budget cannot cover another
    return f"""
[router]
name = "heuristic"
thresholds = [1.0]

[reliability]
max_retries = 0

[store]
url = "{store_url}"
path = "{tmp / 'unused.sqlite'}"
batch_size = 16

[redis]
url = "{redis_url}"
prefix = "{prefix}"

[[tiers]]
name = "cheap"
[[tiers.deployments]]
name = "flaky"
model = "fake-small"
base_url = "{flaky}"
timeout_s = 5
[[tiers.deployments]]
name = "steady"
model = "fake-small"
base_url = "{steady}"
output_price_per_m = 200000.0
max_tokens = 8
timeout_s = 5

[[tiers]]
name = "strong"
[[tiers.deployments]]
name = "big"
model = "fake-large"
base_url = "{steady}"

{keys}
"""


class Gateway:
    def __init__(self, config: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.proc = start_serve(config, self.port, stdout=self._log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=20.0)

    def wait_ready(self, log: Path, timeout_s: float = 90.0) -> None:
        wait_healthy(self.proc, self.url, timeout_s, log.read_text)

    def chat(self, key: str, text: str = "hi") -> httpx.Response:
        return self.client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {KEYS[key]}"},
                                json={"model": "gearshift/auto", "messages": [{"role": "user", "content": text}]})

    def stop(self) -> None:
        self.client.close()
        stop_serve(self.proc)
        self._log.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Gateway, Gateway, FakeUpstream, str]]:
    with pg_schema("gs_scale") as store_url, redis_prefix() as (redis_url, prefix), \
            FakeUpstream(default=Behaviour.status_code(500)) as flaky, FakeUpstream() as steady:
        from gearshift.store.postgres import migrate

        migrate(store_url)  # once, before both gateways start (each would also do it, under yoyo's lock)
        config = tmp_path / "gearshift.toml"
        config.write_text(_config(store_url, redis_url, prefix, flaky.base_url, steady.base_url, tmp_path))
        gws = [Gateway(config, tmp_path / f"gw{i}.log") for i in (1, 2)]
        try:
            for i, gw in enumerate(gws, 1):
                gw.wait_ready(tmp_path / f"gw{i}.log")
            yield gws[0], gws[1], flaky, store_url
        finally:
            for gw in gws:
                gw.stop()


def _attempted(store_url: str, request_id: str) -> list[tuple[str, str]]:
    import psycopg

    from gearshift.store.postgres import PgTarget

    target = PgTarget.parse(store_url)
    with psycopg.connect(target.conninfo, **target.options) as conn:
        row = conn.execute("SELECT record FROM decisions WHERE request_id = %s", (request_id,)).fetchone()
    assert row is not None, f"{request_id} is not in the shared decision log"
    return [(str(a.get("deployment")), str(a.get("outcome"))) for a in row[0].get("attempts", [])]


def _wait_for_rows(store_url: str, ids: set[str], timeout_s: float = 15.0) -> dict[str, int]:
    import psycopg

    from gearshift.store.postgres import PgTarget

    target = PgTarget.parse(store_url)
    deadline = time.monotonic() + timeout_s
    while True:
        with psycopg.connect(target.conninfo, **target.options) as conn:
            rows = conn.execute("SELECT request_id, COUNT(*) FROM decisions GROUP BY 1").fetchall()
        counts = {str(r): int(n) for r, n in rows}
        if ids <= set(counts) or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def test_two_gateways_share_breakers_budgets_rate_limits_and_the_decision_log(
        fleet: tuple[Gateway, Gateway, FakeUpstream, str]) -> None:
    gw1, gw2, flaky, store_url = fleet
    ids: list[str] = []

    def send(gw: Gateway, key: str) -> httpx.Response:
        resp = gw.chat(key)
        ids.append(resp.headers["x-gearshift-request-id"])
        return resp

    # 1. gateway 1 sees the flaky deployment fail until its circuit opens (each request fails over to steady)
    for _ in range(_BREAKER_THRESHOLD):
        assert send(gw1, "main").status_code == 200
    assert len(flaky.chat_requests) == _BREAKER_THRESHOLD
    # gateway 2 never talked to flaky, yet skips it: the open circuit lives in Redis
    for _ in range(3):
        resp = send(gw2, "main")
        assert resp.status_code == 200, resp.text
    assert len(flaky.chat_requests) == _BREAKER_THRESHOLD
    _wait_for_rows(store_url, set(ids))
    assert _attempted(store_url, ids[0]) == [("flaky", "error"), ("steady", "ok")]
    assert _attempted(store_url, ids[-1]) == [("flaky", "skipped_open_circuit"), ("steady", "ok")]

    # 2. a budget spent on gateway 1 is enforced by gateway 2 (in-memory ledgers would let it through)
    assert send(gw1, "budget").status_code == 200
    deadline = time.monotonic() + 5
    refused = send(gw2, "budget")
    while refused.status_code == 200 and time.monotonic() < deadline:  # the spend is booked just after the answer
        time.sleep(0.1)
        refused = send(gw2, "budget")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"
    assert send(gw1, "budget").status_code == 429

    # 3. a 2-per-minute rate limit across both gateways allows two requests in total
    assert [send(gw, "rate").status_code for gw in (gw1, gw2, gw1, gw2)] == [200, 200, 429, 429]

    # 4. every request, answered or refused, is in the shared log exactly once
    counts = _wait_for_rows(store_url, set(ids))
    assert len(ids) == len(set(ids))
    assert set(counts) == set(ids) and set(counts.values()) == {1}

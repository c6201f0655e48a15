"""PostgreSQL decision-log faults: a down or hung server never delays a response nor loses a record.

The real gateway writes to the real PostgreSQL through a switchable TCP proxy (tests/support/tcp_proxy.py).
While the proxy is down (connections closed, new ones dropped) or hung (a black hole: nothing forwarded,
nothing refused), every request is still answered, its record goes to the local spool, and once the proxy
is restored the spool is replayed. The test then counts rows in PostgreSQL directly (not through the proxy):
one per response sent, each request id exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from reliability.conftest import PROMPT, dep, running, settings_for
from support.fake_upstream import FakeUpstream
from support.services import pg_schema
from support.tcp_proxy import Mode, TcpProxy

N_REQUESTS = 10
STORE_TIMEOUT_S = 1.0  # connect and write deadline: a dead or silent server costs one batch this long, then spool


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema("gs_pgfault") as url:
        yield url


def _via(url: str, proxy: TcpProxy) -> str:
    """The same database URL, but through the proxy's port."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}127.0.0.1:{proxy.port}", parts.path, parts.query, ""))


def _rows(url: str) -> list[str]:
    """Request ids in the decisions table, read straight from PostgreSQL."""
    import psycopg

    from gearshift.store.postgres import PgTarget

    target = PgTarget.parse(url)
    with psycopg.connect(target.conninfo, **target.options, connect_timeout=3) as conn:
        return [r[0] for r in conn.execute("SELECT request_id FROM decisions").fetchall()]


def _wait(cond: object, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(cond())  # type: ignore[operator]


def _send(c: httpx.Client, i: int) -> str:
    payload = {"model": "gearshift/auto", "messages": PROMPT, "stream": i % 2 == 1}
    r = c.post("/v1/chat/completions", json=payload)
    r.read()
    assert r.status_code == 200, r.text
    return r.headers["x-gearshift-request-id"]


@pytest.mark.parametrize("fault", ["down", "hung"])
def test_postgres_fault_spools_then_replays_one_row_per_response(
        fault: Mode, ups: tuple[FakeUpstream, FakeUpstream], pg_url: str, tmp_path: Path) -> None:
    _, healthy = ups
    pg = urlsplit(pg_url)
    with TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432) as proxy:
        settings = settings_for([dep("cheap", healthy.base_url, 5.0)], healthy.base_url, tmp_path / "unused.sqlite",
                                store={"url": _via(pg_url, proxy), "spool_path": str(tmp_path / "spool.jsonl"),
                                       "connect_timeout_s": STORE_TIMEOUT_S, "write_timeout_s": STORE_TIMEOUT_S})
        with running(settings) as gw:
            writer = gw.gateway.writer
            assert writer is not None
            with gw.client() as c:
                sent = [_send(c, i) for i in range(3)]  # healthy: written straight through
                assert writer.flush(5) and writer.spooled == 0
                proxy.set_mode(fault)
                t0 = time.monotonic()
                sent += [_send(c, i) for i in range(N_REQUESTS)]
                serve_s = time.monotonic() - t0
            assert serve_s < 2.0, f"requests waited on the database: {serve_s:.2f}s for {N_REQUESTS}"
            t1 = time.monotonic()
            assert _wait(lambda: writer.spooled == N_REQUESTS, 3 * STORE_TIMEOUT_S + 3), (writer.spooled,
                                                                                           writer.queued)
            spool_s = time.monotonic() - t1
            assert (tmp_path / "spool.jsonl").stat().st_size > 0
            assert len(_rows(pg_url)) == 3  # nothing reached PostgreSQL during the fault
            proxy.set_mode("up")
            t2 = time.monotonic()
            assert writer.flush(10), (writer.spooled, writer.store_errors)
            replay_s = time.monotonic() - t2
            assert writer.spooled == 0 and (tmp_path / "spool.jsonl").stat().st_size == 0
            assert writer.failed == 0 and writer.dropped == 0
        print(f"{fault}: served {N_REQUESTS} in {serve_s:.2f}s, spooled after {spool_s:.2f}s, "
              f"replayed in {replay_s:.2f}s")
    rows = _rows(pg_url)
    assert len(rows) == len(sent) == N_REQUESTS + 3
    assert sorted(rows) == sorted(sent)  # each answered request exactly once


def test_reads_from_a_hung_postgres_fail_within_the_store_timeout(pg_url: str) -> None:
    """Dashboard, triage and version reads go through the same deadline as writes: a silent server costs
    an error after `timeout_s`, not a thread blocked forever, and the stores work again once it answers."""
    from gearshift.errors import StoreUnavailableError
    from gearshift.store.base import DecisionQuery
    from gearshift.store.postgres import PostgresDecisionStore
    from gearshift.store.postgres_labels import PostgresLabelStore
    from gearshift.store.postgres_versions import PostgresVersionRegistry

    pg = urlsplit(pg_url)
    with TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432) as proxy:
        url = _via(pg_url, proxy)
        opts = {"connect_timeout_s": STORE_TIMEOUT_S, "timeout_s": STORE_TIMEOUT_S}
        decisions = PostgresDecisionStore(url, pool_size=1, **opts)
        labels = PostgresLabelStore(url, pool_size=1, **opts)
        versions = PostgresVersionRegistry(url, pool_size=1, **opts)
        try:
            assert decisions.count() == 0 and labels.triage_counts() is not None and versions.all() == []
            proxy.set_mode("hung")
            for read in (lambda: decisions.query(DecisionQuery(limit=5)), lambda: labels.labels(),
                         lambda: versions.all()):
                t0 = time.monotonic()
                with pytest.raises(StoreUnavailableError) as err:
                    read()
                assert err.value.status_code == 503 and "PostgreSQL store unavailable" in err.value.message
                assert time.monotonic() - t0 < STORE_TIMEOUT_S + 2.0
            proxy.set_mode("up")

            def reads_ok() -> bool:
                try:
                    return decisions.count() == 0 and labels.labels() == [] and versions.all() == []
                except StoreUnavailableError:
                    return False  # the pool reconnects with a backoff after the outage

            assert _wait(reads_ok, 15.0)
        finally:
            for s in (decisions, labels, versions):
                s.close()

"""Decision records written per second to PostgreSQL: batched `append_many` vs one row per transaction.

The single-row insert (one INSERT + COMMIT per record, what a naive per-request write does) is the
in-run baseline; the batched figure is what the gateway's BackgroundWriter gets with `[store] batch_size`.
Runs against the local server in a throwaway schema (dropped at the end).

    .venv/bin/python benchmarks/pg_write_rate.py [--url postgresql://root@127.0.0.1:5432/test] [--records 20000]
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

import psycopg

from gearshift.records.record import DecisionRecord, Segment
from gearshift.store.postgres import PostgresDecisionStore


def _record(i: int, run: str) -> dict[str, Any]:
    """A realistic row (~1 KB of JSON): routing, attempts, usage, cost."""
    return DecisionRecord(
        request_id=f"{run}-{i}", time=time.time(), api_key_id="team-a", requested_model="gearshift/auto",
        route="auto", segment=Segment(language="en", length_bucket="medium", has_code=i % 3 == 0, turn=1),
        router="knn", router_version="2024-11-01", score=0.42, thresholds=[0.5], tier="cheap",
        reason="score 0.420 < 0.50", deployment="gpt-4o-mini", upstream_model="gpt-4o-mini",
        attempts=[{"deployment": "gpt-4o-mini", "outcome": "ok", "latency_ms": 812.5, "status": 200}],
        tokens_in=312, tokens_out=188, cost_usd=0.00016, latency_ms=830.1, upstream_latency_ms=812.5,
    ).to_row()


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="postgresql://root@127.0.0.1:5432/test")
    ap.add_argument("--records", type=int, default=20_000, help="records for the batched run")
    ap.add_argument("--single", type=int, default=2_000, help="records for the single-row baseline")
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()

    schema = f"gs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in args.url else "?"
    store = PostgresDecisionStore(f"{args.url}{sep}schema={schema}")
    try:
        single = [_record(i, "single") for i in range(args.single)]
        t0 = time.perf_counter()
        for r in single:
            store.append_one(r)
        single_s = time.perf_counter() - t0

        batched = [_record(i, "batched") for i in range(args.records)]
        t0 = time.perf_counter()
        for k in range(0, len(batched), args.batch_size):
            store.append_many(batched[k:k + args.batch_size])
        batched_s = time.perf_counter() - t0
        assert store.count() == args.single + args.records
    finally:
        store.close()
        with psycopg.connect(args.url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')

    base, fast = _rate(args.single, single_s), _rate(args.records, batched_s)
    print(f"single-row inserts (1 transaction each): {args.single:>7} records in {single_s:6.2f} s = {base:9.0f} rec/s")
    print(f"append_many, batch {args.batch_size:<4}             : {args.records:>7} records in {batched_s:6.2f} s = "
          f"{fast:9.0f} rec/s")
    print(f"batched / single-row: {fast / base:.1f}x")


if __name__ == "__main__":
    main()

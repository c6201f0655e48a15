"""Fleet-wide SLO windows in PostgreSQL, for a fleet that shares a database but no Redis.

The same `closed_loop.fleet.FleetStore` as `store.redis_slo.RedisSLOStore`, on migration 0004's tables:
counts are upserted (`n = n + EXCLUDED.n`, so concurrent gateways add), a window is one `SUM ... GROUP BY
field` over its buckets, and an alert is claimed by the one gateway whose insert (or takeover of an expired
claim) returns a row. Expiry uses the database's clock, so the gateways' clocks only place decisions in
buckets. Each call runs in a worker thread on a one-connection pool, off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gearshift.store.postgres import PostgresTables, to_json

_NOW = "EXTRACT(EPOCH FROM clock_timestamp())"
_KEEP_ALERTS = 200
_SWEEP_S = 60.0


class PostgresSLOStore(PostgresTables):
    """`FleetStore` on PostgreSQL; expired buckets are deleted (at most once a minute) as counts are added."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, pool_size=1, **options)
        self._swept = -_SWEEP_S

    def bucket_key(self, series: str, bucket_s: float, index: int) -> str:
        return f"{series}:{bucket_s:g}:{index}"

    def _add(self, counts: Mapping[str, Mapping[str, int]], ttl_s: Mapping[str, float]) -> None:
        # rows in key order: two gateways upserting the same buckets lock them in the same order (no deadlock)
        rows = sorted((key, name, by, float(ttl_s[key])) for key, fields in counts.items()
                      for name, by in fields.items())
        with self._conn() as conn, conn.cursor() as cur:
            cur.executemany(f"INSERT INTO slo_counts (bucket, field, n, expires) VALUES (%s, %s, %s, {_NOW} + %s) "
                            "ON CONFLICT (bucket, field) DO UPDATE SET n = slo_counts.n + EXCLUDED.n, "
                            "expires = EXCLUDED.expires", rows)
        now = time.monotonic()
        if now - self._swept >= _SWEEP_S:  # buckets no window reads any more
            self._swept = now
            with self._conn() as conn:
                conn.execute(f"DELETE FROM slo_counts WHERE expires < {_NOW}")

    async def add(self, counts: Mapping[str, Mapping[str, int]], ttl_s: Mapping[str, float]) -> None:
        if counts:
            await asyncio.to_thread(self._add, counts, ttl_s)

    async def totals(self, keys: Sequence[str]) -> dict[str, int]:
        rows = await asyncio.to_thread(self._rows, "SELECT field, SUM(n) FROM slo_counts WHERE bucket = ANY(%s) "
                                       "GROUP BY field", (list(keys),))
        return {str(f): int(n) for f, n in rows}

    async def claim(self, name: str, ttl_s: float) -> bool:
        rows = await asyncio.to_thread(
            self._rows, f"INSERT INTO slo_alert_claims (name, until) VALUES (%s, {_NOW} + %s) ON CONFLICT (name) "
            f"DO UPDATE SET until = EXCLUDED.until WHERE slo_alert_claims.until < {_NOW} RETURNING name",
            (name, float(ttl_s)))
        return bool(rows)

    def _log(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        with self._conn() as conn, conn.cursor() as cur:
            cur.executemany(f"INSERT INTO slo_alerts (time, alert) VALUES ({_NOW}, %s::jsonb)",
                            [(to_json(a),) for a in alerts])
            cur.execute("DELETE FROM slo_alerts WHERE id <= (SELECT MAX(id) FROM slo_alerts) - %s", (_KEEP_ALERTS,))

    async def log_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        if alerts:
            await asyncio.to_thread(self._log, alerts)

    async def recent_alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(self._rows, "SELECT alert FROM slo_alerts ORDER BY id DESC LIMIT %s", (limit,))
        return [dict(r[0]) for r in rows]

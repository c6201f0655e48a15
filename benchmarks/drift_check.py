"""What one live drift check costs on the gateway's event loop, next to the SLO check it runs beside.

Both checks run every `[slo] check_interval_s` (10 s) on the event loop. This fills a window with N routed decisions
(`--rows`, default the drift watch's cap of 20,000; two tiers, segments, costs, p_strong from a beta distribution)
and times `DriftWatch.check` (PSI/KS on p_strong, tier shares and mix against a 1,000-quantile reference) against
`SLIMonitor.check` over the same decisions (the baseline: the work every gateway with `[slo]` already does).

    .venv/bin/python benchmarks/drift_check.py [--rows 20000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from gearshift.closed_loop.drift_watch import DriftWatch
from gearshift.closed_loop.loop_settings import DriftSettings, SLOSettings
from gearshift.closed_loop.monitor import sli_config
from gearshift.closed_loop.signals import segment_labels
from gearshift.closed_loop.sli import DecisionEvent, SLIMonitor
from gearshift.routers.reference import build_reference

TIERS = ["cheap", "strong"]


def _rows(n: int, rng: np.random.Generator) -> list[dict[str, object]]:
    langs = ["en", "fr", "de", "es"]
    out = []
    for i, s in enumerate(rng.beta(2, 4, n)):
        tier = "strong" if s >= 0.5 else "cheap"
        out.append({"request_id": f"r{i}", "time": 1000.0 + i * 0.01, "tier": tier, "route": "auto", "status": "ok",
                    "score": float(s), "thresholds": [0.5], "cost_usd": 0.01 if tier == "strong" else 0.001,
                    "segment": {"language": langs[i % 4], "length_bucket": "short", "has_code": i % 7 == 0}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = _rows(args.rows, rng)
    ref = build_reference(rng.beta(2, 4, 5000), [0.5], TIERS,
                          segments=[segment_labels(r["segment"]) for r in rows[:5000]])  # type: ignore[arg-type]
    watch = DriftWatch(DriftSettings(window_s=1e9), TIERS, lambda: ref, [])
    sli = SLIMonitor(sli_config(SLOSettings(window_s=1e9), 2))
    for r in rows:
        watch.observe(r)
        sli.observe(DecisionEvent(float(r["time"]), TIERS.index(str(r["tier"])),  # type: ignore[arg-type]
                                  segment_labels(r["segment"]), False, float(r["score"])))  # type: ignore[arg-type]
    now = float(rows[-1]["time"]) + 1.0  # type: ignore[arg-type]

    def timed(check: object) -> list[float]:
        out = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            check(now)  # type: ignore[operator]
            out.append((time.perf_counter() - t0) * 1000.0)
        return out

    drift, slo = timed(watch.check), timed(sli.check)
    d, s = statistics.median(drift), statistics.median(slo)
    print(f"window of {args.rows} routed decisions, median of {args.repeat} checks")
    print(f"SLO check (baseline):   {s:8.2f} ms")
    print(f"drift check:            {d:8.2f} ms   ({d / s:.2f}x the SLO check; every check_interval_s = 10 s)")


if __name__ == "__main__":
    main()

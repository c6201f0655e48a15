"""Router quality on held-out prompts (MMLU, GSM8K; GPT-4 vs Mixtral), with train time and request-path latency.

Protocol (the issue's): the fixed 80/20 split by prompt id (`evaluation.protocols.fixed_split`); trainable
routers fit on the 80% side only, with their shipped defaults (any tuning they do is cross-validation
inside that side), and are scored once on the 20% side. APGR has a 95% bootstrap CI over test prompts.
Baselines from the same run: random (APGR 0.5 in expectation), the heuristic router, and prompt length
alone (p_strong = rank of log length, no training). MMLU is also reported subject-held-out: 5 group folds
by subject, out-of-fold scores pooled (the subject is never a router input, only the fold key).
Latency: `router.score(prompt)` one prompt at a time over test prompts spread across the length range,
p50/p99 in ms, next to the heuristic's p50 from the same run.

    .venv/bin/python benchmarks/router_quality.py               # full table (~6-8 min on 2 cores)
    .venv/bin/python benchmarks/router_quality.py --quick       # stack + baselines, no subject-held-out
    .venv/bin/python benchmarks/router_quality.py --json out.json
    .venv/bin/python benchmarks/router_quality.py --quick --datasets gsm8k --splits 20   # + split spread
`--splits N` adds N repeated random 80/20 splits (seeded, not the fixed one): mean, sd and range of the
stack router's and of length-only's test APGR, so a fixed-split figure can be read against the spread a
different draw of the same size would give (GSM8K's 20 % side is only ~270 prompts).
Targets: APGR >= 0.68 (MMLU) and >= 0.72 (GSM8K); p50 <= 5 ms, p99 <= 20 ms; MMLU train+eval < 3 min cold.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gearshift.data.records import Dataset
from gearshift.data.registry import load_dataset
from gearshift.data.text import dedupe_key
from gearshift.evaluation.labels import default_pair
from gearshift.evaluation.protocols import fixed_split, group_kfold
from gearshift.evaluation.runner import evaluate_folds, result_from_scores
from gearshift.routers.base import Router, TrainableRouter
from gearshift.routers.registry import make_router

LENGTH_DRAWS = 1000  # random 80/20 test sides scored by length alone, with --splits
TRAINABLE = ("stack", "classifier")  # shipped defaults, no parameters
QUICK_TRAINABLE = ("stack",)


@dataclass
class Row:
    dataset: str
    router: str
    protocol: str
    apgr: float
    ci: tuple[float, float] | None
    cpt50: float
    cpt80: float
    n_test: int
    train_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def by_length(prompts: list[str], n: int) -> list[str]:
    order = np.argsort([len(p) for p in prompts], kind="stable")
    picks = np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int)
    return [prompts[int(order[i])] for i in picks]


def latency(router: Router, probe: list[str], warmup: int = 10) -> tuple[float, float]:
    for p in probe[:warmup]:
        router.score(p)
    ms = np.empty(len(probe))
    for i, p in enumerate(probe):
        t = time.perf_counter()
        router.score(p)
        ms[i] = (time.perf_counter() - t) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 99))


def row_of(dataset: str, name: str, protocol: str, p: np.ndarray, test: Dataset, strong: str, weak: str,
           n_boot: int) -> Row:
    r = result_from_scores(p, test, strong, weak, router=name, protocol=protocol, n_boot=n_boot,
                           with_segments=False)
    ci = r.ci.intervals["apgr"] if r.ci else None
    return Row(dataset, name, protocol, r.metrics.apgr, (ci.lo, ci.hi) if ci else None, r.metrics.cpt[0.5],
               r.metrics.cpt[0.8], r.n_test)


def split_spread(ds: Dataset, strong: str, weak: str, n_splits: int, router_name: str) -> dict[str, Any]:
    """Test-side APGR of `router_name` and of length alone over `n_splits` seeded random 80/20 splits."""
    from gearshift.evaluation.metrics import MetricSettings, Outcomes, compute_metrics

    n, settings = len(ds), MetricSettings()
    outcomes = Outcomes.from_dataset(ds, strong, weak)
    lengths = np.array([math.log1p(len(t)) for t in ds.prompts])
    gaps = outcomes.gaps
    routed, by_length = [], []
    for k in range(n_splits):
        perm = np.random.default_rng(1000 + k).permutation(n)
        te, tr = np.sort(perm[: n // 5]), perm[n // 5:]
        router = make_router(router_name)
        if isinstance(router, TrainableRouter):
            router.fit([ds.prompts[i] for i in tr], gaps[tr])
        p = router.p_strong([ds.prompts[i] for i in te])
        routed.append(compute_metrics(p, outcomes.subset(te), settings).apgr)
        by_length.append(compute_metrics(lengths[te], outcomes.subset(te), settings).apgr)
    r, b = np.array(routed), np.array(by_length)
    # Length alone needs no fit, so its spread can be drawn many times: how far one split's figure can
    # drift from the mean with nothing learned at all.
    draws = []
    for k in range(LENGTH_DRAWS):
        te = np.sort(np.random.default_rng(5000 + k).permutation(n)[: n // 5])
        draws.append(compute_metrics(lengths[te], outcomes.subset(te), settings).apgr)
    d = np.array(draws)
    return {"router": router_name, "n_splits": n_splits, "mean": float(r.mean()), "sd": float(r.std()),
            "min": float(r.min()), "max": float(r.max()), "length_mean": float(b.mean()), "length_sd": float(b.std()),
            "gain_mean": float((r - b).mean()), "gain_sd": float((r - b).std()),
            "length_draws": LENGTH_DRAWS, "length_draws_mean": float(d.mean()), "length_draws_sd": float(d.std()),
            "length_draws_p90": float(np.percentile(d, 90))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the stack router only, no subject-held-out, 200 bootstraps")
    ap.add_argument("--datasets", default="mmlu,gsm8k")
    ap.add_argument("--latency-n", type=int, default=300, help="prompts timed one at a time per router")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--json", type=Path, help="write the rows as JSON here")
    ap.add_argument("--splits", type=int, default=0, help="also N repeated random 80/20 splits (stack, length)")
    args = ap.parse_args()
    console = Console(width=max(Console().width, 150))
    trainable = QUICK_TRAINABLE if args.quick else TRAINABLE
    n_boot = min(args.n_boot, 200) if args.quick else args.n_boot
    rows: list[Row] = []
    datasets = [d for d in args.datasets.split(",") if d]
    steps = sum(3 + len(trainable) + (len(trainable) if d == "mmlu" and not args.quick else 0) for d in datasets)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("loading", total=steps)
        for name in datasets:
            ds = load_dataset(name)
            strong, weak = default_pair(ds)
            fold = fixed_split(ds.ids, keys=[dedupe_key(p) for p in ds.prompts])  # copies stay on one side
            train, test = ds.subset(fold.train, name=f"{name}:train"), ds.subset(fold.test, name=name)
            gaps = train.scores(strong) - train.scores(weak)
            probe = by_length(test.prompts, args.latency_n)
            bar.update(task, description=f"{name}: baselines")
            p_rand = make_router("random").p_strong(test.prompts)
            rows.append(row_of(name, "random", "split", p_rand, test, strong, weak, n_boot))
            bar.advance(task)
            lengths = np.array([math.log1p(len(t)) for t in test.prompts])
            rows.append(row_of(name, "length only", "split", lengths, test, strong, weak, n_boot))
            bar.advance(task)
            heur = make_router("heuristic")
            rows.append(row_of(name, "heuristic", "split", heur.p_strong(test.prompts), test, strong, weak, n_boot))
            h50, h99 = latency(heur, probe)
            rows[-1].p50_ms, rows[-1].p99_ms = h50, h99
            bar.advance(task)
            for rname in trainable:
                bar.update(task, description=f"{name}: fitting {rname} on {len(train)} prompts")
                router = make_router(rname)
                t0 = time.perf_counter()
                if isinstance(router, TrainableRouter):
                    router.fit(train.prompts, gaps)
                train_s = time.perf_counter() - t0
                bar.update(task, description=f"{name}: scoring with {rname}")
                row = row_of(name, rname, "split", router.p_strong(test.prompts), test, strong, weak, n_boot)
                row.train_s = train_s
                row.p50_ms, row.p99_ms = latency(router, probe)
                if isinstance(router, TrainableRouter):
                    import tempfile

                    with tempfile.TemporaryDirectory() as d:
                        router.save(d)
                        row.extra["state_mb"] = sum(f.stat().st_size for f in Path(d).iterdir()) / 1e6
                row.extra["heuristic_p50_ms"] = h50
                rows.append(row)
                bar.console.print(f"{name} {rname}: APGR {row.apgr:.3f}, fit {train_s:.1f} s, "
                                  f"p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms", highlight=False)
                bar.advance(task)
            if name == "mmlu" and not args.quick:
                folds = group_kfold(ds.segment("subject"), 5, 0)
                for rname in trainable:
                    bar.update(task, description=f"mmlu: {rname}, subject-held-out (5 group folds)")
                    r = evaluate_folds(lambda n=rname: make_router(n), ds, folds, strong, weak,
                                       protocol="group:subject", n_boot=n_boot, progress=False, with_segments=False)
                    ci = r.ci.intervals["apgr"] if r.ci else None
                    rows.append(Row(name, rname, "subject-held-out", r.metrics.apgr, (ci.lo, ci.hi) if ci else None,
                                    r.metrics.cpt[0.5], r.metrics.cpt[0.8], r.n_test))
                    bar.advance(task)
    table = Table(title="router quality: train on the fixed 80% split, test on the 20% (GPT-4 vs Mixtral)")
    for col in ("dataset", "router", "protocol", "APGR", "95% CI", "CPT50", "CPT80", "n test", "train s",
                "p50 ms", "p99 ms", "p50/heur", "state MB"):
        table.add_column(col, justify="left" if col in ("dataset", "router", "protocol") else "right")

    def f(v: float | None, d: int = 3) -> str:
        return "–" if v is None or not math.isfinite(v) else f"{v:.{d}f}"

    for r in rows:
        h = r.extra.get("heuristic_p50_ms")
        table.add_row(r.dataset, r.router, r.protocol, f(r.apgr), f"{f(r.ci[0], 3)}–{f(r.ci[1], 3)}" if r.ci else "–",
                      f(r.cpt50), f(r.cpt80), str(r.n_test), f(r.train_s, 1), f(r.p50_ms), f(r.p99_ms),
                      f(r.p50_ms / h, 0) if h and r.p50_ms else "–", f(r.extra.get("state_mb"), 1))
    console.print(table)
    spreads: list[dict[str, Any]] = []
    for name in datasets if args.splits > 0 else []:
        ds = load_dataset(name)
        strong, weak = default_pair(ds)
        with console.status(f"{name}: {args.splits} random 80/20 splits"):
            sp = {"dataset": name, **split_spread(ds, strong, weak, args.splits, QUICK_TRAINABLE[0])}
        spreads.append(sp)
        console.print(f"{name}, {sp['n_splits']} random 80/20 splits: {sp['router']} APGR mean {sp['mean']:.3f} "
                      f"(sd {sp['sd']:.3f}, range {sp['min']:.3f}-{sp['max']:.3f}); "
                      f"length only {sp['length_mean']:.3f} (sd {sp['length_sd']:.3f}); "
                      f"gain over length {sp['gain_mean']:+.3f} (sd {sp['gain_sd']:.3f}); length only over "
                      f"{sp['length_draws']} draws: mean {sp['length_draws_mean']:.3f}, "
                      f"sd {sp['length_draws_sd']:.3f}, 90th percentile {sp['length_draws_p90']:.3f}",
                      highlight=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = {"rows": [asdict(r) for r in rows], "split_spread": spreads}
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        console.print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

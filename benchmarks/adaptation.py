"""Learning a new distribution from its own labels: the learning curve of a deployed router (offline replay).

Issue #11 part 4 asks for this played through the real gateway (fake upstream replaying recorded answers, shadow
judge replaying recorded scores, retrain + ope + guarded promote). This script is the offline half of that: it
replays the *labels* a shadow judge would produce and measures what retraining on them buys, with the same
protocol, so the figure exists before the gateway-driven version does.

Protocol: a stack router trained on MMLU + GSM8K (at most `--base-cap` prompts each) meets a new family F. F's
prompts are split in two by hashed id: a traffic stream, and untouched evaluation prompts. After N shadow-labelled
requests from the stream (each label = one judge call comparing the two tiers' recorded answers, so N judge calls),
three routers are scored on the untouched prompts (APGR, 0.5 = random):
- start: the deployed router, unchanged;
- retrained: the same router refitted on its training data plus the N labelled prompts, each weighted
  `--label-weight` (the loop's retrain on shadow labels);
- offline: a stack router fitted on the N labels alone (what a team would train by hand on the same labels).
The guarded promotion is played by the rule `promote` applies in spirit: the retrained router replaces the start
router only if its out-of-fold APGR on the N labelled prompts beats the start router's APGR on them; "served"
is the router the deployment would serve after that check. Prompt length alone is the no-training baseline.

    .venv/bin/python benchmarks/adaptation.py                            # alpaca-eval and llmrouter:math
    .venv/bin/python benchmarks/adaptation.py --families alpaca-eval --steps 100,250
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from gearshift.data.records import Dataset
from gearshift.data.registry import load_dataset
from gearshift.evaluation.protocols import fixed_split, kfold
from gearshift.evaluation.runner import result_from_scores
from gearshift.routers.registry import make_router


def apgr(p: np.ndarray, ds: Dataset) -> float:
    return float(result_from_scores(p, ds, "strong", "weak", router="x", n_boot=0, with_segments=False).metrics.apgr)


def gaps(ds: Dataset) -> np.ndarray:
    out: np.ndarray = ds.scores("strong") - ds.scores("weak")
    return out


def oof_apgr(ds: Dataset, base: Dataset, weight: float) -> float:
    """Out-of-fold APGR of the retrained router on the labelled prompts (3 folds): the promotion check."""
    p = np.empty(len(ds))
    for fold in kfold(len(ds), 3, 0):
        part = ds.subset(fold.train)
        router = make_router("stack").fit(base.prompts + part.prompts, np.r_[gaps(base), gaps(part)],
                                          np.r_[np.ones(len(base)), np.full(len(part), weight)])
        p[fold.test] = router.p_strong(ds.subset(fold.test).prompts)
    return apgr(p, ds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="alpaca-eval,llmrouter:math")
    ap.add_argument("--steps", default="100,250,500", help="labelled requests after which to measure")
    ap.add_argument("--base-cap", type=int, default=3000, help="training prompts per base family (default 3000)")
    ap.add_argument("--label-weight", type=float, default=3.0, help="weight of a traffic label in retraining")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args(argv)
    err = Console(stderr=True)
    pooled = load_dataset("pooled", args.data_dir)
    fam = np.array(pooled.segment("family"))
    rng = np.random.default_rng(0)
    base_idx = np.concatenate([rng.permutation(np.flatnonzero(fam == f))[: args.base_cap] for f in ("mmlu", "gsm8k")])
    base = pooled.subset(np.sort(base_idx))
    with err.status(f"fitting the deployed router on {len(base)} MMLU + GSM8K prompts"):
        start = make_router("stack").fit(base.prompts, gaps(base))
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for name in args.families.split(","):
        family = pooled.subset(np.flatnonzero(fam == name))
        split = fixed_split(family.ids, test_fraction=0.5)
        stream = family.subset(np.random.default_rng(1).permutation(split.train))
        held = family.subset(split.test)
        p_start = start.p_strong(held.prompts)
        length = apgr(np.log1p([len(t) for t in held.prompts]), held)
        for n in [int(x) for x in args.steps.split(",") if int(x) <= len(stream)]:
            labelled = stream.subset(range(n))
            with err.status(f"{name}: retraining on {len(base)} + {n} labelled prompts"):
                retrained = make_router("stack").fit(
                    base.prompts + labelled.prompts, np.r_[gaps(base), gaps(labelled)],
                    np.r_[np.ones(len(base)), np.full(n, args.label_weight)])
                offline = make_router("stack", folds=3).fit(labelled.prompts, gaps(labelled))
                check_new = oof_apgr(labelled, base, args.label_weight)
            check_old = apgr(start.p_strong(labelled.prompts), labelled)
            promoted = check_new > check_old
            row = {"family": name, "labels": n, "judge_calls": n, "untouched": len(held), "length": length,
                   "start": apgr(p_start, held), "retrained": apgr(retrained.p_strong(held.prompts), held),
                   "offline": apgr(offline.p_strong(held.prompts), held), "promoted": promoted,
                   "check": [check_old, check_new]}
            row["served"] = row["retrained"] if promoted else row["start"]
            rows.append(row)
            err.print(f"[dim]{name} after {n} labels: start {row['start']:.3f}, retrained {row['retrained']:.3f}, "
                      f"offline {row['offline']:.3f}, promoted {promoted} ({check_old:.3f} -> {check_new:.3f})[/]",
                      highlight=False)
    table = Table(title="APGR on untouched prompts of a new family after N shadow labels (N judge calls)")
    for col in ("family", "labels", "length", "start", "retrained", "offline", "promoted", "served", "gain"):
        table.add_column(col, justify="left" if col == "family" else "right")
    for r in rows:
        table.add_row(r["family"], str(r["labels"]), f"{r['length']:.3f}", f"{r['start']:.3f}", f"{r['retrained']:.3f}",
                      f"{r['offline']:.3f}", "yes" if r["promoted"] else "no", f"{r['served']:.3f}",
                      f"{r['served'] - r['start']:+.3f}")
    Console().print(table)
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training-side cross-validation of the stack router and variants of its settings (no test prompt is read).

This is how settings may be chosen honestly: k-fold over the fixed split's 80 % side only, out-of-fold
scores pooled, APGR per seed, mean over seeds. Prompt length alone is printed as the in-run baseline.

    .venv/bin/python benchmarks/router_cv.py --dataset gsm8k                        # default + variants, 3 seeds
    .venv/bin/python benchmarks/router_cv.py --dataset mmlu --seeds 0 --variants '[{"C": 1.0}]'
GSM8K takes ~15 s per variant and seed on 2 cores; MMLU ~4 min.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import track
from sklearn.model_selection import KFold

from gearshift.data.registry import load_dataset
from gearshift.evaluation.curves import CPT_LEVELS, apgr_cpt
from gearshift.evaluation.labels import default_pair
from gearshift.evaluation.protocols import fixed_split
from gearshift.routers.ensemble import StackRouter

DEFAULT_VARIANTS: list[dict[str, Any]] = [
    {"tune_C": True}, {"C": 0.1}, {"C": 1.0}, {"min_leaf": 80}, {"trees": 100}, {"shape_weight": 0.3},
    {"leaves": 7}, {"learning_rate": 0.02}, {"target": "hard"}, {"char_max": 4}, {"min_df": 1},
    {"word_features": 20000, "char_features": 20000},
]


def apgr(p: np.ndarray, s_strong: np.ndarray, s_weak: np.ndarray) -> float:
    return float(apgr_cpt(np.asarray(p, dtype=np.float64), s_strong, s_weak, CPT_LEVELS)[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="gsm8k")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", help="JSON list of StackRouter keyword sets (default: a built-in grid)")
    args = ap.parse_args()
    console = Console(width=max(Console().width, 140))
    variants: list[dict[str, Any]] = [{}, *(json.loads(args.variants) if args.variants else DEFAULT_VARIANTS)]
    ds = load_dataset(args.dataset)
    strong, weak = default_pair(ds)
    train = np.asarray(fixed_split(ds.ids).train)
    prompts = [ds.prompts[i] for i in train]
    ss, sw = ds.scores(strong)[train], ds.scores(weak)[train]
    gaps = ss - sw
    length = np.array([math.log1p(len(p)) for p in prompts])
    console.print(f"{args.dataset}: {len(prompts)} training-side prompts, {args.folds}-fold CV, seeds {args.seeds}; "
                  f"length only APGR {apgr(length, ss, sw):.4f}", highlight=False)
    base: float | None = None
    for kw in variants:
        per_seed = []
        for seed in args.seeds:
            oof = np.zeros(len(prompts))
            splits = list(KFold(args.folds, shuffle=True, random_state=seed).split(prompts))
            for tr, te in track(splits, description=f"{json.dumps(kw) or 'default'} seed {seed}",
                                console=console, transient=True):
                router = StackRouter(**kw).fit([prompts[i] for i in tr], gaps[tr])
                oof[te] = router.p_strong([prompts[i] for i in te])
            per_seed.append(apgr(oof, ss, sw))
        mean = float(np.mean(per_seed))
        base = mean if base is None else base
        console.print(f"{json.dumps(kw) if kw else 'default':<55} CV APGR {mean:.4f}  (vs default {mean - base:+.4f}; "
                      f"seeds {', '.join(f'{x:.4f}' for x in per_seed)})", highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

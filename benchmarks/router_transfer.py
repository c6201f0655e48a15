"""Leave one dataset family out: how a router does on a kind of traffic it was never trained on.

Protocol (issue #11's headline): the pooled set (`gearshift data list`: every built-in dataset, each mapped to a
strong/weak tier pair by price, copies by normalised text kept once) is split by `family` — `mmlu`, `gsm8k`,
`alpaca-eval` and each LLMRouter task. For each family F a router is fitted on every other family and scored on
F; F's APGR (threshold-free: area under the quality-vs-strong-share curve, 0.5 = random) is reported next to two
baselines from the same run: prompt length alone (no training) and a plain word-bigram TF-IDF + logistic
regression fitted on the same training side. Families where the strong tier does not outscore the weak one on
average have no meaningful APGR and are listed but not judged.

Also printed per family: the router's calibration against the hardness label (gap > 0), as expected calibration
error over 10 equal-count bins, and with `--ood` the effect of `ood_escalate` (quality loss and strong share at
the 30 %-strong threshold, without and with escalating prompts whose ood exceeds 1.1 or 1.25: a router's ood is
in units of its typical in-distribution neighbour distance).

    .venv/bin/python benchmarks/router_transfer.py                    # default router (stack) + baselines
    .venv/bin/python benchmarks/router_transfer.py --cap 2000         # each training family capped (faster)
    .venv/bin/python benchmarks/router_transfer.py --routers stack,classifier --families mmlu,gsm8k,alpaca-eval
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
from gearshift.evaluation.calibration import expected_calibration_error
from gearshift.evaluation.runner import result_from_scores
from gearshift.routers.base import TrainableRouter
from gearshift.routers.registry import make_router


def tfidf_lr(train: Dataset, test: Dataset) -> np.ndarray:
    """The plain baseline: word uni+bigram TF-IDF, logistic regression on needs-strong (gap > 0)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    y = (train.scores("strong") - train.scores("weak")) > 0
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x = vec.fit_transform(train.prompts)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    return np.asarray(model.predict_proba(vec.transform(test.prompts))[:, 1], dtype=np.float64)


def length_only(test: Dataset) -> np.ndarray:
    return np.log1p(np.array([len(p) for p in test.prompts], dtype=np.float64))


def apgr(p: np.ndarray, test: Dataset) -> float:
    res = result_from_scores(p, test, "strong", "weak", router="x", n_boot=0, with_segments=False)
    return float(res.metrics.apgr)


def ood_effect(p: np.ndarray, ood: np.ndarray, test: Dataset, cuts: tuple[float, ...] = (1.1, 1.25)
               ) -> dict[str, Any]:
    """Strong share and quality loss at the 30 %-strong threshold, then with `ood_escalate` at each cut (a router's
    ood is in units of its typical in-distribution neighbour distance, so ~1 is familiar)."""
    gaps = test.scores("strong") - test.scores("weak")
    base = p >= float(np.quantile(p, 0.7))

    def loss(strong: np.ndarray) -> float:  # mean quality given up against all-strong
        return float(np.mean(np.where(strong, 0.0, np.maximum(gaps, 0.0))))

    out: dict[str, Any] = {"share": float(base.mean()), "q_loss": loss(base), "test_ood_median": float(np.median(ood))}
    out["escalated"] = {str(c): {"share": float((base | (ood > c)).mean()), "q_loss": loss(base | (ood > c))}
                        for c in cuts}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routers", default="stack", help="comma-separated router names (default: stack)")
    ap.add_argument("--families", help="comma-separated families to hold out (default: all)")
    ap.add_argument("--cap", type=int, default=0, help="at most this many training prompts per family (0 = all)")
    ap.add_argument("--ood", action="store_true", help="also report ood escalation per family")
    ap.add_argument("--json", type=Path, help="write the rows here")
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args(argv)
    console = Console(stderr=True)
    pooled = load_dataset("pooled", args.data_dir)
    fam = np.array(pooled.segment("family"))
    names = args.families.split(",") if args.families else list(dict.fromkeys(fam.tolist()))
    routers = [r for r in args.routers.split(",") if r]
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for name in names:
        test_idx = np.flatnonzero(fam == name)
        train_idx = np.flatnonzero(fam != name)
        if args.cap:
            keep = []
            for f in np.unique(fam[train_idx]):
                members = train_idx[fam[train_idx] == f]
                keep.append(rng.permutation(members)[: args.cap])
            train_idx = np.sort(np.concatenate(keep))
        train, test = pooled.subset(train_idx), pooled.subset(test_idx)
        gap = test.scores("strong") - test.scores("weak")
        row: dict[str, Any] = {"family": name, "n_test": len(test), "n_train": len(train),
                               "mean_gap": float(gap.mean()), "judged": bool(gap.mean() > 0)}
        row["length"] = apgr(length_only(test), test)
        row["tfidf_lr"] = apgr(tfidf_lr(train, test), test)
        hard = (gap > 0).astype(np.float64)
        for rname in routers:
            router = make_router(rname)
            t = time.perf_counter()
            if isinstance(router, TrainableRouter):
                router.fit(train.prompts, train.scores("strong") - train.scores("weak"))
            scores = router.score_batch(test.prompts)
            p = np.array([s.p_strong for s in scores])
            row[rname] = apgr(p, test)
            row[f"{rname}_ece"] = expected_calibration_error(p, hard)
            row[f"{rname}_fit_s"] = time.perf_counter() - t
            if args.ood and isinstance(router, TrainableRouter):
                ood = np.array([s.ood if s.ood is not None else 0.0 for s in scores])
                row[f"{rname}_ood"] = ood_effect(p, ood, test)
        rows.append(row)
        console.print(f"[dim]{name}: " + ", ".join(f"{k}={v:.3f}" for k, v in row.items()
                                                    if isinstance(v, float) and not k.endswith("_s")) + "[/]",
                      highlight=False)
    table = Table(title=f"Leave one family out: APGR on the held-out family (train = all other families"
                        f"{f', capped at {args.cap} each' if args.cap else ''})")
    for col in ("family", "n", "mean gap", "length", "tfidf+LR", *routers, *(f"{r} ECE" for r in routers)):
        table.add_column(col, justify="left" if col == "family" else "right")
    wins = {r: 0 for r in routers}
    judged = [r for r in rows if r["judged"]]
    for r in rows:
        marks = []
        for rn in routers:
            ok = r[rn] > r["length"] and r[rn] > r["tfidf_lr"]
            wins[rn] += int(ok and r["judged"])
            marks.append(f"{r[rn]:.3f}{'' if not r['judged'] else (' ✓' if ok else ' ✗')}")
        table.add_row(r["family"] + ("" if r["judged"] else " (not judged)"), str(r["n_test"]),
                      f"{r['mean_gap']:+.3f}", f"{r['length']:.3f}", f"{r['tfidf_lr']:.3f}", *marks,
                      *(f"{r[f'{rn}_ece']:.3f}" for rn in routers))
    mean = lambda k: float(np.mean([r[k] for r in judged])) if judged else float("nan")  # noqa: E731
    table.add_row("mean (judged)", "", "", f"{mean('length'):.3f}", f"{mean('tfidf_lr'):.3f}",
                  *(f"{mean(rn):.3f}" for rn in routers), *(f"{mean(f'{rn}_ece'):.3f}" for rn in routers))
    Console().print(table)
    for rn in routers:
        print(f"{rn}: beats both baselines on {wins[rn]} of {len(judged)} judged families "
              f"({time.perf_counter() - t0:.0f} s total)")
        if args.ood:
            for r in rows:
                o = r.get(f"{rn}_ood")
                if o:
                    esc = "; ".join(f"ood > {c}: share {e['share']:.3f}, loss {e['q_loss']:.4f}"
                                    for c, e in o["escalated"].items())
                    print(f"  {r['family']}: at 30 % strong, loss {o['q_loss']:.4f}; {esc} "
                          f"(median test ood {o['test_ood_median']:.2f})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

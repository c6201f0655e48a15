"""`gearshift eval`: evaluate routers offline on recorded outcomes; with no arguments, the demo job.

The demo evaluates the built-in routers on MMLU and GSM8K under the fixed 80/20 split, prints the
metrics with reference rows and writes the HTML report to ./gearshift-report.html.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from gearshift.data.records import Dataset
    from gearshift.evaluation.runner import EvalResult
    from gearshift.routers.base import Router

#: Routers the demo (and `--router` left out) compares: the baselines, the best router (stack: sparse TF-IDF +
#: shape trees, ~35 s to fit on MMLU at folds=3) and the others on the model-free hashing embedder, so a cold
#: machine needs no e5 download or distillation (e5-static costs minutes cold).
DEFAULT_ROUTERS = ("random", "heuristic", "stack:folds=3", "knn:embedder=hashing",
                   "classifier:embedder=hashing,folds=3", "mf:embedder=hashing,max_iter=150")
DEMO_DATASETS = ("mmlu", "gsm8k")
DEFAULT_REPORT = Path("gearshift-report.html")
DEFAULT_STRONG_SHARE = 0.3  # the operating point a cost-minded user starts from: 7 of 10 requests cheap


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("eval", help="evaluate routers on recorded outcomes (no args: the demo)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", help="training data: a dataset name or a canonical .jsonl")
    p.add_argument("--test", help="test data: a dataset name or a canonical .jsonl")
    p.add_argument("--router", action="append", metavar="NAME[:k=v,...]",
                   help=f"router to evaluate, repeatable (default: {', '.join(DEFAULT_ROUTERS)})")
    p.add_argument("--strong", help="strong model (default: highest tier in the models table)")
    p.add_argument("--weak", help="weak model (default: lowest tier in the models table)")
    p.add_argument("--protocol", choices=("split", "kfold", "group", "cross"),
                   help="split: fixed 80/20 by id hash; kfold; group: held-out values of --group-by; "
                        "cross: train on --train, test on --test (default when they differ, else split)")
    p.add_argument("--group-by", help="segment for --protocol group (default: the dataset's first segment)")
    p.add_argument("--folds", type=int, default=5, help="folds for kfold/group (default 5)")
    p.add_argument("--json", type=Path, help="write metrics JSON here")
    p.add_argument("--report", type=Path, help="write the HTML report here")
    p.add_argument("--scores", type=Path, help="write one JSONL line per test prompt (id, p_strong, label)")
    p.add_argument("--data-dir", type=Path, help="raw data directory (default: from config)")
    p.add_argument("--seed", type=int, default=0, help="seed for folds and the bootstrap (default 0)")
    p.add_argument("--eps", type=float, default=0.0, help="gap tolerance: strong needed iff gap > eps")
    p.add_argument("--target-strong-share", type=float, default=DEFAULT_STRONG_SHARE, metavar="SHARE",
                   help="operating point for the confusion matrix, q-loss and cost: the threshold that sends this "
                        f"share of the test prompts strong (label-free; default {DEFAULT_STRONG_SHARE})")
    p.add_argument("--threshold", type=float,
                   help="a fixed p_strong threshold instead (trained routers' scores are on different scales)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for CIs (0: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-cache", action="store_true",
                   help="always refit trainable routers (default: reuse fits cached under the gearshift cache dir)")
    p.set_defaults(handler=run_eval)


def parse_router_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """`knn:k=16,embedder=hashing` -> ("knn", {"k": 16, "embedder": "hashing"}).

    Values are parsed as JSON where they can be (numbers, booleans), else kept as strings.
    """
    from gearshift.errors import ConfigError

    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"router parameter {item!r} in {spec!r} is not key=value")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return name.strip(), params


def _default_routers() -> list[str]:
    from gearshift.routers.registry import ROUTERS

    return [r for r in DEFAULT_ROUTERS if r.partition(":")[0] in ROUTERS]


def _labels(specs: list[str]) -> dict[str, str]:
    """Show a router by its name, or by its full spec when the same router is compared under several settings."""
    names = [parse_router_spec(s)[0] for s in specs]
    return {s: n if names.count(n) == 1 else s for s, n in zip(specs, names, strict=True)}


def _evaluate_one(spec: str, label: str, train: Dataset | None, test: Dataset, strong: str, weak: str,
                  protocol: str, args: argparse.Namespace, console: Console) -> EvalResult:
    from gearshift.errors import ConfigError
    from gearshift.evaluation.metrics import MetricSettings
    from gearshift.evaluation.protocols import fixed_split, group_kfold, kfold
    from gearshift.evaluation.runner import default_fit_cache, evaluate, evaluate_folds
    from gearshift.routers.registry import make_router

    name, params = parse_router_spec(spec)
    settings = MetricSettings(threshold=args.threshold, eps=args.eps) if args.threshold is not None else \
        MetricSettings(target_strong_share=args.target_strong_share, eps=args.eps)
    kw: dict[str, Any] = {"settings": settings,
                          "n_boot": args.n_boot, "seed": args.seed, "progress": not args.no_progress,
                          "console": console, "label": label,
                          "fit_cache": None if args.no_cache else default_fit_cache()}

    def make() -> Router:
        return make_router(name, **params)

    if protocol == "cross":
        return evaluate(make(), train, test, strong, weak, **kw)
    from gearshift.data.text import dedupe_key

    keys = [dedupe_key(p) for p in test.prompts]  # copies of a prompt never straddle train and test
    if protocol == "split":
        folds = [fixed_split(test.ids, keys=keys)]
    elif protocol == "kfold":
        folds = kfold(len(test), args.folds, args.seed, keys=keys)
    else:
        group_by = args.group_by or next(iter(test.segment_names()), None)
        if group_by is None or group_by not in test.segment_names():
            raise ConfigError(f"--protocol group needs --group-by SEGMENT; {test.name!r} has segments: "
                              f"{', '.join(test.segment_names()) or 'none'}")
        folds = group_kfold(test.segment(group_by), args.folds, args.seed, keys=keys)
        protocol = f"group:{group_by}"
    return evaluate_folds(make, test, folds, strong, weak, protocol=protocol, **kw)


def _print_results(results: list[EvalResult], console: Console) -> None:
    from rich import box
    from rich.table import Table

    from gearshift.evaluation.metrics import clean

    def f(v: float | None, d: int = 3) -> str:
        return "–" if v is None or clean(v) is None else f"{v:.{d}f}"

    by_set: dict[str, list[EvalResult]] = {}
    for r in results:
        by_set.setdefault(r.dataset, []).append(r)
    for dataset, rs in by_set.items():
        first = rs[0]
        table = Table(title=f"{dataset}: {first.strong} vs {first.weak}; {first.n_test} test prompts, "
                            f"protocol {first.protocol}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                      collapse_padding=True)
        table.add_column("router", overflow="fold", min_width=10)
        for col in ("APGR", "95% CI", "CPT50", "CPT80", "CPT95", "AIQ", "strong", "q-loss"):
            table.add_column(col, justify="right", no_wrap=True)
        for r in rs:
            ci = r.ci.intervals["apgr"] if r.ci else None
            m = r.metrics
            table.add_row(r.router, f(m.apgr), f"{f(ci.lo, 2)}–{f(ci.hi, 2)}" if ci else "–",
                          *(f(m.cpt[t]) for t in sorted(m.cpt)), f(m.aiq, 4), f(m.confusion.strong_share, 2),
                          f(m.confusion.quality_loss_rate, 2))
        for name, ref in first.references.items():
            cpts = [f(ref.cpt[t]) for t in sorted(ref.cpt)] if ref.cpt else ["–"] * 3
            table.add_row(f"({name.removeprefix('all_')})", f(ref.apgr), "–", *cpts, f(ref.aiq, 4),
                          f(ref.strong_share, 2), "–", style="dim")
        console.print(table)
        console.print("[dim]strong: share sent strong at p_strong >= threshold; q-loss: share sent cheap that "
                      "needed strong[/]", highlight=False)
        for r in rs:
            if r.flagged:
                console.print(f"[yellow]flagged[/] ({r.router}): "
                              + ", ".join(f"{s.segment}={s.value}" for s in r.flagged), highlight=False)
        for note in dict.fromkeys(n for r in rs for n in r.notes):
            console.print(f"[dim]note:[/] {note}", highlight=False)


def _print_operating_points(results: list[EvalResult], console: Console) -> None:
    """Where the threshold-dependent columns were measured: a trained router's raw 0.5 is no operating point."""
    for r in results:
        s, m = r.settings, r.metrics
        how = (f"threshold {s.threshold:.4g} (sends {s.target_strong_share:.0%} of these prompts strong)"
               if s.target_strong_share is not None else f"fixed threshold {s.threshold:g}")
        cost = f", ${m.cost * 1000:.4f} per 1k prompts" if m.cost == m.cost else ""
        console.print(f"[dim]operating point[/] {r.dataset} / {r.router}: {how}: strong share "
                      f"{m.confusion.strong_share:.1%}, quality loss {m.confusion.quality_loss_rate:.1%}, "
                      f"mean score {m.quality:.3f}{cost}", highlight=False)


def _write_scores(results: list[EvalResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in results:
            need = r.needs_strong()
            for i, pid in enumerate(r.ids):
                fh.write(json.dumps({"id": pid, "p_strong": float(r.p_strong[i]), "needs_strong": bool(need[i]),
                                     "gap": float(r.gaps[i]), "router": r.router, "dataset": r.dataset}) + "\n")


def run_eval(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gearshift.data.registry import load_dataset
    from gearshift.errors import ConfigError
    from gearshift.evaluation.labels import check_pair, default_pair
    from gearshift.evaluation.report import write_report

    console = Console()
    demo = args.test is None and args.train is None
    routers = args.router or _default_routers()
    if demo:
        jobs = [(None, name, "split") for name in DEMO_DATASETS]
        report = args.report or DEFAULT_REPORT
        console.print(f"[bold]gearshift eval demo[/]: routers {', '.join(routers)} on {', '.join(DEMO_DATASETS)}, "
                      "fixed 80/20 split by prompt id", highlight=False)
    else:
        test_name = args.test or args.train
        protocol = args.protocol or ("cross" if args.train and args.train != test_name else "split")
        if protocol != "cross" and args.train and args.train != test_name:
            raise ConfigError(f"--protocol {protocol} evaluates within one dataset; use --protocol cross to train "
                              f"on {args.train} and test on {test_name}")
        jobs = [(args.train if protocol == "cross" else None, test_name, protocol)]
        report = args.report
    results: list[EvalResult] = []
    for train_name, test_name, protocol in jobs:
        with console.status(f"loading {test_name}"):
            test = load_dataset(test_name, args.data_dir)
            train = load_dataset(train_name, args.data_dir) if train_name else None
        strong, weak = default_pair(test)
        strong, weak = args.strong or strong, args.weak or weak
        check_pair(test, strong, weak)
        for spec, label in _labels(routers).items():
            result = _evaluate_one(spec, label, train, test, strong, weak, protocol, args, console)
            result.spec = spec
            results.append(result)
    _print_results(results, console)
    _print_operating_points(results, console)
    if args.json:
        payload: Any = results[0].to_json() if len(results) == 1 else {"results": [r.to_json() for r in results]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        console.print(f"metrics JSON: {args.json}", highlight=False)
    if args.scores:
        _write_scores(results, args.scores)
        console.print(f"per-prompt scores: {args.scores}", highlight=False)
    if report:
        path = write_report(results, report)
        console.print(f"HTML report: [bold]{path.resolve()}[/]", highlight=False)
    return 0
